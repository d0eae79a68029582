"""Run-level charts: a metric over rounds (seeds of a setting as a mean with a band),
communication, the verdict's gains and one run's losses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from engine.reporting.charts.style import (
    GAIN,
    LOSS,
    PALETTE,
    _empty,
    _layout,
    _rgba,
    metric_label,
    run_colors,
    series_colors,
    series_groups,
    wide_rounds,
)
from engine.sanitize import chart_text


def _scored_rows(wide: pd.DataFrame, part: pd.DataFrame, metric: str) -> dict[str, Any]:
    """Marker and hover of a global-test curve of one run whose rounds scored a fixed sample of
    the global test set between whole-set scorings (``global_rows``): filled points where every
    row was scored, open ones on the sample, the rows in the hover text."""
    plain: dict[str, Any] = {"marker": {"size": 4}, "hover": "", "text": None}
    if not metric.startswith("global_") or "global_rows" not in wide.columns:
        return plain
    rows = wide.loc[part.index, "global_rows"]
    if rows.nunique(dropna=True) < 2:
        return plain
    most = rows.max()
    full = (rows.fillna(most) == most).to_numpy()
    text = [
        f"whole global test set ({int(most):,} rows)"
        if f
        else f"a fixed sample: {int(n):,} of {int(most):,} rows"
        for n, f in zip(rows.fillna(most), full, strict=True)
    ]
    marker = {
        "size": np.where(full, 7, 5).tolist(),
        "symbol": np.where(full, "circle", "circle-open").tolist(),
    }
    return {"marker": marker, "hover": "<br>%{text}", "text": text}


# ---- run-level curves ---------------------------------------------------------------------------
def curves(
    round_df: pd.DataFrame,
    metric: str,
    x: str = "round",
    runs: Any = None,
    *,
    title: str | None = None,
    band: bool = True,
    reference: float | None = None,
) -> go.Figure:
    """One line per run, or per setting with a mean +- std band over its seeds.

    :param metric: a round metric key (``global_acc_mean``, ``server_acc``, ``local_loss_worst10``).
    :param x: ``round``, ``sim_time_s`` (simulated time) or ``cum_bytes_up`` (communication
        spent); for a band the x of each round is the mean over seeds.
    :param runs: run rows (labels, sweep groups, strategies: colours); see the module docstring.
    :param reference: a dotted line at this value (the trivial predictor's figure).
    """
    wide = wide_rounds(round_df)
    title = title or metric_label(metric)
    if metric not in wide.columns:
        return _empty(f"No '{metric_label(metric)}' recorded for these runs.", title)
    if x not in wide.columns:
        return _empty(f"No '{metric_label(x)}' recorded for these runs (x axis).", title)
    fig = go.Figure()
    run_ids = list(dict.fromkeys(wide["run_id"]))
    colors = run_colors(run_ids, runs)
    for label, members in series_groups(run_ids, runs):
        color = colors[members[0]]
        part = wide[wide["run_id"].isin(members)][list(dict.fromkeys(["run_id", "round", x, metric]))]
        part = part.dropna(subset=list(dict.fromkeys([metric, x])))
        if part.empty:
            continue
        if len(members) == 1:
            rows = _scored_rows(wide, part, metric)
            fig.add_trace(
                go.Scatter(
                    x=part[x],
                    y=part[metric],
                    mode="lines+markers",
                    name=label,
                    line={"color": color},
                    marker=rows["marker"],
                    text=rows["text"],
                    hovertemplate=f"{label}<br>%{{y:.4g}}{rows['hover']}<extra></extra>",
                )
            )
            continue
        stats = (
            part.groupby("round")
            .agg(
                x=(x, "mean"),
                mean=(metric, "mean"),
                std=(metric, lambda v: v.std(ddof=1) if len(v) > 1 else 0.0),
                n=(metric, "size"),
            )
            .reset_index()
        )
        if band:
            upper, lower = stats["mean"] + stats["std"], stats["mean"] - stats["std"]
            fig.add_trace(
                go.Scatter(
                    x=stats["x"],
                    y=upper,
                    mode="lines",
                    line={"width": 0},
                    showlegend=False,
                    hoverinfo="skip",
                    legendgroup=label,
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=stats["x"],
                    y=lower,
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=_rgba(color, 0.18),
                    showlegend=False,
                    hoverinfo="skip",
                    legendgroup=label,
                    name=f"{label} ±1 std",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=stats["x"],
                y=stats["mean"],
                mode="lines+markers",
                name=label,
                legendgroup=label,
                line={"color": color},
                marker={"size": 4},
                customdata=np.stack([stats["std"], stats["n"]], axis=1),
                hovertemplate=f"{label}<br>%{{y:.4g}} ± %{{customdata[0]:.3g}} (%{{customdata[1]}} "
                "seeds)<extra></extra>",
            )
        )
    if reference is not None and np.isfinite(reference):
        fig.add_hline(
            y=reference,
            line_dash="dot",
            line_color="#888",
            annotation_text=f"trivial predictor {reference:.3g}",
            annotation_position="bottom right",
        )
    return _layout(fig, title, metric_label(x), metric_label(metric))


def communication(round_df: pd.DataFrame, runs: Any = None, *, title: str | None = None) -> go.Figure:
    """Cumulative data exchanged per run, in MB: uploads solid, downloads dotted (seeds of a
    setting averaged)."""
    wide = wide_rounds(round_df)
    title = title or "Communication: data exchanged (cumulative)"
    if "cum_bytes_up" not in wide.columns:
        return _empty("No communication recorded for these runs.", title)
    fig = go.Figure()
    run_ids = list(dict.fromkeys(wide["run_id"]))
    colors = run_colors(run_ids, runs)
    for label, members in series_groups(run_ids, runs):
        color = colors[members[0]]
        part = wide[wide["run_id"].isin(members)]
        stats = part.groupby("round")[[c for c in ("cum_bytes_up", "cum_bytes_down") if c in part]].mean()
        for column, dash, word in (("cum_bytes_up", "solid", "up"), ("cum_bytes_down", "dot", "down")):
            if column in stats:
                fig.add_trace(
                    go.Scatter(
                        x=stats.index,
                        y=stats[column] / 1e6,
                        mode="lines",
                        name=f"{label} · {word}",
                        legendgroup=label,
                        line={"color": color, "dash": dash},
                        hovertemplate=f"{label} {word}: %{{y:.3f}} MB<extra></extra>",
                    )
                )
    return _layout(fig, title, "Round", "MB (cumulative)")


def available_metrics(
    round_df: pd.DataFrame, prefixes: Iterable[str] = ("server_", "global_", "local_")
) -> list[str]:
    """Round metric keys worth plotting (accuracy/loss/error families first), for pickers."""
    keys = set(round_df["key"]) if {"key", "value"} <= set(round_df.columns) else set(round_df.columns)
    keys -= {"run_id", "round"}
    first = sorted(k for k in keys if any(k.startswith(p) for p in prefixes))
    return first + sorted(keys - set(first))


# ---- the verdict: who gains, who loses ------------------------------------------------------------
def gains(
    verdicts: Sequence[Any], colors: Mapping[str, str] | None = None, *, title: str | None = None
) -> go.Figure:
    """The verdict's chart: per client, the paired difference of the primary metric between a
    strategy and its baseline (:class:`engine.reporting.verdict.Verdict`), as diverging horizontal bars
    (right: the strategy is better for that client). One verdict: bars blue where the client gains,
    orange where it loses, with whiskers over seeds when there are several, and the mean
    difference with its interval as a band. Several verdicts: grouped bars in each strategy's
    colour (``colors``: strategy label -> colour)."""
    verdicts = [v for v in verdicts if v.clients]
    if not verdicts:
        return _empty(
            "No paired runs: launch the local baseline on the same split and seed.", title or "Who gains"
        )
    metric = verdicts[0].metric
    scale = metric.scale
    unit = f" ({metric.unit})" if metric.unit else ""
    against = {v.baseline for v in verdicts}
    words = (
        "training alone"
        if against == {"local"}
        else "pooled training"
        if against == {"centralized"}
        else "the baseline"
    )
    title = title or (
        f"Who gains: {chart_text(verdicts[0].strategy)} minus {words}, {metric.label}"
        if len(verdicts) == 1
        else f"Who gains: each strategy minus {words}, {metric.label}"
    )
    order = sorted({(c.client_id, chart_text(c.name)) for v in verdicts for c in v.clients})
    names = [n for _, n in order]
    fig = go.Figure()
    if len(verdicts) == 1:
        v = verdicts[0]
        by_id = {c.client_id: c for c in v.clients}
        ranked = sorted(v.clients, key=lambda c: c.mean)
        xs = [c.mean * scale for c in ranked]
        labels = [chart_text(c.name) for c in ranked]
        err = [((c.interval.high - c.mean) * scale if c.interval.defined else 0.0) for c in ranked]
        fig.add_trace(
            go.Bar(
                x=xs,
                y=labels,
                orientation="h",
                name="per client",
                marker_color=[GAIN if x > 0 else LOSS for x in xs],
                error_x={"type": "data", "array": err, "visible": any(err), "color": "#555"},
                customdata=[[len(c.per_seed)] for c in ranked],
                hovertemplate="%{y}: %{x:+.2f}" + unit + " (%{customdata[0]} seed(s))<extra></extra>",
            )
        )
        iv = v.interval
        if iv.defined:
            fig.add_vrect(x0=iv.low * scale, x1=iv.high * scale, fillcolor="#999", opacity=0.15, line_width=0)
        fig.add_vline(
            x=iv.mean * scale,
            line_dash="dash",
            line_color="#333",
            annotation_text=f"mean {iv.mean * scale:+.2f}",
            annotation_position="top",
        )
        names = labels
        del by_id
    else:
        colors = dict(colors or series_colors([(v.strategy, v.strategy) for v in verdicts]))
        for v in verdicts:
            by_id = {c.client_id: c for c in v.clients}
            xs = [by_id[cid].mean * scale if cid in by_id else None for cid, _ in order]
            label = chart_text(v.strategy if len(against) == 1 else f"{v.strategy} vs {v.baseline}")
            fig.add_trace(
                go.Bar(
                    x=xs,
                    y=names,
                    orientation="h",
                    name=label,
                    marker_color=colors.get(v.strategy, PALETTE[0]),
                    hovertemplate=f"{label}<br>" + "%{y}: %{x:+.2f}" + unit + "<extra></extra>",
                )
            )
        fig.update_layout(barmode="group")
    fig.add_vline(x=0, line_color="#111", line_width=1)
    diff = "points" if scale == 100 else (metric.unit or metric.label)
    fig = _layout(
        fig,
        title,
        f"Difference in {metric.label} ({diff}; right: better with the strategy)",
        "Client",
        height=max(300, (26 if len(verdicts) == 1 else 14 * len(verdicts) + 10) * len(names) + 150),
    )
    fig.update_layout(hovermode="closest", showlegend=len(verdicts) > 1)
    fig.update_yaxes(categoryorder="array", categoryarray=names)
    return fig


LOSS_KEYS = {
    "train_loss_mean": ("training", "solid"),
    "val_loss_mean": ("validation (held out)", "dash"),
    "local_loss_mean": ("own test data", "dot"),
}
"""The losses drawn together for one run (overfitting shows as held-out losses rising while the
training loss falls)."""


def losses(
    round_df: pd.DataFrame,
    x: str = "round",
    *,
    run_id: str | None = None,
    title: str = "Loss: training against held-out data (mean over clients)",
) -> go.Figure:
    """One run's training, validation and own-test losses on one chart."""
    wide = wide_rounds(round_df)
    if run_id is not None:
        wide = wide[wide["run_id"] == run_id]
    present = [k for k in LOSS_KEYS if k in wide.columns and wide[k].notna().any()]
    if not present or x not in wide.columns:
        return _empty("No losses recorded for this run.", title)
    fig = go.Figure()
    for key in present:
        part = wide[[x, key]].dropna()
        name, dash = LOSS_KEYS[key]
        fig.add_trace(
            go.Scatter(
                x=part[x],
                y=part[key],
                mode="lines+markers",
                name=name,
                marker={"size": 4},
                line={"color": "#444" if key == "train_loss_mean" else "#d95f02", "dash": dash},
                hovertemplate=f"{name} loss<br>%{{y:.4g}}<extra></extra>",
            )
        )
    return _layout(fig, title, metric_label(x), "Loss")
