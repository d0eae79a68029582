"""Issue #20 in a real headless Chromium: the trust templates run and their charts render.

Robustness: the "one compromised site" template -> Launch with the defences the page proposes for
a roster with a compromised client (a sweep) -> the runs finish -> Compare shows the attack chart
(primary metric and attack success rate per defence). Screenshots go to docs/screenshots/.

Privacy: the "privacy budget per hospital" template -> the roster's privacy columns -> Launch's
privacy section (secure aggregation on) -> the run finishes -> Results' Privacy tab shows epsilon
per hospital against its budget and each hospital's privacy-utility point -> a privacy sweep from
that tab (two budgets) -> Compare shows the privacy-utility chart.

Same set-up and helpers as tests/test_e2e_browser.py; skipped with the reason when Chromium or
playwright is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_e2e_browser import (  # noqa: F401 - app_url is a fixture
    _nav,
    _no_errors,
    _open_template,
    _settle,
    _shot,
    _type,
    _wait_finished,
    app_url,
)

from bench.app_server import chromium_page

pytestmark = pytest.mark.browser


def _compare_sweep(page, section: str):  # noqa: ANN202 - a playwright Locator
    """Open Compare on the newest sweep and wait for its ``section`` heading (returned)."""
    _nav(page, "Compare", "Compare runs")
    page.get_by_role("combobox", name="Whole sweep").click()
    page.get_by_role("option", name=re.compile("^sweep")).first.click()
    heading = page.get_by_role("heading", name=section)
    heading.wait_for()
    return heading


@pytest.mark.timeout(300)
def test_one_compromised_site_compares_defences(app_url: str, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    with chromium_page(failure_dir=tmp_path) as page:
        _open_template(page, app_url, "compromised_site")

        _nav(page, "Launch")
        _type(page, "Rounds", "4")
        expect(page.get_by_role("heading", name="Defence against compromised clients")).to_be_visible()
        # a roster with a compromised client starts with four defences to compare
        for title in ("None (plain average)", "Coordinate median", "Trimmed mean", "Norm clipping"):
            expect(page.get_by_text(title, exact=True).first).to_be_visible()
        _no_errors(page)
        _shot(page, "launch-defences")
        page.locator(".st-key-launch-go").get_by_role("button", name=re.compile(r"Launch 4 runs")).click()
        page.get_by_role("heading", name="Runs").first.wait_for()
        _wait_finished(page, 4, tmp_path)
        _no_errors(page)

        heading = _compare_sweep(page, "Attacks and defences")
        chart = page.locator(".st-key-cmp-attack [data-testid='stPlotlyChart'] .main-svg").first
        if not chart.count():
            chart = page.locator("[data-testid='stPlotlyChart'] .main-svg").first
        chart.wait_for()
        _settle(page)
        svg = page.locator("[data-testid='stPlotlyChart']").filter(has_text="attack success rate").first
        expect(svg).to_be_visible()
        for title in ("Coordinate median", "Norm clipping"):
            expect(svg.get_by_text(title).first).to_be_visible()
        _no_errors(page)
        heading.scroll_into_view_if_needed()
        _shot(page, "compare-attack")


@pytest.mark.timeout(420)
def test_privacy_budget_per_hospital(app_url: str, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    with chromium_page(failure_dir=tmp_path) as page:
        _open_template(page, app_url, "privacy_hospitals")

        _nav(page, "Clients")
        form = page.locator("[data-testid='stForm']").first  # client 0: Eastbrook, budget 1
        expect(form.get_by_label("Train with differential privacy")).to_be_checked()
        expect(form.get_by_role("textbox", name="ε budget (empty: none)")).to_have_value(
            re.compile(r"^1(\.0*)?$")
        )
        _no_errors(page)
        _shot(page, "clients-privacy")

        _nav(page, "Launch")
        _type(page, "Rounds", "4")
        expect(page.get_by_text(re.compile(r"4 of 5 clients train with DP-SGD"))).to_be_visible()
        expect(page.get_by_text("Secure aggregation", exact=True).first).to_be_visible()
        _no_errors(page)
        _shot(page, "launch-privacy")
        page.locator(".st-key-launch-go").get_by_role("button", name="Launch").click()
        page.get_by_role("heading", name="Privacy budget per hospital").first.wait_for()  # its Results
        _nav(page, "Runs")
        _wait_finished(page, 1, tmp_path)

        _nav(page, "Results", "Privacy budget per hospital")
        page.get_by_role("tab", name="Privacy").click()
        _settle(page)
        eps = (
            page.locator("[data-testid='stPlotlyChart']")
            .filter(has_text="Privacy spent (ε) per client")
            .first
        )
        eps.wait_for()
        for hospital in ("Eastbrook", "Northfield"):
            expect(eps.get_by_text(hospital).first).to_be_visible()
        trade = page.locator("[data-testid='stPlotlyChart']").filter(
            has_text="Privacy and accuracy per client"
        )
        expect(trade.first.get_by_text("no DP").first).to_be_visible()  # Westgate trains without DP
        expect(page.get_by_text(re.compile(r"Secure aggregation: the server saw only sums"))).to_be_visible()
        _no_errors(page)
        _shot(page, "results-privacy")

        _type(page, "Privacy budgets ε", "2, none")
        page.locator(".st-key-priv-sweep_go button").click()
        page.get_by_role("heading", name="Compare runs").first.wait_for()
        _nav(page, "Runs")
        _wait_finished(page, 3, tmp_path)
        heading = _compare_sweep(page, "Privacy and utility")
        chart = (
            page.locator("[data-testid='stPlotlyChart']").filter(has_text="Privacy-utility trade-off").first
        )
        chart.wait_for()
        _settle(page)
        expect(chart.get_by_text("fedavg, no DP").first).to_be_visible()
        _no_errors(page)
        heading.scroll_into_view_if_needed()
        _shot(page, "compare-privacy")
