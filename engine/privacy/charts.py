"""Privacy charts (Plotly, no streamlit), in :mod:`engine.reporting.charts`' colour language: epsilon spent
per client and round with each client's budget, the privacy-utility trade-off of one run's clients,
and of a sweep of runs (the primary metric against epsilon, one line per strategy, the no-DP run
as the reference)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from engine.reporting.charts.style import _empty, _layout, _shade, arch_color, series_colors
from engine.sanitize import chart_text

INF_LABEL = "no DP"


def epsilon_curves(
    client_df: pd.DataFrame,
    roster: pd.DataFrame,
    budgets: dict[int, float | None],
    *,
    server: pd.DataFrame | None = None,
    title: str = "Privacy spent (ε) per client",
) -> go.Figure:
    """Epsilon spent after each round, one line per DP-SGD client (coloured by architecture,
    named), its budget as a dotted line of the same colour; the server's user-level epsilon
    (``server``: rounds and values) in black when the run has server-side DP."""
    df = client_df[client_df["key"] == "epsilon"] if not client_df.empty else client_df
    if df.empty and (server is None or server.empty):
        return _empty("No client trained with differential privacy in this run.", title)
    names = dict(zip(roster["client_id"], roster["name"], strict=False)) if not roster.empty else {}
    archs = dict(zip(roster["client_id"], roster["arch"], strict=False)) if not roster.empty else {}
    fig = go.Figure()
    ids = sorted(int(c) for c in df["client_id"].unique()) if not df.empty else []
    by_arch: dict[str, list[int]] = {}
    for cid in ids:
        by_arch.setdefault(str(archs.get(cid, "")), []).append(cid)
    last_round = int(df["round"].max()) if not df.empty else 1
    for cid in ids:
        part = df[df["client_id"] == cid].sort_values("round")
        arch = str(archs.get(cid, ""))
        mates = by_arch[arch]
        color = _shade(arch_color(arch), mates.index(cid), len(mates))
        name = chart_text(str(names.get(cid, f"client {cid}")))
        fig.add_trace(
            go.Scatter(
                x=part["round"],
                y=part["value"],
                mode="lines+markers",
                name=name,
                line={"color": color, "width": 2},
                marker={"size": 5},
                hovertemplate=f"{name}<br>round %{{x}}: ε = %{{y:.3g}}<extra></extra>",
            )
        )
        budget = budgets.get(cid)
        if budget is not None and math.isfinite(budget):
            fig.add_trace(
                go.Scatter(
                    x=[1, last_round],
                    y=[budget, budget],
                    mode="lines",
                    name=f"{name}: budget",
                    line={"color": color, "dash": "dot", "width": 1},
                    showlegend=False,
                    hovertemplate=f"{name}'s budget: ε = {budget:g}<extra></extra>",
                )
            )
    if server is not None and not server.empty:
        s = server.sort_values("round")
        fig.add_trace(
            go.Scatter(
                x=s["round"],
                y=s["value"],
                mode="lines",
                name="server (user-level)",
                line={"color": "#222222", "width": 2, "dash": "dash"},
                hovertemplate="server, user-level<br>round %{x}: ε = %{y:.3g}<extra></extra>",
            )
        )
    fig = _layout(fig, title, "Round", "ε spent (smaller is more private)")
    fig.update_layout(hovermode="closest", legend={"orientation": "v", "x": 1.02, "y": 1})
    return fig


def _x_positions(values: pd.Series) -> tuple[pd.Series, float | None]:
    """Epsilon on a log axis with infinity drawn at a labelled position past the largest finite value."""
    finite = values[values.apply(lambda v: v is not None and math.isfinite(v) and v > 0)]
    if finite.empty:
        return values.apply(lambda v: 1.0), 1.0
    spot = float(finite.max()) * 3
    return values.apply(lambda v: spot if v is None or not math.isfinite(v) else max(float(v), 1e-3)), spot


def client_tradeoff(
    points: pd.DataFrame, metric_label: str, *, title: str = "Privacy and accuracy per client"
) -> go.Figure:
    """Each client of one run as a point: epsilon spent (log axis; clients without DP-SGD at
    "no DP") against its own ``metric_label`` figure, coloured by architecture."""
    pts = points.dropna(subset=["value"])
    if pts.empty:
        return _empty("No client figure recorded yet.", title)
    x, spot = _x_positions(pts["epsilon"])
    fig = go.Figure()
    for arch, part in pts.assign(x=x).groupby("arch", sort=True):
        names = [chart_text(str(n)) for n in part["name"]]
        eps = ["no DP" if not math.isfinite(e) else f"ε = {e:.3g}" for e in part["epsilon"]]
        fig.add_trace(
            go.Scatter(
                x=part["x"],
                y=part["value"],
                mode="markers+text",
                text=names,
                textposition="top center",
                name=chart_text(str(arch)),
                marker={"size": 12, "color": arch_color(str(arch))},
                customdata=eps,
                hovertemplate="%{text}<br>%{customdata}<br>" + metric_label + ": %{y:.3f}<extra></extra>",
            )
        )
    fig = _layout(fig, title, "ε spent (log scale; smaller is more private)", metric_label)
    _log_axis(fig, pts["epsilon"], spot)
    fig.update_layout(hovermode="closest")
    return fig


def sweep_tradeoff(points: pd.DataFrame, *, title: str = "Privacy-utility trade-off") -> go.Figure:
    """The primary metric against epsilon for a set of runs: per strategy the mean over seeds at
    each budget (bars of +-1 std across seeds), joined by a line; runs without DP as a dashed
    horizontal line of the strategy's colour at the "no DP" end."""
    pts = points.dropna(subset=["value"])
    if pts.empty:
        return _empty("No finished run with a headline figure among these.", title)
    metric = str(pts["metric"].iloc[0])
    x, spot = _x_positions(pts["epsilon"])
    pts = pts.assign(x=x, finite=pts["epsilon"].apply(lambda e: math.isfinite(e)))
    strategies = list(dict.fromkeys(pts["strategy"]))
    colors = series_colors([(s, s) for s in strategies])
    fig = go.Figure()
    for strategy in strategies:
        mine = pts[pts["strategy"] == strategy]
        color = colors[strategy]
        dp = mine[mine["finite"]]
        if not dp.empty:
            # runs of one budget (seeds) sit at slightly different spent epsilons: group by budget label
            key = dp["variant"].fillna(dp["epsilon"].round(2).astype(str))
            grouped = (
                dp.assign(k=key)
                .groupby("k")
                .agg(x=("epsilon", "mean"), y=("value", "mean"), sd=("value", "std"), n=("value", "size"))
                .sort_values("x")
            )
            fig.add_trace(
                go.Scatter(
                    x=grouped["x"],
                    y=grouped["y"],
                    mode="lines+markers",
                    name=chart_text(strategy),
                    line={"color": color, "width": 2},
                    marker={"size": 8},
                    error_y={
                        "type": "data",
                        "array": grouped["sd"].fillna(0.0),
                        "visible": True,
                        "color": color,
                    },
                    customdata=grouped["n"],
                    hovertemplate=f"{chart_text(strategy)}<br>ε = %{{x:.3g}}<br>{metric}: %{{y:.3f}} "
                    f"(%{{customdata}} seed(s))<extra></extra>",
                )
            )
        ref = mine[~mine["finite"]]
        if not ref.empty:
            y = float(ref["value"].mean())
            lo = float(grouped["x"].min()) if not dp.empty else spot / 3
            fig.add_trace(
                go.Scatter(
                    x=[lo, spot],
                    y=[y, y],
                    mode="lines+markers",
                    name=f"{chart_text(strategy)}, no DP",
                    line={"color": color, "dash": "dash", "width": 1.5},
                    marker={"size": [0, 9], "symbol": "star"},
                    hovertemplate=f"{chart_text(strategy)} without DP<br>{metric}: {y:.3f} ({len(ref)} "
                    f"run(s))<extra></extra>",
                )
            )
    fig = _layout(fig, title, "ε spent (log scale; smaller is more private)", metric)
    _log_axis(fig, pts["epsilon"], spot)
    fig.update_layout(hovermode="closest")
    return fig


def _log_axis(fig: go.Figure, eps: pd.Series, spot: float | None) -> None:
    finite = [float(e) for e in eps if math.isfinite(e) and e > 0]
    fig.update_xaxes(type="log")
    if spot is not None and any(not math.isfinite(e) for e in eps):
        ticks = sorted({*(round(v, 2) for v in _nice(finite)), spot})
        fig.update_xaxes(tickvals=ticks, ticktext=[INF_LABEL if t == spot else f"{t:g}" for t in ticks])


def _nice(values: list[float]) -> list[float]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    out = [v for v in (0.1, 0.2, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000) if lo / 2 <= v <= hi * 1.5]
    return out or [lo, hi]
