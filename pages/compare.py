"""Compare runs: curves overlaid (the seeds of a sweep setting as mean ± std bands), final figures
side by side, fairness, communication, and what differs between their configs."""

from __future__ import annotations

import streamlit as st

from engine import api, charts
from engine.export import default_filename, render, runs_summary, seed_summary
from pages import _ui as ui

ui.enter_page()
st.title("Compare runs")
st.caption("Pick runs (or a whole sweep). Seeds of one sweep setting are averaged: the line is their mean and "
           "the band ±1 standard deviation.")
ui.flash()
PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2, "filename": "compare"}}

mgr = ui.manager_or_stop()
store = mgr.store
runs = store.list_runs(limit=1000)
if not runs:
    st.info("No runs yet. Launch some (several strategies or seeds at once make a sweep) and compare them here.")
    st.stop()

by_id = {r["id"]: r for r in runs}
groups: dict[str, list[str]] = {}
for r in runs:
    if r.get("group_id"):
        groups.setdefault(r["group_id"], []).append(r["id"])
c1, c2 = st.columns([1, 2])
group_labels = {g: f"sweep {g} · {len(ids)} runs · {by_id[ids[-1]]['name'].split(' · ')[0]}" for g, ids in groups.items()}
group = c1.selectbox("Whole sweep", [""] + list(groups), format_func=lambda g: group_labels.get(g, "—"),
                     key="cmp.group")
preset = st.session_state.pop("compare_ids", None)
if preset is not None:
    st.session_state["cmp.ids"] = [i for i in preset if i in by_id]
if group and st.session_state.get("_cmp_group") != group:
    st.session_state["cmp.ids"] = groups[group]
st.session_state["_cmp_group"] = group
if "cmp.ids" in st.session_state:  # runs deleted since: drop them
    st.session_state["cmp.ids"] = [i for i in st.session_state["cmp.ids"] if i in by_id]
if "cmp.ids" not in st.session_state:
    st.session_state["cmp.ids"] = [r["id"] for r in runs if r["status"] == "finished"][:4]
selected = c2.multiselect("Runs", list(by_id), key="cmp.ids",
                          format_func=lambda i: f"{by_id[i]['name']} · {by_id[i]['status']} · {i}")
if not selected:
    st.info("Select at least one run.")
    st.stop()


@st.cache_resource(show_spinner=False, max_entries=8, ttl=600)
def load(db: str, ids: tuple[str, ...], version: str):
    return store.round_metrics(list(ids)), store.client_metrics(list(ids))


version = "|".join(f"{by_id[i]['current_round']}{by_id[i]['status']}" for i in selected)
with ui.guard("reading the runs"):
    rounds, clients = load(str(store.path), tuple(selected), version)
    rows = store.list_runs(ids=selected)
    keys = charts.available_metrics(rounds) if not rounds.empty else []
    if not keys:
        st.info("The selected runs have no finished rounds yet.")
        st.stop()
    primary = next((k for k in ("server_acc", "global_acc_mean", "local_acc_mean", "global_r2_mean",
                                "local_r2_mean", "global_mse_mean") if k in keys), keys[0])
    m1, m2, m3 = st.columns([3, 2, 1])
    metric = m1.selectbox("Metric", keys, index=keys.index(primary), key="cmp.metric", format_func=charts.metric_label)
    x_axes = {k: v for k, v in {"round": "rounds", "sim_time_s": "simulated time", "cum_bytes_up": "data uploaded"}.items()
              if k == "round" or k in keys}
    x = m2.radio("Against", list(x_axes), format_func=x_axes.get, horizontal=True, key="cmp.x")
    band = m3.toggle("± std bands", value=True, key="cmp.band")
    st.plotly_chart(charts.curves(rounds, metric, x=x, runs=rows, band=band), key="cmp.curve", config=PLOTLY_CONFIG)

    labels = {r["id"]: api.short_label(r) for r in rows}
    st.subheader("Summary")
    summary = runs_summary(store, selected)
    summary.insert(0, "run", summary["run_id"].map(labels))
    spread, worst = metric.replace("_mean", "_std"), metric.replace("_mean", "_worst10")
    cols = [c for c in ("run", "status", "strategy", "seed", metric, spread, worst, "cum_bytes_up", "sim_time_s",
                        "duration_s", "run_id") if c in summary.columns]
    st.caption(f"Final figures: **{charts.metric_label(metric)}**"
               + (", its spread over clients and the worst 10% of clients" if spread in cols else ""))
    st.dataframe(summary[list(dict.fromkeys(cols))], hide_index=True, width="stretch", column_config={
        metric: st.column_config.NumberColumn("final", format="%.4f"),
        spread: st.column_config.NumberColumn("std over clients", format="%.4f"),
        worst: st.column_config.NumberColumn("worst 10%", format="%.4f"),
        "cum_bytes_up": st.column_config.NumberColumn("bytes up", format="%.3e"),
        "sim_time_s": st.column_config.NumberColumn("simulated s", format="%.3g"),
        "duration_s": st.column_config.NumberColumn("wall s", format="%.1f")})
    seeds = seed_summary(store, selected, [metric])
    if not seeds.empty and (seeds["n"] > 1).any():
        st.markdown("**Over seeds** (finished runs of each setting)")
        st.dataframe(seeds, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(c, format="%.4f") for c in ("mean", "std", "min", "max")})

    left, right = st.columns(2)
    client_key = next((k for k in ("local_acc", "local_r2", "local_mse", "local_loss")
                       if not clients.empty and k in set(clients["key"])), None)
    if client_key:
        left.plotly_chart(charts.fairness(clients, client_key, runs=labels), key="cmp.fair", config=PLOTLY_CONFIG)
    right.plotly_chart(charts.communication(rounds, runs=rows), key="cmp.comm", config=PLOTLY_CONFIG)

    st.subheader("What differs between their configs")
    full = {r["id"]: store.get_run(r["id"]) for r in rows}
    diff = api.config_diff({f"{labels.get(i, i)} ({i[:6]})": full[i]["config"] for i in selected if i in full})
    if diff.empty:
        st.caption("The configs are identical.")
    else:
        st.dataframe(diff, hide_index=True, width="stretch")

    d = st.columns(4)
    for col, (fmt, label) in zip(d, [("csv", "CSV (rounds)"), ("summary-csv", "Summary CSV"),
                                     ("seeds-csv", "Seeds CSV"), ("html", "HTML report")], strict=True):
        col.download_button(label, data=lambda fmt=fmt: render(store, list(selected), fmt).data,
                            file_name=default_filename(store, list(selected), fmt), key=f"cmp.dl.{fmt}",
                            width="stretch", on_click="ignore", icon=":material/download:")
    st.caption(":material/photo_camera: To save a chart as a PNG, use the camera icon in the chart's toolbar.")
