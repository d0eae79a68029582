"""Per-client charts of one run: curves, heatmap, final bars and fairness (who ended where);
the participation, round-timeline and catch-up charts live in :mod:`.timeline`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.core.metrics import higher_is_better
from engine.reporting.charts.style import (
    PALETTE,
    _empty,
    _layout,
    _run_rows,
    _shade,
    group_color,
    metric_label,
    run_colors,
    short_label,
)
from engine.sanitize import chart_text


# ---- per-client views (one run) -----------------------------------------------------------------
def _one_run(df: pd.DataFrame, run_id: str | None) -> pd.DataFrame:
    if run_id is None and not df.empty:
        run_id = df["run_id"].iloc[0]
    return df[df["run_id"] == run_id] if "run_id" in df.columns else df


def _roster(roster: pd.DataFrame | None, run_id: str | None) -> dict[int, dict[str, Any]]:
    if roster is None or roster.empty:
        return {}
    if "run_id" in roster.columns and run_id is not None:
        roster = roster[roster["run_id"] == run_id]
    return {
        int(r["client_id"]): {**r, "name": chart_text(r["name"])} if r.get("name") is not None else r
        for r in roster.to_dict("records")
    }


def _client_frame(client_df: pd.DataFrame, metric: str, run_id: str | None) -> pd.DataFrame:
    df = _one_run(client_df, run_id)
    return df[df["key"] == metric].dropna(subset=["value"])


def client_curves(
    client_df: pd.DataFrame,
    metric: str,
    roster: pd.DataFrame | None = None,
    *,
    run_id: str | None = None,
    color_by: str = "arch",
    title: str | None = None,
) -> go.Figure:
    """One line per client of one run (the first in ``client_df`` unless ``run_id``), each named
    in the legend and on hover, coloured by ``color_by`` (a roster column: ``arch``, ``tier``):
    clients of one group are shades of the group's colour."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    df = _client_frame(client_df, metric, run_id)
    title = title or f"{metric_label(metric)} per client"
    if df.empty:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    people = _roster(roster, run_id)
    ids = sorted(int(c) for c in df["client_id"].unique())
    group_of = {cid: str(people.get(cid, {}).get(color_by) or "unspecified") for cid in ids}
    members: dict[str, list[int]] = {}
    for cid in ids:
        members.setdefault(group_of[cid], []).append(cid)
    fig = go.Figure()
    for cid, part in df.groupby("client_id", sort=True):
        cid = int(cid)
        name = str(people.get(cid, {}).get("name", f"client {cid}"))
        group = group_of[cid]
        mates = members[group]
        color = _shade(group_color(color_by, group), mates.index(cid), len(mates))
        label = f"{name} ({group})"
        fig.add_trace(
            go.Scatter(
                x=part["round"],
                y=part["value"],
                mode="lines",
                name=label,
                legendgroup=group,
                legendgrouptitle_text=group if mates[0] == cid else None,
                line={"color": color, "width": 1.6},
                opacity=0.9,
                hovertemplate=f"{label}<br>round %{{x}}: %{{y:.4g}}<extra></extra>",
            )
        )
    fig = _layout(fig, title, "Round", metric_label(metric))
    fig.update_layout(hovermode="closest", legend={"orientation": "v", "x": 1.02, "y": 1})
    return fig


def client_heatmap(
    client_df: pd.DataFrame,
    metric: str,
    roster: pd.DataFrame | None = None,
    *,
    run_id: str | None = None,
    title: str | None = None,
) -> go.Figure:
    """Clients (rows) x rounds (columns) of one run, coloured by ``metric``; blank where a client
    has no figure (not yet joined, not evaluated)."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    df = _client_frame(client_df, metric, run_id)
    title = title or f"{metric_label(metric)}: clients x rounds"
    if df.empty:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    grid = df.pivot(index="client_id", columns="round", values="value").sort_index()
    people = _roster(roster, run_id)
    labels = [
        f"{people.get(int(c), {}).get('name', f'client {c}')} "
        f"({people.get(int(c), {}).get('arch', '')})".replace(" ()", "")
        for c in grid.index
    ]
    scale = "Viridis" if higher_is_better(metric) else "Viridis_r"
    fig = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=list(grid.columns),
            y=labels,
            colorscale=scale,
            colorbar={"title": metric.split("_")[-1]},
            hoverongaps=False,
            hovertemplate="%{y}<br>round %{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig = _layout(fig, title, "Round", "Client", height=max(320, 22 * len(labels) + 120))
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    return fig


def final_values(client_df: pd.DataFrame, metric: str, run_id: str | None = None) -> pd.DataFrame:
    """Each client's last recorded ``metric`` in one run: ``client_id, round, value``."""
    df = _client_frame(client_df, metric, run_id)
    if df.empty:
        return pd.DataFrame({"client_id": [], "round": [], "value": []})
    last = df.sort_values("round").groupby("client_id").tail(1)
    return last[["client_id", "round", "value"]].reset_index(drop=True)


def final_client_bars(
    client_df: pd.DataFrame,
    metric: str,
    roster: pd.DataFrame | None = None,
    *,
    run_id: str | None = None,
    color_by: str = "arch",
    title: str | None = None,
    reference: pd.DataFrame | None = None,
) -> go.Figure:
    """Each client's last recorded ``metric`` in one run (for a ``best_`` key: at its best
    validation round), best first, coloured by architecture (or ``color_by="tier"``), with the mean
    over clients as a dashed line and each client's trivial predictor (``reference``: ``client_id,
    value``) as a tick."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    last = final_values(client_df, metric, run_id)
    title = title or (
        f"{metric_label(metric)} per client"
        if metric.startswith("best_")
        else f"Final {metric_label(metric)[:1].lower()}{metric_label(metric)[1:]} per client"
    )
    if last.empty:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    people = _roster(roster, run_id)
    last["name"] = [str(people.get(int(c), {}).get("name", f"client {c}")) for c in last["client_id"]]
    last["group"] = [str(people.get(int(c), {}).get(color_by) or "unspecified") for c in last["client_id"]]
    last = last.sort_values("value", ascending=not higher_is_better(metric))
    fig = go.Figure()
    for group in dict.fromkeys(last["group"]):
        part = last[last["group"] == group]
        fig.add_trace(
            go.Bar(
                x=part["name"],
                y=part["value"],
                name=group,
                marker_color=group_color(color_by, group),
                hovertemplate="%{x}" + f" ({group})" + "<br>%{y:.4g}<extra></extra>",
            )
        )
    if reference is not None and not reference.empty:
        ref = reference.set_index("client_id")["value"]
        names = dict(zip(last["client_id"], last["name"], strict=True))
        pts = [(names[c], float(ref[c])) for c in last["client_id"] if c in ref.index]
        if pts:
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    mode="markers",
                    name="trivial predictor",
                    marker={"symbol": "line-ew-open", "size": 18, "color": "#444", "line": {"width": 2}},
                    hovertemplate="%{x}<br>trivial predictor %{y:.4g}<extra></extra>",
                )
            )
    mean = float(last["value"].mean())
    fig.add_hline(y=mean, line_dash="dash", line_color="#444", annotation_text=f"mean {mean:.3g}")
    fig = _layout(fig, title, "Client", metric_label(metric))
    fig.update_layout(hovermode="closest", barmode="overlay", legend_title_text=color_by)
    fig.update_xaxes(categoryorder="array", categoryarray=list(last["name"]))
    return fig


def fairness(
    client_df: pd.DataFrame,
    metric: str = "local_acc",
    runs: Any = None,
    *,
    title: str | None = None,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """How evenly each run serves its clients: the distribution of the clients' final ``metric``
    (a box with every client as a point), the worst 10% of clients marked with a diamond. Each
    run's box has its curve's colour (``colors``: run id -> colour; default :func:`run_colors`)."""
    title = title or f"Fairness: {short_label(metric)} across clients"
    if client_df.empty:
        return _empty("No client figures recorded.", title)
    run_ids = list(dict.fromkeys(client_df["run_id"]))
    rows = _run_rows(runs, run_ids)
    colors = dict(colors) if colors is not None else run_colors(run_ids, runs)
    fig = go.Figure()
    seen: dict[str, int] = {}
    for run_id in run_ids:
        last = final_values(client_df, metric, run_id)
        if last.empty:
            continue
        label = str(rows[run_id].get("name") or run_id)
        if label in seen:
            label += f" · {run_id[:6]}"
        seen[label] = 1
        values = last["value"].to_numpy(dtype=float)
        k = max(1, int(np.ceil(0.1 * len(values))))
        order = np.sort(values) if higher_is_better(metric) else -np.sort(-values)
        color = colors.get(run_id, PALETTE[0])
        fig.add_trace(
            go.Box(
                y=values,
                name=label,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker_color=color,
                hovertemplate=f"{label}<br>%{{y:.4g}}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[label],
                y=[float(order[:k].mean())],
                mode="markers",
                showlegend=False,
                marker={"symbol": "diamond", "size": 12, "color": "#222"},
                hovertemplate=f"{label}: worst 10% of clients %{{y:.4g}}<extra></extra>",
            )
        )
    if not fig.data:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    fig = _layout(fig, title, "", metric_label(metric))
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig
