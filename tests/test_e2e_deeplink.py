"""A deep link as the very first request of a freshly started server, in headless Chromium: the
Results page of a run opens as itself, routed by ``app.py`` (its sections in the sidebar, the
design's summary), never by Streamlit's legacy multipage mode (a sidebar listing script files,
the page run without ``app.py``). The page scripts sit in section folders under ``pages/``, so
the legacy scanner, which reads only ``pages/*.py``, finds none.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_e2e_browser import _no_errors, _settle, app_url  # noqa: F401 - a fixture

from bench.app_server import chromium_page

pytestmark = pytest.mark.browser


@pytest.mark.timeout(180)
def test_a_deep_link_on_a_fresh_server_opens_its_page(app_url: str, tmp_path: Path) -> None:  # noqa: F811
    from bench.app_render import write_synthetic_run
    from engine.tracking.storage import Store

    # the server has started but no session has run a script yet: this is its first request
    store = Store(tmp_path / "home" / "e2e.db")
    run = write_synthetic_run(store, n_clients=4, n_rounds=3, name="Deep link run")
    store.close()
    with chromium_page(failure_dir=tmp_path) as page:
        page.goto(f"{app_url}/results?run={run}")
        page.get_by_role("heading", name="Deep link run").first.wait_for()
        _settle(page)
        _no_errors(page)
        assert not page.get_by_text("Page not found").count()  # the legacy mode's answer to /results
        assert page.url.split("?")[0].endswith("/results")
        nav = page.locator("[data-testid='stSidebarNav']")
        links = [t.strip().splitlines()[-1] for t in nav.locator("a").all_inner_texts()]  # after the icon
        assert "Home" in links and "Results" in links and "Catalog" in links, links
        assert not {"app", "results", "common", "ui"} & set(links), links  # no script file names
        headers = nav.inner_text()
        assert all(section in headers for section in ("Design", "Reference")), headers
        assert page.get_by_text("EXPERIMENT BEING DESIGNED").count() == 1  # app.py's sidebar
        # the sidebar's links are the router's: another section's page opens from it
        nav.locator("a", has_text="Catalog").first.click()
        page.get_by_role("heading", name="Catalog").first.wait_for()
        _no_errors(page)
    # the terminal a user started the app from: no start-up warnings (the router's declaration
    # outside a script run; a websockets/uvicorn pair that breaks behind a reverse proxy)
    log = (tmp_path / "streamlit.log").read_text(encoding="utf-8", errors="replace")
    assert "missing ScriptRunContext" not in log, log[-2000:]
    assert "can abort the /_stcore/stream" not in log, log[-2000:]
