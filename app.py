"""FedMosaic — the Streamlit entry: a router over explicitly listed pages (``st.navigation``).

Design an experiment (Data -> Clients -> Launch), watch it run (Runs), read and compare the results
(Results, Compare), and look things up (Catalog). The run manager is one per server process, held
with ``st.cache_resource`` (see ``pages/common/ui.py``); the experiment being designed lives in the
session and is autosaved under the data directory, keyed by ``?draft=<id>`` in the address.

    streamlit run app.py

``streamlit run`` finds :data:`app` below (an ``st.App``) and serves this file through it; every
script run executes the file as ``__main__`` and calls :func:`main`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.errors import FedMosaicError  # noqa: E402 -- needs ROOT on sys.path first
from engine.labels import dataset_label  # noqa: E402 -- needs ROOT on sys.path first
from engine.sanitize import markdown_plain  # noqa: E402 -- needs ROOT on sys.path first
from pages.common import gate, ui  # noqa: E402 -- needs ROOT on sys.path first


def navigation() -> dict[str, list[Any]]:
    """The pages by section; each page's script sits in its section's folder under ``pages/``."""
    return {
        "": [st.Page(ui.PAGES["home"], title="Home", icon=":material/home:", default=True)],
        "Design": [
            st.Page(ui.PAGES["data"], title="Data", icon=":material/dataset:"),
            st.Page(ui.PAGES["clients"], title="Clients", icon=":material/groups:"),
            st.Page(ui.PAGES["launch"], title="Launch", icon=":material/rocket_launch:"),
            st.Page(ui.PAGES["advisor"], title="Advisor", icon=":material/recommend:"),
        ],
        "Results": [
            st.Page(ui.PAGES["runs"], title="Runs", icon=":material/list_alt:"),
            st.Page(ui.PAGES["results"], title="Results", icon=":material/monitoring:"),
            st.Page(ui.PAGES["compare"], title="Compare", icon=":material/compare_arrows:"),
            st.Page(ui.PAGES["predict"], title="Predict", icon=":material/online_prediction:"),
        ],
        "Reference": [st.Page(ui.PAGES["catalog"], title="Catalog", icon=":material/menu_book:")],
    }


def sidebar() -> None:
    """The experiment being designed, and its drafts: save, load, import, export."""
    design = ui.design()
    with st.sidebar:
        st.caption("EXPERIMENT BEING DESIGNED")
        n = sum(int(c.get("count", 1) or 1) for c in design.get("clients") or [])
        st.markdown(
            f"**{markdown_plain(design.get('name', 'experiment'))}**  \n"
            f"{markdown_plain(dataset_label(design.get('data') or {}) or '?')} · {n} clients · "
            f"{markdown_plain(design.get('strategy', {}).get('name', '?'))} · "
            f"{markdown_plain(design.get('rounds', '?'))} rounds"
        )
        with st.expander("Drafts and config files"):
            ui.drafts_panel("sb")
        if gate.signed_in() and st.button("Sign out", icon=":material/logout:"):
            gate.sign_out()
            st.rerun()


def main() -> None:
    """One script run: the page settings, the password gate, the router, the sidebar, the page."""
    st.set_page_config(
        page_title="FedMosaic",
        page_icon=":material/grid_view:",
        layout="wide",
        menu_items={
            "About": "FedMosaic: design, run and compare federated-learning "
            "experiments with heterogeneous clients."
        },
    )

    gate.require_login()  # before anything else runs: a password whenever the app is exposed
    page = st.navigation(navigation())
    try:
        ui.init()
        sidebar()
    except FedMosaicError as exc:
        st.error(str(exc), icon=":material/error:")
    with ui.guard():
        page.run()


def _blank() -> None:
    """A page that is never shown (see :func:`_routed`)."""


@contextlib.asynccontextmanager
async def _routed(_app: Any) -> AsyncIterator[None]:
    """At server start, before any session: declare that this process routes with
    ``st.navigation``. Without it Streamlit's first script run after a start runs in its legacy
    multipage mode (the ``pages/`` folder exists), which does not know the router's pages: a deep
    link as that first request (``/results?run=...``) showed "Page not found" over the page.

    Outside a script run ``st.navigation`` logs "missing ScriptRunContext!" twice; expected here, so
    that logger is quiet for the call (a user starting the app sees a clean terminal)."""
    quiet = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        st.navigation([st.Page(_blank, title="FedMosaic")])
    finally:
        quiet.setLevel(level)
    yield


app = st.App(__file__, lifespan=_routed)

if __name__ == "__main__":
    main()
