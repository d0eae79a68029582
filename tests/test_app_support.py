"""Helpers shared by the AppTest page tests (no tests here).

``AppTest`` resets Streamlit's legacy multipage flag before every run, and because the pages live
in ``pages/`` it then serves each rerun's page file on its own, without ``app.py`` (the router that
draws the sidebar and wraps the page). The ``routed_apptest`` fixture keeps the flag off, as a real
server does once ``st.navigation`` has run, so every test run goes through ``app.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def routed_apptest(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def app(page: str | None = None, *, template: str | None = None, design: dict | None = None,
        timeout: float = 120, **query: str) -> AppTest:
    """Start a session on Home (with ``query`` in the address), optionally load a template or
    set the design, then go to ``page``."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    if template:
        at.button(key=f"tmpl-{template}").click().run()
    if design is not None:
        at.session_state["design"] = design
    if page:
        at.switch_page(f"pages/{page}.py")
        at.run()
    return at


def assert_clean(at: AppTest) -> None:
    """No exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
