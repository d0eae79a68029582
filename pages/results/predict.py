"""Predict: use a model a run kept on new data. Pick a run and a model (a client's, or the
federation's), upload a table with the training columns (CSV, .xlsx, Parquet; the target column
optional) or images, and get the predictions with each class's probability (or values in the
target's units); with the target present, the figures beside the reference. The client's own
preprocessing is applied; columns that do not match are named. Download as CSV."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.artifacts.load import load
from engine.artifacts.predict import is_image_name, predict, prediction_csv
from engine.artifacts.views import kept, runs_with_models, schema_summary, template_csv, which_label
from engine.core.metrics import base_metric
from engine.errors import DataError
from engine.sanitize import safe_filename
from pages.common import ui

ui.enter_page()
ui.flash()
mgr = ui.manager_or_stop()
store = mgr.store

st.title("Predict")
runs = runs_with_models(store)
if not runs:
    st.info(
        "No run has kept models yet. Every run keeps its models when it finishes (or is cancelled after a "
        "round): launch one from the Launch page."
    )
    st.stop()
labels = {r["id"]: f"{r['name']} · {r['strategy']} · {r['status']} · {r['id']}" for r in runs}
ids = list(labels)
wanted = st.query_params.get("run")
run_id = st.selectbox(
    "Run", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=labels.get, key="pred.run"
)
found = kept(store, run_id)
choices = [c for c in found.choices if c.predicts]
if not choices:
    st.info(ui.plain(found.why or "This run keeps no model that predicts on its own (only shared parts)."))
    st.stop()
keys = [c.key for c in choices]
wanted_model = st.query_params.get("model")
c1, c2 = st.columns([3, 2])
model_key = c1.selectbox(
    "Model",
    keys,
    index=keys.index(wanted_model) if wanted_model in keys else 0,
    format_func={c.key: c.label for c in choices}.get,
    key="pred.model",
)
choice = next(c for c in choices if c.key == model_key)
options = [w for w in found.which_options() if w in choice.rounds]
which = c2.radio(
    "Weights",
    options,
    format_func=lambda w: which_label(w, choice.rounds, found.default),
    key="pred.which",
    horizontal=False,
)
if st.query_params.get("run") != run_id or st.query_params.get("model") != model_key:
    st.query_params.update({"run": run_id, "model": model_key})

loaded = None
with ui.guard("reading the model"):
    loaded = load(store, run_id, model_key, which)
if loaded is None:
    st.stop()
summary = schema_summary(loaded.config)
if not summary["readable"] and not summary["images"]:
    st.warning(f"This model cannot predict from a file of new rows: {ui.plain(summary['why'])}.")
    st.stop()
with st.expander("What this model reads", expanded=False):
    if summary["form"] == "window":
        w = summary["window"] or {}
        st.markdown(
            "Each series' rows over time, with these columns: "
            + ", ".join(f"`{ui.plain(c)}`" for c in summary["columns"])
            + (f" and **{ui.plain(summary['target'])}**" if summary["target"] else "")
            + f". Rows are sorted by `{ui.plain(w.get('time_column', ''))}` and cut into windows of "
            f"{w.get('length')} rows, as in training; each window predicts the row {w.get('horizon')} "
            f"step(s) after its end."
        )
    elif summary["form"] == "table":
        st.markdown(
            "A table with these columns"
            + (
                f" (the target **{ui.plain(summary['target'])}** is optional: "
                f"with it, the figures are computed)"
                if summary["target"]
                else ""
            )
            + ": "
            + ", ".join(f"`{ui.plain(c)}`" for c in summary["columns"])
        )
    elif summary["images"]:
        shape = "x".join(str(s) for s in loaded.config["input"]["shape"])
        st.markdown(
            f"Images (PNG, JPEG...; resized to {shape}), or a table with one column per pixel "
            f"({len(summary['columns'])} columns)."
        )
    else:
        st.markdown(
            "A table with these columns: " + ", ".join(f"`{ui.plain(c)}`" for c in summary["columns"])
        )
    if summary["task"] == "classification":
        st.caption("Classes: " + ui.plain(", ".join(summary["classes"])))
    st.download_button(
        "Empty table with these columns (.csv)",
        data=template_csv(loaded.config),
        file_name=safe_filename(f"{model_key}-columns.csv"),
        mime="text/csv",
        key="pred.template",
        on_click="ignore",
        icon=":material/table:",
    )

kinds = ["csv", "tsv", "txt", "xlsx", "parquet"] + (
    ["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"] if summary["images"] else []
)
uploads = st.file_uploader(
    "File to predict on" + (" (a table, or one or more images)" if summary["images"] else ""),
    type=kinds,
    accept_multiple_files=summary["images"],
    key="pred.upload",
)
files = [u for u in (uploads if isinstance(uploads, list) else [uploads]) if u is not None]
if not files:
    st.stop()

result = None
with ui.guard("predicting"):
    images = [(f.name, f.getvalue()) for f in files if is_image_name(f.name)]
    tables = [f for f in files if not is_image_name(f.name)]
    if images and tables:
        raise DataError("give either one table or images, not both")
    if len(tables) > 1:
        raise DataError("give one table at a time")
    if images:
        result = predict(loaded, images=images)
    else:
        result = predict(loaded, tables[0].getvalue(), tables[0].name)
if result is None:
    st.stop()

for warning in result.warnings:
    st.warning(ui.plain(warning), icon=":material/warning:")
what = f"{len(result.table)} predictions by {ui.plain(choice.label)}, {which_label(which, choice.rounds)}"
st.success(what, icon=":material/check_circle:")
if result.metrics:
    rows = []
    for key, value in result.metrics.items():
        metric = base_metric(key)
        ref = (result.reference or {}).get(key)
        rows.append(
            {
                "figure": metric.label if metric else key,
                "this model": value,
                "reference (ignores the input)": ref,
            }
        )
    st.markdown(f"**Figures on the {result.rows_scored} rows with a target**")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="pred.figures",
        column_config={
            "this model": st.column_config.NumberColumn(format="%.4f"),
            "reference (ignores the input)": st.column_config.NumberColumn(format="%.4f"),
        },
    )
st.dataframe(result.table, hide_index=True, key="pred.table")
st.download_button(
    "Download predictions (.csv)",
    data=prediction_csv(result),
    file_name=safe_filename(f"{run_id}-{model_key}-predictions.csv"),
    mime="text/csv",
    key="pred.download",
    on_click="ignore",
    icon=":material/download:",
)
