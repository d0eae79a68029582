"""FedMosaic — the Streamlit entry: a router over explicitly listed pages (``st.navigation``).

Design an experiment (Data -> Clients -> Launch), watch it run (Runs), read and compare the results
(Results, Compare), and look things up (Catalog). The run manager is one per server process, held
with ``st.cache_resource`` (see ``pages/_ui.py``); the experiment being designed lives in the
session and is autosaved under the data directory, keyed by ``?draft=<id>`` in the address.

    streamlit run app.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st

from engine.errors import FedMosaicError
from engine.labels import dataset_label
from engine.sanitize import markdown_plain
from pages import _gate
from pages import _ui as ui

st.set_page_config(page_title="FedMosaic", page_icon=":material/grid_view:", layout="wide",
                   menu_items={"About": "FedMosaic: design, run and compare federated-learning experiments "
                                        "with heterogeneous clients."})

_gate.require_login()  # before anything else runs: a password whenever the app is exposed

PAGES = {
    "": [st.Page(ui.PAGES["home"], title="Home", icon=":material/home:", default=True)],
    "Design": [st.Page(ui.PAGES["data"], title="Data", icon=":material/dataset:"),
               st.Page(ui.PAGES["clients"], title="Clients", icon=":material/groups:"),
               st.Page(ui.PAGES["launch"], title="Launch", icon=":material/rocket_launch:"),
               st.Page(ui.PAGES["advisor"], title="Advisor", icon=":material/recommend:")],
    "Results": [st.Page(ui.PAGES["runs"], title="Runs", icon=":material/list_alt:"),
                st.Page(ui.PAGES["results"], title="Results", icon=":material/monitoring:"),
                st.Page(ui.PAGES["compare"], title="Compare", icon=":material/compare_arrows:"),
                st.Page(ui.PAGES["predict"], title="Predict", icon=":material/online_prediction:")],
    "Reference": [st.Page(ui.PAGES["catalog"], title="Catalog", icon=":material/menu_book:")],
}


def sidebar() -> None:
    """The experiment being designed, and its drafts: save, load, import, export."""
    design = ui.design()
    with st.sidebar:
        st.caption("EXPERIMENT BEING DESIGNED")
        n = sum(int(c.get("count", 1) or 1) for c in design.get("clients") or [])
        st.markdown(f"**{markdown_plain(design.get('name', 'experiment'))}**  \n"
                    f"{markdown_plain(dataset_label(design.get('data') or {}) or '?')} · {n} clients · "
                    f"{markdown_plain(design.get('strategy', {}).get('name', '?'))} · "
                    f"{markdown_plain(design.get('rounds', '?'))} rounds")
        with st.expander("Drafts and config files"):
            ui.drafts_panel("sb")
        if _gate.signed_in() and st.button("Sign out", icon=":material/logout:"):
            _gate.sign_out()
            st.rerun()


page = st.navigation(PAGES)
try:
    ui.init()
    sidebar()
except FedMosaicError as exc:
    st.error(str(exc), icon=":material/error:")
with ui.routed(), ui.guard():
    page.run()
