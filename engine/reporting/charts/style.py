"""The colour language and the words of the charts (defined here and nowhere else), and the
layout every chart shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative

from engine.core.metrics import METRICS
from engine.sanitize import chart_text

PALETTE = qualitative.D3 + qualitative.Plotly[1:]
"""Colours of settings and runs, in order."""
REFERENCE_COLORS = {"local": "#7f7f7f", "centralized": "#222222"}
"""The references keep the same neutral colours everywhere: the floor grey, the ceiling near-black."""
ARCH_COLORS = {
    "mlp": "#1f77b4",
    "cnn": "#ff7f0e",
    "resnet": "#2ca02c",
    "gru": "#d62728",
    "lstm": "#9467bd",
    "cnn1d": "#8c564b",
    "transformer": "#e377c2",
    "fedavg_cnn": "#bcbd22",
}
"""Architecture colours, fixed across the app (others get a stable colour from their name)."""
TIER_COLORS = {
    "datacenter-gpu": "#1b9e77",
    "workstation-gpu": "#66a61e",
    "laptop-cpu": "#7570b3",
    "jetson": "#e6ab02",
    "raspberry-pi": "#e7298a",
    "phone-high": "#d95f02",
    "phone-low": "#a6761d",
}
"""Device-tier colours, fixed across the app."""
GAIN, LOSS = "#2b8cbe", "#e6550d"
"""Who gains (blue) and who loses (orange) in the verdict's chart: distinguishable without red/green."""

_NAMES = {m.key: m.label for m in METRICS.values()} | {"train_loss": "training loss", "round": "round"}
_STATS = {
    "mean": "mean over clients",
    "wmean": "sample-weighted mean over clients",
    "std": "spread (std) over clients",
    "worst10": "worst 10% of clients",
    "best": "best client",
}
_SCOPES = {
    "global": "on the global test set",
    "local": "on each client's own test data",
    "val": "on each client's validation data",
    "server": "of the server model on the global test set",
}
_SPECIAL = {
    "round": "Round",
    "sim_time_s": "Simulated time (s)",
    "cum_bytes_up": "Data uploaded (bytes, cumulative)",
    "cum_bytes_down": "Data downloaded (bytes, cumulative)",
    "bytes_up": "Data uploaded this round (bytes)",
    "bytes_down": "Data downloaded this round (bytes)",
    "wall_s": "Compute time this round (s)",
    "cum_wall_s": "Compute time (s, cumulative)",
    "n_selected": "Clients selected",
    "n_completed": "Clients that completed the round",
    "train_loss": "Training loss",
    "backdoor_asr": "Backdoor attack success rate (per client; per round: the honest clients' mean)",
    "server_backdoor_asr": "Backdoor attack success rate of the server model",
    "defence_kept_attackers": "Share of combinations the defence let compromised clients into",
    "defence_kept_honest": "Share of combinations the defence let honest clients into",
    "defence_scale_attackers": "Factor the defence scaled compromised clients' updates by",
    "defence_scale_honest": "Factor the defence scaled honest clients' updates by",
}


def metric_label(key: str) -> str:
    """A readable name for a record key: ``global_acc_mean`` -> "Accuracy on the global test set
    (mean over clients)"; ``best_local_bacc_mean`` -> "Balanced accuracy on each client's own test
    data (mean over clients), at the best validation round"."""
    if key in _SPECIAL:
        return _SPECIAL[key]
    base, suffix = key, ""
    if "[" in key:  # server_acc[cnn]: per-architecture server model
        base, suffix = key.split("[", 1)
        suffix = f" [{suffix.rstrip(']')}]"
    parts = base.split("_")
    stat = parts.pop() if parts[-1] in _STATS and len(parts) > 1 else None
    kind = parts.pop(0) if parts[0] in ("best", "ref") and len(parts) > 1 else None
    if kind == "best" and parts in (["round"], ["server", "round"]):
        return (
            "Best validation round"
            + (" of the server model" if parts[0] == "server" else "")
            + (f" ({_STATS[stat]})" if stat else "")
            + suffix
        )
    scope = parts.pop(0) if parts[0] in _SCOPES and len(parts) > 1 else None
    if scope == "server" and parts[0] == "val" and len(parts) > 1:
        parts.pop(0)
        scope = "server_val"
    name = "_".join(parts)
    text = _NAMES.get(name, name.replace("_", " "))
    if kind == "ref":
        text = f"trivial-predictor {text}"
    text = text[:1].upper() + text[1:]
    if scope == "server_val":
        text += " of the server model on the clients' validation data"
    elif scope:
        text += f" {_SCOPES[scope]}"
    if stat:
        text += f" ({_STATS[stat]})"
    if kind == "best":
        text += ", at the best validation round"
    return text + suffix


def short_label(key: str) -> str:
    """A short column header for a record key: ``best_local_bacc_mean`` -> "balanced accuracy"."""
    if key in _SPECIAL:
        return _SPECIAL[key]
    metric = key.split("[", 1)[0].split("_")
    name = next((m for m in reversed(metric) if m in _NAMES and m not in ("best", "round")), None)
    return _NAMES.get(name, key) if name else key


# ---- colours ---------------------------------------------------------------------------------------
def headline_label(key: str | None) -> str:
    """Short words for a summary key in tables: ``balanced accuracy (best rounds)``, ``worst 10%
    (best rounds)``, ``trivial predictor``."""
    if not key:
        return ""
    if key.startswith("ref_"):
        return f"trivial predictor ({short_label(key)})"
    stat = key.rsplit("_", 1)[-1]
    what = {"worst10": "worst 10% of clients", "std": "spread over clients", "best": "best client"}.get(stat)
    when = (
        " (best rounds)"
        if key.startswith("best_")
        else " (final round)"
        if stat in ("mean", "worst10", "std")
        else ""
    )
    where = ", server model" if "server_" in key else ", global test" if "global_" in key else ""
    return f"{what or short_label(key)}{where}{when}"


def _stable(name: str, palette: Sequence[str]) -> str:
    import hashlib

    return palette[int(hashlib.blake2b(name.encode(), digest_size=4).hexdigest(), 16) % len(palette)]


def arch_color(arch: str) -> str:
    """The architecture's colour, the same on every page."""
    return ARCH_COLORS.get(arch) or _stable(arch, PALETTE)


def group_color(color_by: str, value: str) -> str:
    """The colour of a roster group: an architecture or a device tier (fixed), else stable by name."""
    if color_by == "arch":
        return arch_color(value)
    if color_by == "tier":
        return TIER_COLORS.get(value) or _stable(value, PALETTE)
    return _stable(value, PALETTE)


def _home(strategy: str) -> str:
    """A strategy's own colour: fixed for the references, otherwise by its place in the registry."""
    if strategy in REFERENCE_COLORS:
        return REFERENCE_COLORS[strategy]
    from engine.strategies import STRATEGIES

    names = [n for n in STRATEGIES.names() if n not in REFERENCE_COLORS]
    return PALETTE[names.index(strategy) % len(PALETTE)] if strategy in names else _stable(strategy, PALETTE)


def series_colors(series: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Colours of a page's series, ``(label, strategy)`` pairs: each strategy its own colour
    (unique on the page); strategies that appear as several series (settings or runs) give each
    series its own colour instead."""
    counts: dict[str, int] = {}
    for _, strategy in series:
        counts[strategy] = counts.get(strategy, 0) + 1
    used: set[str] = set()
    out: dict[str, str] = {}
    free = iter([c for c in PALETTE if c not in REFERENCE_COLORS.values()] * 4)
    for label, strategy in series:
        color = _home(strategy) if counts[strategy] == 1 else None
        if color is None or color in used:
            color = next(c for c in free if c not in used)
        used.add(color)
        out[label] = color
    return out


def run_colors(run_ids: Sequence[str], runs: Any = None) -> dict[str, str]:
    """Each run's colour on a page: the colour of its series (:func:`series_groups`), so a run
    drawn in a box plot has its curve's colour."""
    rows = _run_rows(runs, run_ids)
    groups = series_groups(run_ids, runs)
    colors = series_colors(
        [(label, str(rows[members[0]].get("strategy") or label)) for label, members in groups]
    )
    return {run_id: colors[label] for label, members in groups for run_id in members}


def _shade(color: str, i: int, n: int) -> str:
    """The ``i``-th of ``n`` shades of ``color`` (darker to lighter), for clients of one group."""
    if n <= 1:
        return color
    r, g, b = (int(color.lstrip("#")[k : k + 2], 16) for k in (0, 2, 4))
    t = -0.35 + 0.7 * i / (n - 1)  # -0.35 (darker) .. +0.35 (lighter)
    mix = (lambda c: c * (1 + t)) if t < 0 else (lambda c: c + (255 - c) * t)
    return "#" + "".join(f"{max(0, min(255, round(mix(c)))):02x}" for c in (r, g, b))


# ---- inputs -------------------------------------------------------------------------------------
def wide_rounds(round_df: pd.DataFrame) -> pd.DataFrame:
    """``run_id, round`` plus one column per metric, from a long or already wide round table."""
    if round_df is None or round_df.empty:
        return pd.DataFrame({"run_id": [], "round": []})
    if {"key", "value"} <= set(round_df.columns):
        wide = round_df.set_index(["run_id", "round", "key"])["value"].unstack("key")
        wide.columns.name = None
        return wide.reset_index().sort_values(["run_id", "round"])
    out = round_df.copy()
    if "run_id" not in out.columns:
        out.insert(0, "run_id", "run")
    return out.sort_values(["run_id", "round"])


def _run_rows(runs: Any, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Run rows by id from ``runs`` (list of dicts, DataFrame, mapping id -> label, or None)."""
    rows: dict[str, dict[str, Any]] = {}
    if isinstance(runs, pd.DataFrame):
        runs = runs.to_dict("records")
    if isinstance(runs, Mapping):
        for run_id, label in runs.items():
            rows[str(run_id)] = label if isinstance(label, Mapping) else {"id": run_id, "name": str(label)}
    elif runs is not None:
        for r in runs:
            rows[str(r.get("id", r.get("run_id")))] = dict(r)
    for run_id in run_ids:
        rows.setdefault(run_id, {"id": run_id, "name": run_id})
    for row in rows.values():  # names are user text: shown as typed, never as Plotly markup
        if row.get("name") is not None:
            row["name"] = chart_text(row["name"])
    return rows


def series_groups(run_ids: Sequence[str], runs: Any = None) -> list[tuple[str, list[str]]]:
    """Lines to draw: ``(label, run_ids)``; runs of one sweep group and variant share a line
    (their seeds are averaged), every other run is its own line. Labels are unique."""
    rows = _run_rows(runs, run_ids)
    groups: dict[tuple, list[str]] = {}
    labels: dict[tuple, str] = {}
    for run_id in run_ids:
        r = rows[run_id]
        if r.get("group_id") and r.get("variant"):
            key: tuple = ("group", r["group_id"], r["variant"])
            labels[key] = str(r["variant"])
        else:
            key = ("run", run_id)
            labels[key] = str(r.get("name") or run_id)
        groups.setdefault(key, []).append(run_id)
    out, seen = [], {}
    for key, members in groups.items():
        label = labels[key]
        if len(members) > 1:
            label += f" ({len(members)} seeds)"
        if label in seen:
            label += f" · {members[0][:6]}"
        seen[label] = True
        out.append((label, members))
    return out


def _rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


TEMPLATE = "plotly_white"
"""Every chart's template, plotly's default template, applied when a figure is serialised:
``template=...`` on each figure validated the whole template again, ~57 ms a chart (a figure's own
build took ~20 ms), paid by every rerun of a Results page polling a running run."""


def _template() -> None:
    """Make :data:`TEMPLATE` plotly's default (again: importing streamlit sets its own)."""
    if pio.templates.default != TEMPLATE:
        pio.templates.default = TEMPLATE


_template()


def _empty(message: str, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 14}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=320)
    _template()
    return fig


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 420) -> go.Figure:
    _template()
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        height=height,
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    if x.lower().startswith("round"):
        _whole_number_ticks(fig)
    return fig


def _whole_number_ticks(fig: go.Figure) -> None:
    """Rounds are whole numbers: ticks every ``step`` rounds (1, 2, 5, 10, ...), never at 1.5."""
    try:
        xs = [np.asarray(trace.x, dtype=float) for trace in fig.data if getattr(trace, "x", None) is not None]
    except (TypeError, ValueError):  # categorical x: leave the axis alone
        return
    xs = [a[np.isfinite(a)] for a in xs]
    xs = [a for a in xs if a.size]
    if not xs:
        return
    span = max(float(a.max()) for a in xs) - min(float(a.min()) for a in xs)
    step = next((s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if span / s <= 12), 2000)
    fig.update_xaxes(tick0=0 if step > 1 else 1, dtick=step, tickformat="d")
