"""Results of one run. It opens with the answer: the headline row (the primary metric at each
client's best validation round and in the final round, the best rounds, bytes, simulated time), an
overfitting warning when the curves show it, and the verdict against training alone (a sentence, an
interval and the who-gains chart; a click launches the paired ``local`` run when there is none).
Then the details: learning curves against rounds, simulated time or data exchanged; per-client
curves, heatmap and bars; fairness; communication; participation and the simulated timeline of a
round (stragglers, dropouts); late joiners catching up; the config and roster; downloads."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine import health
from engine.core.metrics import client_key, headline_key, reference_key
from engine.design import launching
from engine.reporting import charts, results, tables
from engine.reporting.export import FORMATS, default_filename, render
from engine.reporting.verdict import BASELINES
from engine.sanitize import safe_filename
from engine.tracking.schema import ACTIVE
from pages.common import models as models_ui
from pages.common import privacy as privacy_ui
from pages.common import robustness, ui

ui.enter_page()
ui.flash()
PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
X_AXES = {"round": "rounds", "sim_time_s": "simulated time", "cum_bytes_up": "data uploaded"}
SKIP_CLIENT_KEYS = {"selected", "completed", "bytes_up", "bytes_down", "best_round"}

mgr = ui.manager_or_stop()
store = mgr.store

runs = store.list_runs(limit=1000)
if not runs:
    st.title("Results")
    st.info("No runs yet. Launch one from the Launch page (or start from a template on Home).")
    st.stop()
labels = {r["id"]: f"{r['name']} · {r['status']} · {r['id']}" for r in runs}
wanted = st.query_params.get("run") or st.session_state.get("results_run")
if wanted and wanted not in labels:
    with ui.guard("opening the run"):
        extra = store.get_run(wanted)
        labels = {wanted: f"{extra['name']} · {extra['status']} · {wanted}", **labels}
ids = list(labels)
run_id = st.selectbox(
    "Run", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=labels.get, key="res.run"
)
st.session_state["results_run"] = run_id
if st.query_params.get("run") != run_id:
    st.query_params["run"] = run_id


@st.cache_resource(show_spinner=False, max_entries=48, ttl=3600)
def load(db: str, rid: str, version: str, table: str) -> Any:
    """One table of one run, read when a view needs it and cached per run state (a finished run
    never changes). Shared read-only between sessions: callers never modify it."""
    return {
        "rounds": store.round_metrics,
        "clients": store.client_metrics,
        "roster": store.clients,
        "events": store.events,
    }[table](rid)


@st.cache_resource(show_spinner=False, max_entries=32, ttl=3600)
def cached_verdicts(db: str, ids: tuple[str, ...], best_round: bool, runs_version: str) -> Any:
    """:func:`engine.reporting.results.verdicts`, cached until a run of the database changes (the
    verdict pairs this run's setting with ``local`` runs anywhere in it): it reads every client figure
    of those runs, ~1 s for a 100-client, 200-round run, which every rerun of the page paid."""
    return results.verdicts(store, list(ids), best_round=best_round)


# Changes whenever a run finishes or a finished run is removed (verdicts pair finished runs only; runs
# training beside them do not invalidate the cache every round). A comment, not a string: Streamlit's
# "magic" writes a page script's bare strings on the page.
RUNS_VERSION = str(hash(tuple((r["id"], r.get("finished_at")) for r in runs if r["status"] == "finished")))


class Tables:
    """The run's tables, each read on first use (the learning curves need no client metrics)."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.key = (
            str(store.path),
            run["id"],
            f"{run['current_round']}|{run['status']}|{run.get('finished_at')}",
        )

    def __getattr__(self, table: str) -> Any:
        if table not in ("rounds", "clients", "roster", "events"):
            raise AttributeError(table)
        return load(*self.key, table)


def plot(fig: Any, key: str) -> None:
    st.plotly_chart(
        fig,
        key=key,
        config={
            **PLOTLY_CONFIG,
            "toImageButtonOptions": {
                **PLOTLY_CONFIG["toImageButtonOptions"],
                "filename": safe_filename(f"{run_id}-{key}"),
            },
        },
    )


def downloads(run: dict[str, Any]) -> None:
    cols = st.columns(5)
    for col, (fmt, label) in zip(
        cols,
        [
            ("csv", "CSV (rounds)"),
            ("clients-wide-csv", "CSV (clients)"),
            ("json", "JSON config"),
            ("html", "HTML report"),
            ("manifest", "Manifest"),
        ],
        strict=True,
    ):
        f = FORMATS[fmt]
        col.download_button(
            label,
            data=lambda fmt=fmt: render(store, run["id"], fmt).data,
            file_name=default_filename(store, run["id"], fmt),
            mime=f.mime,
            key=f"res.dl.{fmt}",
            help=f.description,
            width="stretch",
            on_click="ignore",
            icon=":material/download:",
        )
    st.caption(
        ":material/photo_camera: To save any chart as a PNG, use the camera icon in the chart's toolbar (top "
        "right of the chart)."
    )


def header(run: dict[str, Any], progress: dict[str, Any]) -> None:
    st.title(ui.plain(run["name"]))
    st.caption(
        f"{ui.status_label(run['status'])} · strategy `{run['strategy']}` · dataset `{run['dataset']}` · "
        f"{run['n_clients']} clients · seed {run['seed']} · round {run['current_round']}/{run['rounds']}"
        + (f" · sweep `{run['group_id']}`" if run.get("group_id") else "")
        + (" · tags: " + ", ".join(run["tags"]) if run.get("tags") else "")
    )
    if run["status"] in ACTIVE:
        eta = progress.get("eta_s")
        bar, stop = st.columns([5, 1], vertical_alignment="center")
        bar.progress(
            float(progress.get("fraction") or 0.0),
            text=f"Round {progress.get('current_round', 0)} of {progress.get('rounds', 0)}"
            + (f" · about {eta:.0f} s left" if eta else "")
            + (f" · {progress['phase']}" if progress.get("phase") else "")
            + (
                f" · waiting in the queue (position {progress['queue_position']})"
                if progress.get("queue_position")
                else ""
            ),
        )
        if stop.button("Cancel run", key="res.cancel", icon=":material/stop_circle:", width="stretch"):
            with ui.guard("cancelling"):
                mgr.cancel(run["id"])
                st.toast("Cancelling: the run stops after the current batch.", icon=":material/stop_circle:")
    elif run["status"] in ("interrupted", "cancelled", "failed"):
        note, resume = st.columns([5, 1], vertical_alignment="center")
        note.info(
            f"This run is {run['status']} at round {run['current_round']} of {run['rounds']}; resume it from "
            f"its last checkpoint.",
            icon=":material/info:",
        )
        if resume.button("Resume", key="res.resume", icon=":material/play_arrow:", width="stretch"):
            with ui.guard("resuming"):
                mgr.resume(run["id"])
                st.rerun(scope="app")
    if run.get("error"):
        st.error(f"This run failed: {run['error']}", icon=":material/error:")
    for message in health.run_warnings(store, run["id"]):
        st.warning(message, icon=":material/warning:")


def _bytes(value: float | None) -> str:
    if value is None:
        return "—"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def headline_row(run: dict[str, Any], data: Tables) -> Any:
    """The figures a domain expert came for, first; returns the run's primary metric."""
    h = results.run_headline(store, run["id"], data.rounds, data.clients)
    m = h.metric
    name = m.label[:1].upper() + m.label[1:]
    st.markdown(f"**{name}** on each client's own test data, mean over clients")
    cols = st.columns(5)
    cols[0].metric(
        "At best validation rounds",
        m.value_text(h.best),
        help=f"{charts.metric_label(headline_key(m))}: each client's model on its own test data, taken at "
        f"the round its validation data picked (early stopping). Test data chose nothing.",
    )
    delta = (
        None
        if h.best is None or h.final is None or abs(h.final - h.best) < 5e-4
        else f"{h.final - h.best:+.3f} vs best rounds"
    )
    cols[1].metric(
        "Final round",
        m.value_text(h.final),
        delta=delta,
        delta_color="off",
        delta_arrow="off",
        help=charts.metric_label(headline_key(m, best=False)),
    )
    rounds = sorted(h.best_rounds)
    cols[2].metric(
        "Best round",
        str(rounds[len(rounds) // 2]) if rounds else "—",
        delta=f"clients: {rounds[0]}–{rounds[-1]}" if rounds and rounds[0] != rounds[-1] else None,
        delta_color="off",
        delta_arrow="off",
        help="The round each client's validation data picked (median over clients): "
        "its kept weights and reported figures.",
    )
    cols[3].metric(
        "Data exchanged", _bytes(h.bytes_total), help="Uploaded plus downloaded, all clients, all rounds."
    )
    cols[4].metric(
        "Simulated time",
        _duration(h.sim_time_s),
        help="On the virtual clock (device tiers); — when clients have no tier.",
    )
    notes = [f"Primary metric: **{m.label}** ({h.reason})" if h.reason else f"Primary metric: **{m.label}**"]
    if h.reference is not None:
        notes.append(
            f"a predictor that ignores the input (each client's majority class or mean) scores "
            f"{m.value_text(h.reference)}"
        )
    st.caption("; ".join(notes) + ".")
    warning = results.overfitting_flag(data.rounds)
    if warning:
        st.warning(warning, icon=":material/trending_up:")
    return m


def verdict_panel(run: dict[str, Any]) -> None:
    """The strategy against training alone (and pooled training), over the seeds of its setting."""
    st.subheader("Verdict")
    if run["strategy"] in BASELINES:
        st.caption(
            f"`{run['strategy']}` is a reference. Open a strategy's run (or Compare) to see how it does "
            f"against it."
        )
        return
    if run["status"] != "finished":
        st.caption("The verdict appears when the run has finished.")
        return
    at = st.radio(
        "Figures at",
        ["best", "final"],
        horizontal=True,
        key="res.at",
        format_func={"best": "each client's best validation round", "final": "the final round"}.get,
    )
    ids = results.setting_runs(store, run["id"])
    verdicts, pairings = cached_verdicts(str(store.path), tuple(ids), at == "best", RUNS_VERSION)
    for v in verdicts:
        show = {"better": st.success, "worse": st.warning}.get(v.outcome, st.info)
        show(v.sentence, icon=":material/balance:")
        st.caption(v.interval_note)
        cause = health.verdict_warning(v)
        if cause:
            st.warning(cause, icon=":material/warning:")
    local = [v for v in verdicts if v.baseline == "local"]
    if local or verdicts:
        plot(charts.gains(local[:1] or verdicts[:1]), "gains")
    missing = results.missing_baselines(pairings)
    if missing:
        seeds = ", ".join(str(s) for _, s in missing)
        st.info(
            f"No `local` run on the same split and seed (seed {seeds}) to compare with: the verdict needs "
            f"one, training alone, on exactly this data.",
            icon=":material/info:",
        )
        label = "Launch the local baseline" + (f" ({len(missing)} runs)" if len(missing) > 1 else "")
        if st.button(label, key="res.baseline", icon=":material/play_arrow:", type="primary"):
            with ui.guard("launching the baseline"):
                launched = launching.launch_baselines([rid for rid, _ in missing], mgr=mgr)
                ui.flash_later(
                    f"Launched {len(launched)} local run(s) on the same split and seed; the verdict "
                    f"appears here when they finish.",
                    "success",
                )
                st.rerun(scope="app")


def live_header() -> None:
    """The run's name, status and progress (and its Cancel button): redrawn every 2 s while it runs."""
    run = store.get_run(run_id)
    if was_active and run["status"] not in ACTIVE:
        st.rerun(scope="app")  # finished while we watched: stop polling and show the final state
    header(run, mgr.progress(run_id) if run["status"] in ACTIVE else {})


def body() -> None:
    """Figures, verdict, downloads and tabs: redrawn every ``CHARTS_EVERY_S`` while the run is
    active (a round of a small run takes seconds; rebuilding and redrawing the charts every 2 s
    kept a core busy between the server and the browser)."""
    run = store.get_run(run_id)
    data = Tables(run)
    rounds = data.rounds
    if rounds.empty:
        downloads(run)
        st.info(
            "No round has finished yet; the charts appear after the first round."
            if run["status"] in ACTIVE
            else "This run recorded no rounds."
        )
        config_tab(run, data.roster, data.events)
        return
    m = headline_row(run, data)
    verdict_panel(run)
    robustness.run_panel(run, rounds, plot)
    downloads(run)
    models_ui.section(store, run)
    keys = charts.available_metrics(rounds)
    primary = next((k for k in (headline_key(m, best=False), headline_key(m)) if k in keys), keys[0])
    private = privacy_ui.has_privacy(run)  # its own tab (pages/common/privacy.py)
    tabs = st.tabs(
        [*results.TABS, *(["Privacy"] if private else [])],
        key="res.tab",
        on_change="rerun",
    )
    if private:
        with tabs[7]:
            if tabs[7].open:
                privacy_ui.results_tab(run, rounds, data.clients, data.roster)
    run_rows = [run]
    with tabs[0]:
        if tabs[0].open:
            c1, c2 = st.columns([3, 2])
            metric = c1.selectbox(
                "Metric", keys, index=keys.index(primary), key="res.metric", format_func=charts.metric_label
            )
            x_keys = [k for k in X_AXES if k == "round" or k in keys]
            x = c2.radio("Against", x_keys, format_func=X_AXES.get, horizontal=True, key="res.x")
            ref = rounds[rounds["key"] == (reference_key(metric) or "")]["value"]
            plot(
                charts.curves(
                    rounds,
                    metric,
                    x=x,
                    runs=run_rows,
                    reference=float(ref.iloc[-1]) if not ref.empty else None,
                ),
                "curve",
            )
            plot(charts.losses(rounds, x=x), "losses")

    def client_view() -> tuple[Any, Any, list[str], str | None]:
        clients, roster = data.clients, data.roster
        client_keys = sorted(set(clients["key"]) - SKIP_CLIENT_KEYS) if not clients.empty else []
        default = next(
            (
                k
                for k in (client_key(m), client_key(m, best=False), "local_acc", "local_r2", "local_loss")
                if k in client_keys
            ),
            client_keys[0] if client_keys else None,
        )
        return clients, roster, client_keys, default

    with tabs[1]:
        clients, roster, client_keys, default_ck = client_view() if tabs[1].open else (None, None, [], None)
        if tabs[1].open and default_ck:
            c1, c2 = st.columns([3, 2])
            ck = c1.selectbox(
                "Client metric",
                client_keys,
                index=client_keys.index(default_ck),
                key="res.ck",
                format_func=charts.metric_label,
            )
            color_by = c2.radio(
                "Colour by",
                ["arch", "tier"],
                horizontal=True,
                key="res.color",
                format_func={"arch": "architecture", "tier": "device tier"}.get,
            )
            ref_key = "ref_" + ck.removeprefix("best_")
            ref = charts.final_values(clients, ref_key, run_id) if ref_key in client_keys else None
            plot(
                charts.final_client_bars(
                    clients, ck, roster, run_id=run_id, color_by=color_by, reference=ref
                ),
                "bars",
            )
            per_round = ck.removeprefix("best_")
            plot(
                charts.client_curves(clients, per_round, roster, run_id=run_id, color_by=color_by),
                "client_curves",
            )
            plot(charts.client_heatmap(clients, per_round, roster, run_id=run_id), "heatmap")
    with tabs[2]:
        clients, roster, client_keys, default_ck = client_view() if tabs[2].open else (None, None, [], None)
        if tabs[2].open and default_ck:
            last = rounds[rounds["round"] == rounds["round"].max()].set_index("key")["value"]
            base = default_ck
            m = st.columns(4)
            for col, (suffix, label) in zip(
                m,
                [
                    ("mean", "mean over clients"),
                    ("std", "spread (std)"),
                    ("worst10", "worst 10% of clients"),
                    ("best", "best client"),
                ],
                strict=True,
            ):
                value = last.get(f"{base}_{suffix}")
                col.metric(
                    label,
                    "—" if value is None else f"{value:.3f}",
                    help=charts.metric_label(f"{base}_{suffix}"),
                )
            plot(charts.fairness(clients, base, runs=run_rows), "fairness")
            spread = f"{base}_std"
            if spread in keys:
                plot(charts.curves(rounds, spread, runs=run_rows), "spread")
    with tabs[3]:
        if tabs[3].open:
            plot(charts.communication(rounds, runs=run_rows), "communication")
            if "bytes_up" in keys:
                plot(
                    charts.curves(rounds, "bytes_up", runs=run_rows, title="Data uploaded per round"),
                    "bytes_round",
                )
    with tabs[4]:
        if tabs[4].open:
            clients, roster, _, _ = client_view()
            plot(charts.participation(clients, roster, run_id=run_id), "participation")
            if charts.client_time_key(clients):
                rmax = int(rounds["round"].max())
                rnd = st.slider("Round", 1, rmax, rmax, key="res.round") if rmax > 1 else 1
                deadline = (run.get("config") or {}).get("deadline")
                plot(
                    charts.round_timeline(
                        clients,
                        roster,
                        rnd=rnd,
                        run_id=run_id,
                        deadline=deadline if isinstance(deadline, (int, float)) else None,
                    ),
                    "timeline",
                )
                if "sim_round_s" in keys:
                    plot(
                        charts.curves(
                            rounds, "sim_round_s", runs=run_rows, title="Simulated length of each round"
                        ),
                        "simround",
                    )
            else:
                st.caption(
                    "No simulated client times in this run: give clients device tiers (Clients page) to "
                    "simulate slow devices, stragglers and dropouts."
                )
    with tabs[5]:
        if tabs[5].open:
            clients, roster, _, default_ck = client_view()
            late = roster[roster["join_round"].fillna(1) > 1] if not roster.empty else roster
            if late.empty or not default_ck:
                st.caption(
                    "No client joins late in this run. Set *joins at* on the Clients page to simulate "
                    "clients that arrive mid-way."
                )
            else:
                plot(
                    charts.catch_up(clients, default_ck.removeprefix("best_"), roster, run_id=run_id),
                    "catchup",
                )
    with tabs[6]:
        if tabs[6].open:
            config_tab(run, data.roster, data.events)


def config_tab(run: dict[str, Any], roster: Any, events: Any) -> None:
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**Config** (re-runnable: `python -m engine run config.json`)")
        st.json(run.get("config") or {}, expanded=1)
    with right:
        st.markdown("**Roster**")
        if not roster.empty:
            cols = [c for c in tables.ROSTER_SUMMARY if c in roster.columns]
            st.dataframe(roster[cols], hide_index=True, width="stretch")
        st.markdown("**Events**")
        if events is not None and not events.empty:
            st.dataframe(
                events[[c for c in ("round", "level", "message") if c in events.columns]],
                hide_index=True,
                width="stretch",
                height=240,
            )
        else:
            st.caption("No events.")


status_now = store.get_run(run_id)["status"]
was_active = status_now in ACTIVE
CHARTS_EVERY_S = 6
with ui.guard("showing the results"):
    st.fragment(live_header, run_every=2 if was_active else None)()
    st.fragment(body, run_every=CHARTS_EVERY_S if was_active else None)()
