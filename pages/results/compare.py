"""Compare runs. First the verdict: each strategy against training alone (``local``, and pooled
training where run) on the same splits and seeds, as sentences with intervals and one who-gains
chart; a click launches the missing ``local`` runs. Then the curves overlaid (the seeds of a sweep
setting as mean ± std bands), the figures side by side headlined by the primary metric, fairness,
communication, and what differs between their configs. One colour per strategy across the page."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.core.metrics import headline_key, shared_primary, summary_keys
from engine.design import launching
from engine.reporting import charts, results
from engine.reporting.export import default_filename, render
from engine.reporting.tables import runs_summary, seed_summary
from pages.common import privacy as privacy_ui
from pages.common import robustness, ui

ui.enter_page()
st.title("Compare runs")
st.caption(
    "Pick runs (or a whole sweep). Each strategy is judged against training alone on the same splits and "
    "seeds; seeds of one sweep setting are averaged in the curves (line: mean, band: ±1 standard deviation)."
)
ui.flash()
PLOTLY_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2, "filename": "compare"},
}

mgr = ui.manager_or_stop()
store = mgr.store
runs = store.list_runs(limit=1000)
if not runs:
    st.info(
        "No runs yet. Launch some (several strategies or seeds at once make a sweep) and compare them here."
    )
    st.stop()

by_id = {r["id"]: r for r in runs}
groups: dict[str, list[str]] = {}
for r in runs:
    if r.get("group_id"):
        groups.setdefault(r["group_id"], []).append(r["id"])
c1, c2 = st.columns([1, 2])
group_labels = {
    g: f"sweep {g} · {len(ids)} runs · {by_id[ids[-1]]['name'].split(' · ')[0]}" for g, ids in groups.items()
}
group = c1.selectbox(
    "Whole sweep", [""] + list(groups), format_func=lambda g: group_labels.get(g, "—"), key="cmp.group"
)
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
selected = c2.multiselect(
    "Runs",
    list(by_id),
    key="cmp.ids",
    format_func=lambda i: f"{by_id[i]['name']} · {by_id[i]['status']} · {i}",
)
if not selected:
    st.info("Select at least one run.")
    st.stop()


@st.cache_resource(show_spinner=False, max_entries=8, ttl=600)
def load(db: str, ids: tuple[str, ...], version: str):
    return store.round_metrics(list(ids)), store.client_metrics(list(ids))


version = "|".join(f"{by_id[i]['current_round']}{by_id[i]['status']}" for i in selected)
# changes whenever a run finishes or a finished run is removed: verdicts pair finished runs anywhere
finished = str(hash(tuple((r["id"], r.get("finished_at")) for r in runs if r["status"] == "finished")))


@st.cache_resource(show_spinner=False, max_entries=24, ttl=600)
def chart(kind: str, key: tuple, _build: Any) -> Any:
    """A chart of the selection, built once per ``key`` (the database, the runs and their state, their
    names, the choices on the page) and shared read-only: the curves, fairness and communication
    charts took ~0.2 s each on every rerun."""
    return _build()


@st.cache_resource(show_spinner=False, max_entries=16, ttl=600)
def cached_verdicts(db: str, ids: tuple[str, ...], best_round: bool, finished_version: str) -> Any:
    """:func:`engine.reporting.results.verdicts`, until a run finishes or is removed."""
    return results.verdicts(store, list(ids), best_round=best_round)


def verdict_section(selected: list[str], colors: dict[str, str]) -> None:
    st.subheader("Verdict")
    at = st.radio(
        "Figures at",
        ["best", "final"],
        horizontal=True,
        key="cmp.at",
        format_func={"best": "each client's best validation round", "final": "the final round"}.get,
    )
    verdicts, pairings = cached_verdicts(str(store.path), tuple(selected), at == "best", finished)
    if not pairings:
        st.caption(
            "The verdict compares strategies with `local` (training alone) on the same split and seed: "
            "select finished runs of a strategy."
        )
        return
    for v in verdicts:
        show = {"better": st.success, "worse": st.warning}.get(v.outcome, st.info)
        show(v.sentence, icon=":material/balance:")
    if verdicts:
        st.caption(
            verdicts[0].interval_note + " Each run is paired with the baseline run on its seed; pairs "
            "outside the selection are found among all finished runs."
        )
        local = [v for v in verdicts if v.baseline == "local"] or verdicts
        setting_colors = {v.strategy: colors.get(v.pairs[0][0], charts.PALETTE[0]) for v in local if v.pairs}
        st.plotly_chart(charts.gains(local, setting_colors), key="cmp.gains", config=PLOTLY_CONFIG)
    missing = results.missing_baselines(pairings)
    if missing:
        st.info(
            f"{len(missing)} run(s) have no `local` run on the same split and seed: "
            + ", ".join(f"{by_id[rid]['name']}" for rid, _ in missing[:4])
            + (" ..." if len(missing) > 4 else ""),
            icon=":material/info:",
        )
        if st.button(
            f"Launch the local baseline ({len(missing)} run{'s' if len(missing) > 1 else ''})",
            key="cmp.baseline",
            icon=":material/play_arrow:",
            type="primary",
        ):
            with ui.guard("launching the baselines"):
                launched = launching.launch_baselines([rid for rid, _ in missing], mgr=mgr)
                ui.flash_later(
                    f"Launched {len(launched)} local run(s); the verdict updates when they finish.", "success"
                )
                st.rerun()


with ui.guard("reading the runs"):
    rounds, clients = load(str(store.path), tuple(selected), version)
    rows = [{**r, "name": results.run_label(r)} for r in store.list_runs(ids=selected)]
    keys = charts.available_metrics(rounds) if not rounds.empty else []
    if not keys:
        st.info("The selected runs have no finished rounds yet.")
        st.stop()
    m = shared_primary(rows)
    colors = charts.run_colors(list(dict.fromkeys(rounds["run_id"])), rows)
    verdict_section(selected, colors)
    robustness.attack_section(store, selected, m)

    st.subheader("Learning curves")
    primary = next((k for k in (headline_key(m, best=False), headline_key(m)) if k in keys), keys[0])
    m1, m2, m3 = st.columns([3, 2, 1])
    metric = m1.selectbox(
        "Metric", keys, index=keys.index(primary), key="cmp.metric", format_func=charts.metric_label
    )
    x_axes = {
        k: v
        for k, v in {
            "round": "rounds",
            "sim_time_s": "simulated time",
            "cum_bytes_up": "data uploaded",
        }.items()
        if k == "round" or k in keys
    }
    x = m2.radio("Against", list(x_axes), format_func=x_axes.get, horizontal=True, key="cmp.x")
    band = m3.toggle("± std bands", value=True, key="cmp.band")
    state = (str(store.path), tuple(selected), version, tuple(r["name"] for r in rows))
    st.plotly_chart(
        chart(
            "curves",
            (*state, metric, x, band),
            lambda: charts.curves(rounds, metric, x=x, runs=rows, band=band),
        ),
        key="cmp.curve",
        config=PLOTLY_CONFIG,
    )
    privacy_ui.compare_section(rows, rounds)  # privacy-utility chart (pages/common/privacy.py)

    labels = {r["id"]: r["name"] for r in rows}
    st.subheader("Summary")
    summary = runs_summary(store, selected)
    summary.insert(0, "run", summary["run_id"].map(labels))
    shown = [k for k in summary_keys(m)[:5] if k in summary.columns]
    cols = [
        c
        for c in (
            "run",
            "status",
            "strategy",
            "seed",
            *shown,
            "cum_bytes_up",
            "sim_time_s",
            "duration_s",
            "run_id",
        )
        if c in summary.columns
    ]
    st.caption(
        f"Headline: **{m.label}** on each client's own test data, mean over clients, at each client's best "
        f"validation round; then the final round, the worst 10% of clients, the spread, and the trivial "
        f"predictor. Hover a header for its full name."
    )
    config = {
        k: st.column_config.NumberColumn(
            results.headline_label(k), help=charts.metric_label(k), format="%.4f"
        )
        for k in shown
    }
    config.update(
        {
            "cum_bytes_up": st.column_config.NumberColumn("bytes up", format="%.3e"),
            "sim_time_s": st.column_config.NumberColumn("simulated s", format="%.3g"),
            "duration_s": st.column_config.NumberColumn("wall s", format="%.1f"),
        }
    )
    st.dataframe(summary[list(dict.fromkeys(cols))], hide_index=True, width="stretch", column_config=config)
    seeds = seed_summary(store, selected, [headline_key(m), headline_key(m, best=False)])
    if not seeds.empty and (seeds["n"] > 1).any():
        st.markdown("**Over seeds** (finished runs of each setting)")
        seeds["metric"] = seeds["metric"].map(results.headline_label)
        st.dataframe(
            seeds,
            hide_index=True,
            width="stretch",
            column_config={
                c: st.column_config.NumberColumn(c, format="%.4f") for c in ("mean", "std", "min", "max")
            },
        )

    left, right = st.columns(2)
    client_keys = set(clients["key"]) if not clients.empty else set()
    client_metric = next(
        (k for k in (f"best_local_{m.key}", f"local_{m.key}", "local_acc", "local_r2") if k in client_keys),
        None,
    )
    if client_metric:
        left.plotly_chart(
            chart(
                "fairness",
                (*state, client_metric),
                lambda: charts.fairness(clients, client_metric, runs=rows, colors=colors),
            ),
            key="cmp.fair",
            config=PLOTLY_CONFIG,
        )
    right.plotly_chart(
        chart("communication", state, lambda: charts.communication(rounds, runs=rows)),
        key="cmp.comm",
        config=PLOTLY_CONFIG,
    )

    st.subheader("What differs between their configs")
    full = {r["id"]: store.get_run(r["id"]) for r in rows}
    diff = results.config_diff(
        {f"{labels.get(i, i)} ({i[:6]})": full[i]["config"] for i in selected if i in full}
    )
    if diff.empty:
        st.caption("The configs are identical.")
    else:
        st.dataframe(diff, hide_index=True, width="stretch")

    d = st.columns(4)
    for col, (fmt, label) in zip(
        d,
        [
            ("csv", "CSV (rounds)"),
            ("summary-csv", "Summary CSV"),
            ("seeds-csv", "Seeds CSV"),
            ("html", "HTML report"),
        ],
        strict=True,
    ):
        col.download_button(
            label,
            data=lambda fmt=fmt: render(store, list(selected), fmt).data,
            file_name=default_filename(store, list(selected), fmt),
            key=f"cmp.dl.{fmt}",
            width="stretch",
            on_click="ignore",
            icon=":material/download:",
        )
    st.caption(
        ":material/photo_camera: To save a chart as a PNG, use the camera icon in the chart's toolbar."
    )
