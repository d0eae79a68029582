"""End to end in a real headless Chromium: a fresh database -> load the hospital template ->
change one client's architecture -> launch a 3-round run -> wait for it to finish on the Runs page
-> open Results and see the chart -> download the CSV and check its rows. Screenshots of every page
go to docs/screenshots/ (the README shows them).

Needs Debian's ``chromium`` (installed by ``.ci/run``) and the ``playwright`` Python package;
skipped with the reason when either is missing.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from bench.app_server import CHROMIUM, ROOT, VIEWPORT, chromium_page, serving

pytestmark = pytest.mark.browser

SHOTS = ROOT / "docs" / "screenshots"
# the server's flags (the repository's .streamlit/config.toml sets the same values)
FLAGS = [
    "--server.headless",
    "true",
    "--server.address",
    "127.0.0.1",
    "--browser.gatherUsageStats",
    "false",
    "--server.fileWatcherType",
    "none",
]


@pytest.fixture
def app_url(tmp_path: Path):
    """The address of a fresh server whose home is ``tmp_path/home`` (database ``e2e.db``)."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does) to run the browser test"
        )
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    env = {"FEDMOSAIC_WORKERS": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with serving(
        tmp_path / "home", db="e2e.db", env=env, flags=FLAGS, log=tmp_path / "streamlit.log", timeout=60
    ) as server:
        yield server.url


def _settle(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit finished the script run (no running indicator) and charts drew."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=timeout,
    )
    page.wait_for_timeout(400)


def _shot(page, name: str) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main area, so the viewport is made
    as tall as the content first."""
    _settle(page)
    height = page.evaluate(
        "() => Math.max(...['stMain', 'stAppViewContainer', 'stMainBlockContainer']\n"
        '        .map(id => document.querySelector(`[data-testid="${id}"]`)).filter(Boolean)'
        ".map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1440, "height": int(min(max(height, 900) + 40, 5000))})
    _settle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(VIEWPORT)


def _no_errors(page) -> None:
    alerts = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
    texts = [alerts.nth(i).inner_text() for i in range(alerts.count())]
    assert not texts, f"the page shows errors: {texts}"


def _wait_finished(page, n: int, tmp_path: Path) -> None:
    """Wait on the Runs page until ``n`` runs in view finished; fail with the error if one failed."""
    page.get_by_text(re.compile(rf"(✓ finished {n}\b|✗ failed)")).first.wait_for(timeout=180_000)
    if page.get_by_text("✗ failed").count():
        from engine.tracking.storage import Store

        failed = [r for r in Store(tmp_path / "home" / "e2e.db").list_runs() if r["status"] == "failed"]
        pytest.fail(f"a run failed: {failed[0].get('error') if failed else '?'}")
    _settle(page)


def _choose(page, label: str, option: str, scope=None) -> None:
    """Pick ``option`` in the select box labelled ``label`` (retrying if a rerun closed the list)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = (scope or page).get_by_role("combobox", name=label, exact=True)
    for _ in range(4):
        _settle(page)
        box.click()
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            _settle(page)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"could not choose {option!r} in {label!r}")


def _type(page, label: str, text: str) -> None:
    """Type ``text`` into the field labelled exactly ``label`` and submit it."""
    field = page.get_by_label(label, exact=True)
    field.fill(text)
    field.press("Enter")
    _settle(page)


def _tick(page, name: str) -> None:
    """Tick the checkbox labelled exactly ``name`` (a strategy on Launch) and wait for the rerun."""
    from playwright.sync_api import expect

    page.locator("label").filter(has_text=re.compile(f"^{re.escape(name)}$")).first.click()
    expect(page.get_by_role("checkbox", name=name, exact=True)).to_be_checked()
    _settle(page)


def _open_template(page, app_url: str, key: str) -> None:
    """Open the app's home page and load template ``key``: its Data page is drawn, error-free."""
    page.goto(app_url)
    page.get_by_role("heading", name="FedMosaic").first.wait_for()
    _settle(page)
    page.locator(f".st-key-tmpl-{key} button").click()
    page.get_by_role("heading", name="Data").first.wait_for()
    _settle(page)
    _no_errors(page)


def _nav(page, title: str, heading: str | None = None) -> None:
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    page.get_by_role("heading", name=heading or title).first.wait_for(timeout=30_000)
    _settle(page)


@pytest.mark.timeout(300)
def test_hospital_template_to_csv(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with chromium_page(accept_downloads=True, failure_dir=tmp_path) as page:
        page.goto(app_url)
        page.get_by_role("heading", name="FedMosaic").first.wait_for()
        _settle(page)
        _no_errors(page)
        _shot(page, "home")

        # load the hospital template: it opens the Data page with the split preview
        page.locator(".st-key-tmpl-hospital button").click()
        page.get_by_role("heading", name="Data").first.wait_for()
        page.locator("[data-testid='stPlotlyChart']").nth(1).wait_for()
        _no_errors(page)
        expect(page.get_by_text("Clients × classes").first).to_be_visible()
        _shot(page, "data")

        # change one client's architecture: Hillcrest (an MLP) becomes a CNN
        _nav(page, "Clients")
        _choose(page, "Client", "3: Hillcrest")
        form = page.locator("[data-testid='stForm']")
        _choose(page, "Architecture", "cnn", scope=form)
        form.get_by_role("button", name="Save client").click()
        expect(page.get_by_text("Saved client Hillcrest.")).to_be_visible()
        _settle(page)
        _no_errors(page)
        _shot(page, "clients")

        # launch 3 rounds
        _nav(page, "Launch")
        _type(page, "Rounds", "3")
        # a strategy that cannot run this roster is disabled and says why
        expect(page.get_by_role("checkbox", name="fedavg", exact=True)).to_be_disabled()
        expect(page.get_by_text("fedavg needs identical models").first).to_be_visible()
        _no_errors(page)
        _shot(page, "launch")
        page.locator(".st-key-launch-go button").click()
        page.get_by_text("Run launched").first.wait_for()

        # wait for it on the Runs page (the table refreshes itself while the run is active)
        _nav(page, "Runs")
        _wait_finished(page, 1, tmp_path)
        _no_errors(page)

        # results: the learning curve is drawn; the CSV has one row per round
        _nav(page, "Results", "Hospital network")
        page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for()
        expect(page.get_by_text("finished").first).to_be_visible()
        _no_errors(page)
        _shot(page, "results")
        page.get_by_role("tab", name="Clients").click()
        page.get_by_text("per client").first.wait_for()
        _no_errors(page)
        _shot(page, "results-clients")
        page.get_by_role("tab", name="Learning curves").click()
        _settle(page)
        with page.expect_download() as info:
            page.locator(".st-key-res-dl-csv").get_by_role("button", name="CSV (rounds)").click()
        path = tmp_path / "rounds.csv"
        info.value.save_as(path)
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        assert [int(float(r["round"])) for r in rows] == [1, 2, 3]
        assert all(0.0 <= float(r["local_acc_mean"]) <= 1.0 for r in rows)
        assert float(rows[-1]["cum_bytes_up"]) > float(rows[0]["cum_bytes_up"]) > 0

        # a sweep: two strategies x two seeds, then compare them with mean +- std bands
        _nav(page, "Launch")
        _tick(page, "lg_fedavg")
        _type(page, "Seeds", "0-1")
        page.locator(".st-key-launch-go").get_by_role("button", name=re.compile("Launch 4 runs")).click()
        page.get_by_role("heading", name="Runs").first.wait_for()
        _wait_finished(page, 4, tmp_path)
        search = page.get_by_role(
            "textbox", name=re.compile("^Search name")
        ).first  # a rerun may briefly show two
        search.fill("")
        search.press("Enter")
        page.get_by_text("5 runs").first.wait_for()
        _no_errors(page)
        _shot(page, "runs")

        _nav(page, "Compare", "Compare runs")
        sweep = page.get_by_role("combobox", name="Whole sweep")
        sweep.click()
        page.get_by_role("option", name=re.compile("^sweep")).first.click()
        page.get_by_text("(2 seeds)").first.wait_for()
        page.locator("[data-testid='stPlotlyChart']").first.wait_for()
        _no_errors(page)
        _shot(page, "compare")
        _nav(page, "Catalog")
        _no_errors(page)
        _shot(page, "catalog")
