"""A hostile user in a real headless Chromium: importing a design that points at a server file
shows one clear refusal and nothing of the file; the image-folder field cannot reach outside the
data directory; a run name carrying a Markdown image and a link is shown as text, the browser
fetches nothing from it, and no table offers its own (unneutralised) CSV download."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.app_server import chromium_page
from tests.test_e2e_browser import _nav, _settle, app_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

EVIL = "http://198.51.100.7:9/pixel.png"  # TEST-NET-2: never routable; any request to it is a leak
SECRET_MARKS = ("root:x:0:0", "/bin/bash", "/usr/sbin/nologin", "daemon:")


def _alerts(page) -> list[str]:
    boxes = page.locator("[data-testid='stAlertContentError']")
    return [boxes.nth(i).inner_text() for i in range(boxes.count())]


@pytest.fixture
def seeded_run(tmp_path: Path) -> str:
    """A finished run whose name is a Markdown image and link, in the database the app opens."""
    from bench.app_render import write_synthetic_run
    from engine.tracking.storage import Store

    store = Store(tmp_path / "home" / "e2e.db")
    run_id = write_synthetic_run(
        store, n_clients=2, n_rounds=2, name=f"![pixel]({EVIL}) [click](http://evil.test)"
    )
    store.close()
    return run_id


@pytest.mark.timeout(240)
def test_hostile_design_file_and_names_in_the_browser(
    seeded_run: str,
    app_url: str,  # noqa: F811 - app_url is the imported fixture
    tmp_path: Path,
) -> None:
    design = {
        "name": "harmless looking",
        "rounds": 2,
        "clients": [{"name": "c", "count": 2}],
        "data": {"dataset": "csv", "path": "/etc/passwd", "delimiter": ":", "target": "root"},
    }
    upload = tmp_path / "design.json"
    upload.write_text(json.dumps(design))
    requested: list[str] = []
    # waits without a timeout of their own take Playwright's default (30 s), as they did
    with chromium_page(default_timeout=30_000, failure_dir=tmp_path) as page:
        page.on("request", lambda r: requested.append(r.url))
        page.goto(app_url)
        page.get_by_role("heading", name="FedMosaic").first.wait_for(timeout=60_000)
        _settle(page)

        # the run name is text: no image element, no link, no request to its address
        page.get_by_text("![pixel](").first.wait_for(timeout=30_000)
        assert page.locator(f"img[src='{EVIL}']").count() == 0
        assert page.locator("a[href*='198.51.100.7']").count() == 0
        assert page.locator("a[href='http://evil.test']").count() == 0

        # import the design through the sidebar: one refusal, nothing of the file
        page.locator("[data-testid='stSidebar']").get_by_text("Drafts and config files", exact=True).click()
        page.locator("[data-testid='stSidebar'] input[type='file']").set_input_files(str(upload))
        page.get_by_text("outside the folders FedMosaic may read").first.wait_for(timeout=30_000)
        _settle(page)
        alerts = _alerts(page)
        assert len(alerts) == 1 and "importing the config" in alerts[0], alerts
        body = page.locator("body").inner_text()
        assert not any(mark in body for mark in SECRET_MARKS)
        assert "harmless looking" not in body  # the refused design did not replace the current one
        page.screenshot(path=str(tmp_path / "import-refused.png"))

        # the image-folder field of a downloaded dataset cannot point outside the data directory
        _nav(page, "Data")
        page.get_by_role("combobox", name="Dataset", exact=True).click()
        page.get_by_role("option", name="mnist", exact=True).click()
        _settle(page)
        page.get_by_text("Where the files are").click()
        outside = tmp_path / "outside" / "mnist"
        field = page.get_by_role(
            "textbox", name="Folder holding the downloaded files (empty: the data directory)"
        )
        field.fill(str(outside))
        field.press("Enter")
        page.get_by_text("outside the folders FedMosaic may read").first.wait_for(timeout=30_000)
        _settle(page)
        page.screenshot(path=str(tmp_path / "folder-refused.png"), full_page=True)
        assert any("outside the folders FedMosaic may read" in a for a in _alerts(page))
        assert not (tmp_path / "outside").exists()

        _nav(page, "Runs")  # the run table is a canvas grid: its cells are text by construction
        page.get_by_text("![pixel](").first.wait_for(state="attached", timeout=30_000)
        assert page.locator(f"img[src='{EVIL}']").count() == 0
        page.locator("[data-testid='stDataFrame']").first.hover()  # the table's toolbar shows on hover
        page.wait_for_timeout(500)
        assert page.get_by_role("button", name="Download as CSV").count() == 0  # it would write names raw
    assert not [u for u in requested if "198.51.100.7" in u or "evil.test" in u], requested
    assert os.path.exists(tmp_path / "import-refused.png")
