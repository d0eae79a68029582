"""The privacy parts of the pages (called from Launch, Results and Compare): server-side DP and
secure aggregation settings, the Privacy tab of a run (epsilon spent per client against each
budget, the privacy-utility point of every client, the server's guarantee, a sweep launcher), and
the privacy-utility chart of a set of runs. Figures come from :mod:`engine.privacy.report` and
:mod:`engine.privacy.charts`; nothing here computes privacy."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.config import ExperimentConfig
from engine.core.metrics import client_key, run_primary
from engine.design import forms, launching
from engine.design.roster import expanded_rows
from engine.privacy import charts as pcharts
from engine.privacy import report
from engine.privacy.accountant import fmt_epsilon
from engine.privacy.config import SecureAggregation, ServerDP
from pages.common import ui

PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
PRIVACY_KEYS = ("epsilon_max", "server_epsilon", "secagg_failed")


# ---- Launch ---------------------------------------------------------------------------------------
def launch_settings(design: dict[str, Any]) -> dict[str, Any]:
    """The Launch page's Privacy section: which clients train with DP-SGD (set on Clients), and
    the run's server-side DP and secure aggregation. Returns the changed config fields."""
    out: dict[str, Any] = {}
    rows = expanded_rows(design)
    private = [r for r in rows if r.get("privacy")]
    on = bool(private or design.get("server_dp") or design.get("secure_aggregation"))
    with st.expander(
        "Privacy: differential privacy and secure aggregation", expanded=on, icon=":material/shield:"
    ):
        if private:
            budgets = ", ".join(
                f"{r.get('name')} (ε {fmt_epsilon((r['privacy'] or {}).get('target_epsilon'))})"
                for r in private[:6]
            ) + (" …" if len(private) > 6 else "")
            st.markdown(
                f":material/lock: **{len(private)} of {len(rows)} clients train with DP-SGD**: {budgets}. "
                f"Their budgets are in the roster on the Clients page."
            )
        else:
            st.caption(
                "No client trains with differential privacy: set an **ε budget** per client in the Clients "
                "page's roster (DP-SGD on that client's records)."
            )
        c1, c2 = st.columns(2)
        with c1:
            dp_on = st.toggle(
                "Server-side differential privacy (DP-FedAvg)",
                value=bool(design.get("server_dp")),
                key=ui.key("launch.server_dp"),
                help="protects each client's whole contribution: every update is clipped, noise is "
                "added to their sum, clients are sampled at random. For strategies that average "
                "models; it needs many clients per round",
            )
            if dp_on:
                values = dict(design.get("server_dp") or {"target_epsilon": 8.0})
                specs = [s for s in forms.fields_of(ServerDP) if s.name != "count_noise"]
                out["server_dp"] = ui.params_form(specs, values, "launch.server_dp", columns=2)
            else:
                out["server_dp"] = None
        with c2:
            sa_on = st.toggle(
                "Secure aggregation",
                value=bool(design.get("secure_aggregation")),
                key=ui.key("launch.secagg"),
                help="clients mask their updates with pairwise masks that cancel in the sum: the "
                "server sees only the total (simulated; its extra messages count in the bytes "
                "and the simulated time)",
            )
            if sa_on:
                values = dict(design.get("secure_aggregation") or {})
                out["secure_aggregation"] = ui.params_form(
                    forms.fields_of(SecureAggregation), values, "launch.secagg", columns=1
                )
            else:
                out["secure_aggregation"] = None
    return out


# ---- Results ----------------------------------------------------------------------------------------
def has_privacy(run: dict[str, Any]) -> bool:
    """Whether a run used any privacy mechanism (its tab is shown then)."""
    config = run.get("config") or {}
    return bool(
        config.get("server_dp")
        or config.get("secure_aggregation")
        or any(c.get("privacy") for c in config.get("clients") or [])
    )


def results_tab(
    run: dict[str, Any], rounds: pd.DataFrame, clients: pd.DataFrame, roster: pd.DataFrame
) -> None:
    """The Privacy tab of one run."""
    config = run.get("config") or {}
    try:
        specs = ExperimentConfig.model_validate(config).roster()
    except Exception:  # noqa: BLE001 - a run stored by another version: show what the figures say
        specs = []
    budgets = {i: s.privacy.target_epsilon for i, s in enumerate(specs) if s.privacy is not None}
    server = report.run_privacy(config, rounds)
    m = run_primary(run, set(rounds["key"]) if not rounds.empty else set())
    key = next(
        (
            k
            for k in (client_key(m), client_key(m, best=False))
            if not clients.empty and k in set(clients["key"])
        ),
        client_key(m, best=False),
    )
    points = report.client_points(config, clients, roster, key) if specs else pd.DataFrame()
    dp_points = points[points["epsilon"].apply(lambda e: e != report.NO_DP)] if not points.empty else points
    cols = st.columns(4)
    cols[0].metric("Clients with DP-SGD", f"{len(budgets)} of {len(specs)}")
    cols[1].metric(
        "Largest ε spent by a client",
        fmt_epsilon(float(dp_points["epsilon"].max())) if len(dp_points) else "—",
        help="epsilon of DP-SGD on the client's records (per client: each guarantee covers one client's "
        "data)",
    )
    stopped = (
        clients[(clients["key"] == "budget_spent") & (clients["value"] > 0)]["client_id"].nunique()
        if not clients.empty
        else 0
    )
    cols[2].metric(
        "Budgets spent",
        f"{stopped}",
        help="clients that stopped training because one more round would exceed their ε budget",
    )
    if server["server_dp"]:
        cols[3].metric(
            "Server-side ε (user-level)",
            fmt_epsilon(server["server_dp"]["epsilon"]),
            help=f"DP-FedAvg, delta {server['server_dp'].get('delta') or '1/N'}: covers each client's "
            f"whole contribution",
        )
    elif server["secure_aggregation"]:
        sa = server["secure_aggregation"]
        cols[3].metric(
            "Secure-aggregation rounds failed",
            f"{sa['failed_rounds']}",
            help=f"rounds whose sum could not be recovered (too few clients reported); dropouts "
            f"recovered from secret shares: {sa['recovered_dropouts']}",
        )
    server_eps = rounds[rounds["key"] == "server_epsilon"][["round", "value"]] if not rounds.empty else None
    st.plotly_chart(
        pcharts.epsilon_curves(clients, roster, budgets, server=server_eps),
        key="priv.eps",
        config=PLOTLY_CONFIG,
    )
    if not points.empty:
        st.plotly_chart(pcharts.client_tradeoff(points, m.label), key="priv.tradeoff", config=PLOTLY_CONFIG)
        table = points.assign(
            epsilon=points["epsilon"].map(fmt_epsilon),
            budget=points["budget"].map(lambda b: fmt_epsilon(b) if pd.notna(b) else "—"),
        )
        st.dataframe(
            table.rename(
                columns={
                    "name": "client",
                    "arch": "architecture",
                    "epsilon": "ε spent",
                    "budget": "ε budget",
                    "value": m.label,
                }
            ).drop(columns=["client_id"]),
            hide_index=True,
            width="stretch",
        )
    if server["secure_aggregation"]:
        up = rounds[rounds["key"] == "bytes_up"]["value"].sum() if not rounds.empty else 0
        extra = clients[clients["key"] == "secagg_bytes_up"]["value"].sum() if not clients.empty else 0
        st.caption(
            f":material/lock: Secure aggregation: the server saw only sums. Its key agreement, secret shares "
            f"and masked uploads added {_bytes(extra)} "
            f"uploaded ({100 * extra / max(up, 1):.0f}% of all uploads); failed rounds: "
            f"{server['secure_aggregation']['failed_rounds']}."
        )
    sweep_launcher(run)


def _bytes(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"


def sweep_launcher(run: dict[str, Any]) -> None:
    """Launch the run's design again at several privacy budgets (and without DP): a sweep whose
    runs the privacy-utility chart on Compare shows together."""
    with st.container(border=True):
        st.markdown("**Privacy-utility sweep**: the same design at other budgets, to see what privacy costs")
        c1, c2, c3 = st.columns([2, 1, 1])
        text = c1.text_input(
            "Privacy budgets ε",
            value="1, 2, 4, 8, none",
            key="priv.sweep_eps",
            help="each run spends this ε (the DP-SGD clients', or the server's when only it uses "
            "DP); none: the reference without differential privacy",
        )
        seeds_text = c2.text_input("Seeds", value="0", key="priv.sweep_seeds")
        if c3.button("Launch sweep", key="priv.sweep_go", icon=":material/rocket_launch:", width="stretch"):
            with ui.guard("launching the privacy sweep"):
                epsilons = report.parse_epsilons(text)
                seeds = launching.parse_seeds(seeds_text)
                group, ids = report.launch_sweep(
                    run["config"], epsilons, seeds, ui.manager(), name=f"{run.get('name')} · privacy sweep"
                )
                ui.flash_later(
                    f"Launched {len(ids)} runs (sweep {group}); compare them on Compare.", "success"
                )
                st.session_state["compare_ids"] = ids
                ui.goto("compare")


# ---- Compare ----------------------------------------------------------------------------------------
def compare_section(rows: list[dict[str, Any]], rounds: pd.DataFrame) -> None:
    """The privacy-utility chart of the selected runs, when any of them used differential privacy."""
    if rounds.empty or not (set(rounds["key"]) & {"epsilon_max", "server_epsilon"}):
        return
    st.subheader("Privacy and utility")
    points = report.utility_points(rows, rounds)
    st.plotly_chart(pcharts.sweep_tradeoff(points), key="cmp.privacy", config=PLOTLY_CONFIG)
    st.caption(
        "Each point: the runs of one budget (mean ± std over seeds), at the largest ε a client spent "
        "(or the server's user-level ε); dashed: the same strategy without differential privacy."
    )
