"""Helpers shared by the AppTest page tests (no tests here).

``app.py`` routes every run (``st.navigation``); the page scripts sit in section folders under
``pages/`` (``pages.common.ui.PAGES``), so Streamlit's legacy multipage mode, which AppTest enters
before every run because the folder exists, finds no page of its own and runs ``app.py``.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages.common.ui import PAGES

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def app(
    page: str | None = None,
    *,
    template: str | None = None,
    design: dict | None = None,
    timeout: float = 120,
    **query: str,
) -> AppTest:
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
        at.switch_page(PAGES[page])
        at.run()
    return at


def assert_clean(at: AppTest) -> None:
    """No exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
