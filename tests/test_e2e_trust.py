"""Issue #20 in a real headless Chromium: the trust templates run and their charts render.

Robustness: the "one compromised site" template -> Launch with the defences the page proposes for
a roster with a compromised client (a sweep) -> the runs finish -> Compare shows the attack chart
(primary metric and attack success rate per defence). Screenshots go to docs/screenshots/.

Same set-up and helpers as tests/test_e2e_browser.py; skipped with the reason when Chromium or
playwright is missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from test_e2e_browser import _nav, _no_errors, _settle, _shot, _wait_finished, app_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.browser
CHROMIUM = Path(os.environ.get("FEDMOSAIC_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.timeout(300)
def test_one_compromised_site_compares_defences(app_url: str, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(app_url)
            page.get_by_role("heading", name="FedMosaic").first.wait_for()
            _settle(page)
            page.locator(".st-key-tmpl-compromised_site button").click()
            page.get_by_role("heading", name="Data").first.wait_for()
            _settle(page)
            _no_errors(page)

            _nav(page, "Launch")
            rounds = page.get_by_label("Rounds", exact=True)
            rounds.fill("4")
            rounds.press("Enter")
            _settle(page)
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

            _nav(page, "Compare", "Compare runs")
            sweep = page.get_by_role("combobox", name="Whole sweep")
            sweep.click()
            page.get_by_role("option", name=re.compile("^sweep")).first.click()
            heading = page.get_by_role("heading", name="Attacks and defences")
            heading.wait_for()
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
        except Exception:
            shot = Path(os.environ.get("FEDMOSAIC_E2E_FAILURE", tmp_path / "failure.png"))
            page.screenshot(path=str(shot))
            print(f"screenshot of the failure: {shot}")
            raise
        finally:
            browser.close()
