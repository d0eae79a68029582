"""Per-client charts of one run over time: participation (who trained, was offline, dropped or
joined late, round by round), the round timeline of simulated time, and late joiners' catch-up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.reporting.charts.clients import _client_frame, _one_run, _roster
from engine.reporting.charts.style import PALETTE, _empty, _layout, metric_label

_PARTICIPATION = {
    "not joined": "#e5e7eb",
    "offline": "#9ca3af",
    "not selected": "#dbeafe",
    "trained": "#2563eb",
    "partial work": "#93c5fd",
    "straggler (dropped)": "#f59e0b",
    "dropped out": "#dc2626",
}
"""Participation states of a client in a round, with their colours (blue: the update counted)."""
_CLOCK_STATUS = {0: "trained", 1: "straggler (dropped)", 2: "dropped out", 3: "partial work"}
"""The virtual clock's ``status`` client metric (engine.hardware.clock: OK, STRAGGLER, DROPOUT, PARTIAL)."""
TIME_KEYS = ("sim_total_s", "sim_time_s", "time_s")
"""Per-client simulated-time keys, in order of preference (the virtual clock records ``sim_total_s``)."""


def client_time_key(client_df: pd.DataFrame) -> str | None:
    """The per-client simulated-time metric this run recorded, or ``None``."""
    if client_df.empty:
        return None
    keys = client_df["key"].to_numpy()
    return next((k for k in TIME_KEYS if (keys == k).any()), None)


def participation_states(
    client_df: pd.DataFrame, roster: pd.DataFrame | None = None, *, run_id: str | None = None
) -> pd.DataFrame:
    """Clients x rounds of one run labelled with :data:`_PARTICIPATION` states (index: client id)."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    df = _one_run(client_df, run_id)
    if df.empty:
        return pd.DataFrame()
    rounds = sorted(df["round"].unique())
    people = _roster(roster, run_id)
    ids = sorted(set(df["client_id"].astype(int)) | set(people))

    def grid(key: str) -> np.ndarray:
        part = df[df["key"] == key]
        wide = part.pivot_table(index="client_id", columns="round", values="value", aggfunc="first")
        return wide.reindex(index=ids, columns=rounds).to_numpy(dtype=float)

    selected, completed, status, online = (grid(k) for k in ("selected", "completed", "status", "online"))
    join = np.array([int(people.get(c, {}).get("join_round") or 1) for c in ids])[:, None]
    rnd = np.array(rounds)[None, :]
    has_status = ~np.isnan(status)
    conditions = [
        rnd < join,
        online == 0,
        selected != 1,
        has_status & (status == 1),
        has_status & (status == 2),
        has_status & (status == 3),
        ~has_status & (completed == 0),
    ]
    choices = [
        "not joined",
        "offline",
        "not selected",
        _CLOCK_STATUS[1],
        _CLOCK_STATUS[2],
        _CLOCK_STATUS[3],
        "dropped out",
    ]
    states = np.select(conditions, choices, default="trained").astype(object)
    return pd.DataFrame(states, index=ids, columns=rounds)


def participation(
    client_df: pd.DataFrame,
    roster: pd.DataFrame | None = None,
    *,
    run_id: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Clients (rows) x rounds (columns) of one run: trained, partial work, straggler past the
    deadline, dropped out, offline, not selected, or not joined yet."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    title = title or "Participation: who trained in each round"
    states = participation_states(client_df, roster, run_id=run_id)
    if states.empty:
        return _empty("No client figures recorded.", title)
    names = list(_PARTICIPATION)
    code = {s: i for i, s in enumerate(names)}
    z = states.map(lambda s: code[s]).to_numpy(dtype=float)
    n = len(names)
    scale = []
    for i, s in enumerate(names):
        scale += [[i / n, _PARTICIPATION[s]], [(i + 1) / n, _PARTICIPATION[s]]]
    people = _roster(roster, run_id)
    labels = [str(people.get(int(c), {}).get("name", f"client {c}")) for c in states.index]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(states.columns),
            y=labels,
            text=states.to_numpy(),
            colorscale=scale,
            zmin=0,
            zmax=n,
            showscale=False,
            xgap=1,
            ygap=1,
            hovertemplate="%{y}<br>round %{x}: %{text}<extra></extra>",
        )
    )
    present = set(states.to_numpy().ravel())
    for s in names:  # legend entries for the states that occur
        if s in present:
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=s,
                    marker={"size": 10, "color": _PARTICIPATION[s], "symbol": "square"},
                )
            )
    fig = _layout(fig, title, "Round", "Client", height=max(320, 16 * len(labels) + 160))
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    return fig


def round_timeline(
    client_df: pd.DataFrame,
    roster: pd.DataFrame | None = None,
    *,
    rnd: int | None = None,
    run_id: str | None = None,
    deadline: float | None = None,
    title: str | None = None,
) -> go.Figure:
    """One round of one run on the virtual clock: per selected client, its simulated compute then
    transfer time as a bar, coloured by what happened (counted, partial, straggler, dropped out);
    the dashed line is the round deadline."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    df = _one_run(client_df, run_id)
    title = title or "Simulated client time in the round"
    key = client_time_key(df)
    if df.empty or key is None:
        return _empty("No simulated client times recorded (give clients device tiers).", title)
    rnd = int(rnd if rnd is not None else df["round"].max())
    part = df[df["round"].to_numpy() == rnd].pivot_table(
        index="client_id", columns="key", values="value", aggfunc="first"
    )
    if key not in part.columns or part[key].dropna().empty:
        return _empty(f"No simulated client times in round {rnd}.", title)
    part = part.dropna(subset=[key]).sort_values(key)
    people = _roster(roster, run_id)
    names = [str(people.get(int(c), {}).get("name", f"client {c}")) for c in part.index]
    tiers = [str(people.get(int(c), {}).get("tier") or "no tier") for c in part.index]
    status = [
        (_CLOCK_STATUS.get(int(s), "trained") if pd.notna(s) else "trained")
        for s in part.get("status", pd.Series(0.0, index=part.index))
    ]
    compute = part.get("sim_compute_s", part[key]).fillna(0).to_numpy()
    transfer = part.get("sim_transfer_s", pd.Series(0.0, index=part.index)).fillna(0).to_numpy()
    fig = go.Figure()
    status_arr = np.array(status)
    for s in ("trained", "partial work", "straggler (dropped)", "dropped out"):
        mask = status_arr == s
        if mask.any():
            fig.add_trace(
                go.Bar(
                    x=compute[mask],
                    y=np.array(names)[mask],
                    orientation="h",
                    name=f"{s}: compute",
                    marker_color=_PARTICIPATION[s],
                    customdata=np.array(tiers)[mask],
                    hovertemplate="%{y} (%{customdata})<br>compute %{x:.3g} s<extra>" + s + "</extra>",
                )
            )
    if transfer.any():
        fig.add_trace(
            go.Bar(
                x=transfer,
                y=names,
                orientation="h",
                name="transfer (up + down)",
                marker_color="#cbd5e1",
                customdata=np.array(tiers),
                hovertemplate="%{y} (%{customdata})<br>transfer %{x:.3g} s<extra></extra>",
            )
        )
    if deadline:
        fig.add_vline(
            x=deadline, line_dash="dash", line_color="#b91c1c", annotation_text=f"deadline {deadline:g} s"
        )
    fig = _layout(
        fig,
        f"{title} — round {rnd}",
        "Simulated seconds from the start of the round",
        "Client",
        height=max(320, 20 * len(names) + 160),
    )
    fig.update_layout(hovermode="closest", barmode="stack")
    fig.update_yaxes(categoryorder="array", categoryarray=names)
    return fig


def catch_up(
    client_df: pd.DataFrame,
    metric: str,
    roster: pd.DataFrame | None = None,
    *,
    run_id: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """How fast late joiners catch up: each late joiner's ``metric`` per round from the round it
    joined (a dotted line marks the join), against the mean of the clients present from round 1."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    df = _client_frame(client_df, metric, run_id)
    title = title or f"Late joiners catching up: {metric_label(metric)[:1].lower()}{metric_label(metric)[1:]}"
    people = _roster(roster, run_id)
    late = {
        cid: int(r.get("join_round") or 1) for cid, r in people.items() if int(r.get("join_round") or 1) > 1
    }
    if df.empty or not late:
        return _empty("No client joins late in this run.", title)
    founders = df[~df["client_id"].isin(list(late))].groupby("round")["value"].mean()
    fig = go.Figure()
    if not founders.empty:
        fig.add_trace(
            go.Scatter(
                x=founders.index,
                y=founders.values,
                mode="lines",
                name="clients from round 1 (mean)",
                line={"color": "#111", "dash": "dash", "width": 2},
            )
        )
    for i, (cid, join) in enumerate(sorted(late.items(), key=lambda kv: kv[1])):
        part = df[df["client_id"] == cid].sort_values("round")
        name = str(people.get(cid, {}).get("name", f"client {cid}"))
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=part["round"],
                y=part["value"],
                mode="lines+markers",
                name=f"{name} (joins {join})",
                line={"color": color},
                marker={"size": 4},
            )
        )
        fig.add_vline(x=join, line_dash="dot", line_color=color, opacity=0.6)
    return _layout(fig, title, "Round", metric_label(metric))
