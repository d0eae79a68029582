"""The answer a clinician came for, end to end in a real headless Chromium: upload a three-site
patient table whose missing values are site-specific (one site never measures lactate, another
misses most BMI values), make one client per site, launch FedAvg and its paired ``local`` over
three seeds, and read the verdict on Compare (the sentence and the who-gains chart) and on
Results (the headline row). Screenshots go to docs/screenshots/ (verdict-*.png).

Kept short: 240 rows, 3 rounds, tiny models. Needs Chromium and playwright, as
tests/test_e2e_browser.py (whose server fixture and helpers it shares).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from bench.app_server import chromium_page
from tests.test_e2e_browser import (  # noqa: F401 - app_url is a fixture
    _choose,
    _nav,
    _no_errors,
    _settle,
    _shot,
    _tick,
    _type,
    _wait_finished,
    app_url,
)

pytestmark = pytest.mark.browser

SITES = {"North": (90, 0.35), "South": (80, 0.5), "East": (70, 0.85)}  # rows, share readmitted


def write_sites_csv(path: Path, seed: int = 3) -> Path:
    """Three hospitals; lactate is never recorded at East, BMI is missing for most of North."""
    rng = np.random.default_rng(seed)
    rows = []
    for site, (n, rate) in SITES.items():
        for _ in range(n):
            y = rng.random() < rate
            age = rng.normal(62 + 6 * y, 10)
            lactate = rng.normal(1.4 + 1.2 * y, 0.5)
            bmi = rng.normal(27 + 2 * y, 4)
            rows.append(
                {
                    "site": site,
                    "age": f"{age:.0f}",
                    "lactate": "" if site == "East" else f"{lactate:.2f}",
                    "bmi": "" if site == "North" and rng.random() < 0.7 else f"{bmi:.1f}",
                    "readmitted": "yes" if y else "no",
                }
            )
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.timeout(420)
def test_three_sites_fedavg_against_local_over_three_seeds_gives_a_verdict(
    app_url: str,  # noqa: F811 - app_url is the imported fixture
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    table = write_sites_csv(tmp_path / "three_sites.csv")
    with chromium_page(default_timeout=90_000, failure_dir=tmp_path, full_page=True) as page:
        page.goto(app_url)
        page.get_by_role("heading", name="FedMosaic").first.wait_for()
        _settle(page)

        # Data: upload the table, predict 'readmitted', one client per site
        _nav(page, "Data")
        _choose(page, "Dataset", "your own file (CSV, Excel, Parquet)")
        page.locator(
            "[data-testid='stMain'] [data-testid='stFileUploader'] input[type='file']"
        ).set_input_files(str(table))
        page.get_by_text("three_sites.csv").first.wait_for()
        _settle(page)
        _choose(page, "Target: the column to predict", "readmitted")
        _choose(page, "Partition method", "natural")
        _choose(page, "Split by column (one client per value)", "site")
        page.locator(".st-key-data-fit_roster button").click()
        _settle(page)
        # the Data page shows the site-specific gaps before anything trains
        expect(page.get_by_text(re.compile(r"'lactate' is 100% missing at East")).first).to_be_visible()
        expect(page.get_by_text(re.compile(r"'bmi' is \d+% missing at North")).first).to_be_visible()
        _no_errors(page)
        _shot(page, "verdict-data")

        # Launch: fedavg and its paired local, seeds 0-2, 3 rounds
        _nav(page, "Launch")
        _type(page, "Rounds", "3")
        _tick(page, "local")
        _type(page, "Seeds", "0-2")
        expect(
            page.get_by_text(re.compile("Headline of every chart, table and verdict")).first
        ).to_be_visible()
        page.locator(".st-key-launch-go").get_by_role("button", name=re.compile("Launch 6 runs")).click()
        page.get_by_role("heading", name="Runs").first.wait_for()
        _wait_finished(page, 6, tmp_path)

        # Compare the sweep: the verdict sentence and the who-gains chart
        _nav(page, "Compare", "Compare runs")
        page.get_by_role("combobox", name="Whole sweep").click()
        page.get_by_role("option", name=re.compile("^sweep")).first.click()
        _settle(page)
        sentence = page.get_by_text(
            re.compile(
                r"(fedavg (beats|falls behind) training alone by|No difference "
                r"beyond noise between fedavg and training alone).*over 3 seeds; "
                r"\d of 3 clients gain\."
            )
        ).first
        sentence.wait_for()
        expect(page.get_by_text(re.compile(r"95% t-interval over 3 seeds")).first).to_be_visible()
        gains = page.locator("[data-testid='stPlotlyChart']", has_text=re.compile("Who gains")).first
        gains.locator(".main-svg").first.wait_for()
        for site in SITES:
            expect(gains.get_by_text(site, exact=True).first).to_be_visible()
        _no_errors(page)
        _shot(page, "verdict-compare")

        # Results of the fedavg run: the headline row and the same verdict
        page.locator("[data-testid='stSidebarNav'] a", has_text="Results").first.click()
        page.get_by_role("combobox", name="Run", exact=True).wait_for()
        _settle(page)
        _choose(page, "Run", next(o for o in _options(page, "Run") if "fedavg" in o and "seed 0" in o))
        expect(page.get_by_text("At best validation rounds").first).to_be_visible()
        expect(page.get_by_text("Final round").first).to_be_visible()
        page.get_by_text(re.compile("over 3 seeds; \\d of 3 clients gain")).first.wait_for()
        _no_errors(page)
        _shot(page, "verdict-results")


def _options(page, label: str) -> list[str]:
    """The options of the select box labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return options
