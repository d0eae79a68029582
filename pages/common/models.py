"""The Models section of Results: download a run's kept models (one client's, the federation's, or
all) and open one in Predict. Self-contained: Results calls :func:`section` once."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.artifacts.bundle import models_zip
from engine.artifacts.views import kept, which_label
from engine.sanitize import safe_filename
from pages.common import ui

ALL = "__all__"


def _onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def section(store: Any, run: dict[str, Any]) -> None:
    """Models: what the run keeps, a download, and a way to predict with one."""
    st.subheader("Models")
    found = kept(store, run["id"])
    if not found.choices:
        st.caption(ui.plain(found.why or "This run keeps no models."))
        return
    labels = {ALL: "All models (every client and the federation)", **{c.key: c.label for c in found.choices}}
    reported = found.default
    st.caption(
        f"Every client's model as {ui.plain(run['strategy'])} evaluates it, and what the federation shares; "
        f"each as weights (safetensors), config.json, its preprocessing and a model card (README.md). "
        + (
            "Model cards and Predict use each client's weights of its best validation round (the round of "
            "the headline figures) unless you pick the last round."
            if reported == "best"
            else ""
        )
    )
    c1, c2, c3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    choice = c1.selectbox("Model", list(labels), format_func=labels.get, key="res.models.pick")
    onnx = c2.checkbox(
        "Add ONNX",
        key="res.models.onnx",
        disabled=not _onnx_available(),
        help="model.onnx beside the weights (the preprocessing included), for onnxruntime"
        + ("" if _onnx_available() else "; needs the onnx extra: pip install 'fedmosaic[onnx]'"),
    )
    name = None if choice == ALL else choice
    file_name = safe_filename(f"{run['id']}-{'models' if name is None else name}.zip", "models.zip")
    c3.download_button(
        "Download (.zip)",
        data=lambda: models_zip(store, run["id"], name, onnx=onnx),
        file_name=file_name,
        mime="application/zip",
        key="res.models.dl",
        on_click="ignore",
        icon=":material/download:",
        width="stretch",
        help="both the best-validation and the last-round weights of what you picked",
    )
    picked = next((c for c in found.choices if c.key == name), None)
    if picked is not None:
        rounds = " · ".join(
            which_label(w, picked.rounds, reported) for w in found.which_options() if w in picked.rounds
        )
        st.caption(f"{ui.plain(picked.label)}: {rounds}")
        if picked.predicts and st.button(
            "Predict with this model", key="res.models.predict", icon=":material/online_prediction:"
        ):
            st.switch_page(
                ui.PAGES["predict"],
                query_params={
                    "run": run["id"],
                    "model": picked.key,
                    "draft": st.session_state.get("session_id", ""),
                },
            )
