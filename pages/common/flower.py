"""Launch's "Export as a Flower app" panel: the designed experiment as a runnable Flower project
(engine/interop/flower.py). Self-contained: Launch calls :func:`panel` once."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.interop.flower import BRIDGED, NATIVE, flower_app_zip, support
from engine.sanitize import safe_filename
from pages.common import ui


def panel(design: dict[str, Any], strategy: str | None, disabled: bool) -> None:
    """An expander with what the export holds and its download (the strategy picked first)."""
    with st.expander("Export as a Flower app", icon=":material/hub:"):
        st.caption(
            "A runnable Flower project (pyproject.toml, server app, client app, task module) of this "
            "experiment: `flwr run .` runs it in Flower's simulation on each site's rows; in a real "
            "federation each site brings its own table. It runs FedMosaic's code, so it needs "
            "`pip install flwr fedmosaic`."
        )
        how = support(strategy) if strategy else None
        if how is None:
            st.info(
                f"{ui.plain(strategy or 'No strategy')} does not export to Flower. Strategies that do: "
                f"{', '.join([*NATIVE, *BRIDGED])}."
            )
            return
        st.caption(f"{ui.plain(strategy)} exports as {how}.")
        st.download_button(
            "Download the Flower app (.zip)",
            key="launch.flower",
            data=lambda: flower_app_zip({**design, "strategy": design.get("strategy") or {"name": strategy}}),
            file_name=safe_filename(f"{design.get('name', 'experiment')}-flower.zip", "flower-app.zip"),
            mime="application/zip",
            on_click="ignore",
            disabled=disabled,
            icon=":material/download:",
        )
