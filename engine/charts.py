"""Plotly figures of runs, built from the database's tables (no streamlit: the pages, the HTML
report and notebooks share them).

Inputs are the :class:`engine.storage.Store` frames: ``round_df`` from ``store.round_metrics(ids)``
(long: ``run_id, round, key, value``; a wide table with a ``run_id`` and one column per metric
works too), ``client_df`` from ``store.client_metrics(ids)``, ``roster`` from
``store.clients(ids)``, and ``runs`` from ``store.list_runs(...)`` (rows with ``id, name,
group_id, variant, seed``) or a mapping ``run_id -> label``.

Seeds of one setting (runs of one sweep ``group_id`` with the same ``variant``) are drawn as one
line, their mean, with a band of +-1 standard deviation (``ddof=1``) across seeds: one seed says
little about a federated method, whose result moves with the data split and the initialisation.

One colour language, defined here and nowhere else: a strategy has one colour across every chart
of a page (``local`` grey, ``centralized`` near-black, the others a fixed colour each, unique on a
page; when runs of one strategy appear as different settings, each setting gets its own colour),
and an architecture (or device tier) has one colour across the whole app. Every line carries its
name in the legend and on hover: two clients of one architecture are two shades of its colour,
each named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from engine.metrics import METRICS, higher_is_better
from engine.sanitize import chart_text

PALETTE = qualitative.D3 + qualitative.Plotly[1:]
"""Colours of settings and runs, in order."""
REFERENCE_COLORS = {"local": "#7f7f7f", "centralized": "#222222"}
"""The references keep the same neutral colours everywhere: the floor grey, the ceiling near-black."""
ARCH_COLORS = {"mlp": "#1f77b4", "cnn": "#ff7f0e", "resnet": "#2ca02c", "gru": "#d62728", "lstm": "#9467bd",
               "cnn1d": "#8c564b", "transformer": "#e377c2", "fedavg_cnn": "#bcbd22"}
"""Architecture colours, fixed across the app (others get a stable colour from their name)."""
TIER_COLORS = {"datacenter-gpu": "#1b9e77", "workstation-gpu": "#66a61e", "laptop-cpu": "#7570b3",
               "jetson": "#e6ab02", "raspberry-pi": "#e7298a", "phone-high": "#d95f02", "phone-low": "#a6761d"}
"""Device-tier colours, fixed across the app."""
GAIN, LOSS = "#2b8cbe", "#e6550d"
"""Who gains (blue) and who loses (orange) in the verdict's chart: distinguishable without red/green."""

_NAMES = {m.key: m.label for m in METRICS.values()} | {"train_loss": "training loss", "round": "round"}
_STATS = {"mean": "mean over clients", "wmean": "sample-weighted mean over clients",
          "std": "spread (std) over clients", "worst10": "worst 10% of clients", "best": "best client"}
_SCOPES = {"global": "on the global test set", "local": "on each client's own test data",
           "val": "on each client's validation data", "server": "of the server model on the global test set"}
_SPECIAL = {
    "round": "Round", "sim_time_s": "Simulated time (s)", "cum_bytes_up": "Data uploaded (bytes, cumulative)",
    "cum_bytes_down": "Data downloaded (bytes, cumulative)", "bytes_up": "Data uploaded this round (bytes)",
    "bytes_down": "Data downloaded this round (bytes)", "wall_s": "Compute time this round (s)",
    "cum_wall_s": "Compute time (s, cumulative)", "n_selected": "Clients selected",
    "n_completed": "Clients that completed the round", "train_loss": "Training loss",
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
        return ("Best validation round" + (" of the server model" if parts[0] == "server" else "")
                + (f" ({_STATS[stat]})" if stat else "") + suffix)
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
    colors = series_colors([(label, str(rows[members[0]].get("strategy") or label)) for label, members in groups])
    return {run_id: colors[label] for label, members in groups for run_id in members}


def _shade(color: str, i: int, n: int) -> str:
    """The ``i``-th of ``n`` shades of ``color`` (darker to lighter), for clients of one group."""
    if n <= 1:
        return color
    r, g, b = (int(color.lstrip("#")[k:k + 2], 16) for k in (0, 2, 4))
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
    r, g, b = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _empty(message: str, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, template="plotly_white", height=320)
    return fig


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white", height=height,
                      hovermode="x unified", legend={"orientation": "h", "y": -0.2},
                      margin={"l": 60, "r": 20, "t": 60, "b": 40})
    if x.lower().startswith("round"):
        _whole_number_ticks(fig)
    return fig


def _whole_number_ticks(fig: go.Figure) -> None:
    """Rounds are whole numbers: ticks every ``step`` rounds (1, 2, 5, 10, ...), never at 1.5."""
    import numpy as np

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
    text = [f"whole global test set ({int(most):,} rows)" if f
            else f"a fixed sample: {int(n):,} of {int(most):,} rows"
            for n, f in zip(rows.fillna(most), full, strict=True)]
    marker = {"size": np.where(full, 7, 5).tolist(),
              "symbol": np.where(full, "circle", "circle-open").tolist()}
    return {"marker": marker, "hover": "<br>%{text}", "text": text}


# ---- run-level curves ---------------------------------------------------------------------------
def curves(round_df: pd.DataFrame, metric: str, x: str = "round", runs: Any = None, *,
           title: str | None = None, band: bool = True, reference: float | None = None) -> go.Figure:
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
            fig.add_trace(go.Scatter(x=part[x], y=part[metric], mode="lines+markers", name=label,
                                     line={"color": color}, marker=rows["marker"], text=rows["text"],
                                     hovertemplate=f"{label}<br>%{{y:.4g}}{rows['hover']}<extra></extra>"))
            continue
        stats = part.groupby("round").agg(x=(x, "mean"), mean=(metric, "mean"),
                                          std=(metric, lambda v: v.std(ddof=1) if len(v) > 1 else 0.0),
                                          n=(metric, "size")).reset_index()
        if band:
            upper, lower = stats["mean"] + stats["std"], stats["mean"] - stats["std"]
            fig.add_trace(go.Scatter(x=stats["x"], y=upper, mode="lines", line={"width": 0},
                                     showlegend=False, hoverinfo="skip", legendgroup=label))
            fig.add_trace(go.Scatter(x=stats["x"], y=lower, mode="lines", line={"width": 0}, fill="tonexty",
                                     fillcolor=_rgba(color, 0.18), showlegend=False, hoverinfo="skip",
                                     legendgroup=label, name=f"{label} ±1 std"))
        fig.add_trace(go.Scatter(
            x=stats["x"], y=stats["mean"], mode="lines+markers", name=label, legendgroup=label,
            line={"color": color}, marker={"size": 4}, customdata=np.stack([stats["std"], stats["n"]], axis=1),
            hovertemplate=f"{label}<br>%{{y:.4g}} ± %{{customdata[0]:.3g}} (%{{customdata[1]}} seeds)<extra></extra>"))
    if reference is not None and np.isfinite(reference):
        fig.add_hline(y=reference, line_dash="dot", line_color="#888",
                      annotation_text=f"trivial predictor {reference:.3g}", annotation_position="bottom right")
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
                fig.add_trace(go.Scatter(x=stats.index, y=stats[column] / 1e6, mode="lines", name=f"{label} · {word}",
                                         legendgroup=label, line={"color": color, "dash": dash},
                                         hovertemplate=f"{label} {word}: %{{y:.3f}} MB<extra></extra>"))
    return _layout(fig, title, "Round", "MB (cumulative)")


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
    return {int(r["client_id"]): {**r, "name": chart_text(r["name"])} if r.get("name") is not None else r
            for r in roster.to_dict("records")}


def _client_frame(client_df: pd.DataFrame, metric: str, run_id: str | None) -> pd.DataFrame:
    df = _one_run(client_df, run_id)
    return df[df["key"] == metric].dropna(subset=["value"])


def client_curves(client_df: pd.DataFrame, metric: str, roster: pd.DataFrame | None = None, *,
                  run_id: str | None = None, color_by: str = "arch", title: str | None = None) -> go.Figure:
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
        fig.add_trace(go.Scatter(x=part["round"], y=part["value"], mode="lines", name=label, legendgroup=group,
                                 legendgrouptitle_text=group if mates[0] == cid else None,
                                 line={"color": color, "width": 1.6}, opacity=0.9,
                                 hovertemplate=f"{label}<br>round %{{x}}: %{{y:.4g}}<extra></extra>"))
    fig = _layout(fig, title, "Round", metric_label(metric))
    fig.update_layout(hovermode="closest", legend={"orientation": "v", "x": 1.02, "y": 1})
    return fig


def client_heatmap(client_df: pd.DataFrame, metric: str, roster: pd.DataFrame | None = None, *,
                   run_id: str | None = None, title: str | None = None) -> go.Figure:
    """Clients (rows) x rounds (columns) of one run, coloured by ``metric``; blank where a client
    has no figure (not yet joined, not evaluated)."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    df = _client_frame(client_df, metric, run_id)
    title = title or f"{metric_label(metric)}: clients x rounds"
    if df.empty:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    grid = df.pivot(index="client_id", columns="round", values="value").sort_index()
    people = _roster(roster, run_id)
    labels = [f"{people.get(int(c), {}).get('name', f'client {c}')} ({people.get(int(c), {}).get('arch', '')})"
              .replace(" ()", "") for c in grid.index]
    scale = "Viridis" if higher_is_better(metric) else "Viridis_r"
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=list(grid.columns), y=labels, colorscale=scale,
                               colorbar={"title": metric.split("_")[-1]}, hoverongaps=False,
                               hovertemplate="%{y}<br>round %{x}: %{z:.4g}<extra></extra>"))
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


def final_client_bars(client_df: pd.DataFrame, metric: str, roster: pd.DataFrame | None = None, *,
                      run_id: str | None = None, color_by: str = "arch", title: str | None = None,
                      reference: pd.DataFrame | None = None) -> go.Figure:
    """Each client's last recorded ``metric`` in one run (for a ``best_`` key: at its best
    validation round), best first, coloured by architecture (or ``color_by="tier"``), with the mean
    over clients as a dashed line and each client's trivial predictor (``reference``: ``client_id,
    value``) as a tick."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    last = final_values(client_df, metric, run_id)
    title = title or (f"{metric_label(metric)} per client" if metric.startswith("best_") else
                      f"Final {metric_label(metric)[:1].lower()}{metric_label(metric)[1:]} per client")
    if last.empty:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    people = _roster(roster, run_id)
    last["name"] = [str(people.get(int(c), {}).get("name", f"client {c}")) for c in last["client_id"]]
    last["group"] = [str(people.get(int(c), {}).get(color_by) or "unspecified") for c in last["client_id"]]
    last = last.sort_values("value", ascending=not higher_is_better(metric))
    fig = go.Figure()
    for group in dict.fromkeys(last["group"]):
        part = last[last["group"] == group]
        fig.add_trace(go.Bar(x=part["name"], y=part["value"], name=group, marker_color=group_color(color_by, group),
                             hovertemplate="%{x}" + f" ({group})" + "<br>%{y:.4g}<extra></extra>"))
    if reference is not None and not reference.empty:
        ref = reference.set_index("client_id")["value"]
        names = dict(zip(last["client_id"], last["name"], strict=True))
        pts = [(names[c], float(ref[c])) for c in last["client_id"] if c in ref.index]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
                                     name="trivial predictor", marker={"symbol": "line-ew-open", "size": 18,
                                                                       "color": "#444", "line": {"width": 2}},
                                     hovertemplate="%{x}<br>trivial predictor %{y:.4g}<extra></extra>"))
    mean = float(last["value"].mean())
    fig.add_hline(y=mean, line_dash="dash", line_color="#444", annotation_text=f"mean {mean:.3g}")
    fig = _layout(fig, title, "Client", metric_label(metric))
    fig.update_layout(hovermode="closest", barmode="overlay", legend_title_text=color_by)
    fig.update_xaxes(categoryorder="array", categoryarray=list(last["name"]))
    return fig


def fairness(client_df: pd.DataFrame, metric: str = "local_acc", runs: Any = None, *,
             title: str | None = None, colors: Mapping[str, str] | None = None) -> go.Figure:
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
        fig.add_trace(go.Box(y=values, name=label, boxpoints="all", jitter=0.4, pointpos=0, marker_color=color,
                             hovertemplate=f"{label}<br>%{{y:.4g}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[label], y=[float(order[:k].mean())], mode="markers", showlegend=False,
                                 marker={"symbol": "diamond", "size": 12, "color": "#222"},
                                 hovertemplate=f"{label}: worst 10% of clients %{{y:.4g}}<extra></extra>"))
    if not fig.data:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    fig = _layout(fig, title, "", metric_label(metric))
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig


def available_metrics(round_df: pd.DataFrame, prefixes: Iterable[str] = ("server_", "global_", "local_")) -> list[str]:
    """Round metric keys worth plotting (accuracy/loss/error families first), for pickers."""
    keys = set(round_df["key"]) if {"key", "value"} <= set(round_df.columns) else set(round_df.columns)
    keys -= {"run_id", "round"}
    first = sorted(k for k in keys if any(k.startswith(p) for p in prefixes))
    return first + sorted(keys - set(first))


# ---- participation, simulated time and late joiners (appended for the Results page) -------------
_PARTICIPATION = {"not joined": "#e5e7eb", "offline": "#9ca3af", "not selected": "#dbeafe", "trained": "#2563eb",
                  "partial work": "#93c5fd", "straggler (dropped)": "#f59e0b", "dropped out": "#dc2626"}
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


def participation_states(client_df: pd.DataFrame, roster: pd.DataFrame | None = None, *,
                         run_id: str | None = None) -> pd.DataFrame:
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
    conditions = [rnd < join, online == 0, selected != 1,
                  has_status & (status == 1), has_status & (status == 2), has_status & (status == 3),
                  ~has_status & (completed == 0)]
    choices = ["not joined", "offline", "not selected", _CLOCK_STATUS[1], _CLOCK_STATUS[2], _CLOCK_STATUS[3],
               "dropped out"]
    states = np.select(conditions, choices, default="trained").astype(object)
    return pd.DataFrame(states, index=ids, columns=rounds)


def participation(client_df: pd.DataFrame, roster: pd.DataFrame | None = None, *, run_id: str | None = None,
                  title: str | None = None) -> go.Figure:
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
    fig = go.Figure(go.Heatmap(z=z, x=list(states.columns), y=labels, text=states.to_numpy(), colorscale=scale,
                               zmin=0, zmax=n, showscale=False, xgap=1, ygap=1,
                               hovertemplate="%{y}<br>round %{x}: %{text}<extra></extra>"))
    present = set(states.to_numpy().ravel())
    for s in names:  # legend entries for the states that occur
        if s in present:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=s,
                                     marker={"size": 10, "color": _PARTICIPATION[s], "symbol": "square"}))
    fig = _layout(fig, title, "Round", "Client", height=max(320, 16 * len(labels) + 160))
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed")
    return fig


def round_timeline(client_df: pd.DataFrame, roster: pd.DataFrame | None = None, *, rnd: int | None = None,
                   run_id: str | None = None, deadline: float | None = None, title: str | None = None) -> go.Figure:
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
    part = df[df["round"].to_numpy() == rnd].pivot_table(index="client_id", columns="key", values="value",
                                                         aggfunc="first")
    if key not in part.columns or part[key].dropna().empty:
        return _empty(f"No simulated client times in round {rnd}.", title)
    part = part.dropna(subset=[key]).sort_values(key)
    people = _roster(roster, run_id)
    names = [str(people.get(int(c), {}).get("name", f"client {c}")) for c in part.index]
    tiers = [str(people.get(int(c), {}).get("tier") or "no tier") for c in part.index]
    status = [(_CLOCK_STATUS.get(int(s), "trained") if pd.notna(s) else "trained")
              for s in part.get("status", pd.Series(0.0, index=part.index))]
    compute = part.get("sim_compute_s", part[key]).fillna(0).to_numpy()
    transfer = part.get("sim_transfer_s", pd.Series(0.0, index=part.index)).fillna(0).to_numpy()
    fig = go.Figure()
    status_arr = np.array(status)
    for s in ("trained", "partial work", "straggler (dropped)", "dropped out"):
        mask = status_arr == s
        if mask.any():
            fig.add_trace(go.Bar(x=compute[mask], y=np.array(names)[mask], orientation="h", name=f"{s}: compute",
                                 marker_color=_PARTICIPATION[s], customdata=np.array(tiers)[mask],
                                 hovertemplate="%{y} (%{customdata})<br>compute %{x:.3g} s<extra>" + s + "</extra>"))
    if transfer.any():
        fig.add_trace(go.Bar(x=transfer, y=names, orientation="h", name="transfer (up + down)",
                             marker_color="#cbd5e1", customdata=np.array(tiers),
                             hovertemplate="%{y} (%{customdata})<br>transfer %{x:.3g} s<extra></extra>"))
    if deadline:
        fig.add_vline(x=deadline, line_dash="dash", line_color="#b91c1c", annotation_text=f"deadline {deadline:g} s")
    fig = _layout(fig, f"{title} — round {rnd}", "Simulated seconds from the start of the round", "Client",
                  height=max(320, 20 * len(names) + 160))
    fig.update_layout(hovermode="closest", barmode="stack")
    fig.update_yaxes(categoryorder="array", categoryarray=names)
    return fig


def catch_up(client_df: pd.DataFrame, metric: str, roster: pd.DataFrame | None = None, *,
             run_id: str | None = None, title: str | None = None) -> go.Figure:
    """How fast late joiners catch up: each late joiner's ``metric`` per round from the round it
    joined (a dotted line marks the join), against the mean of the clients present from round 1."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    df = _client_frame(client_df, metric, run_id)
    title = title or f"Late joiners catching up: {metric_label(metric)[:1].lower()}{metric_label(metric)[1:]}"
    people = _roster(roster, run_id)
    late = {cid: int(r.get("join_round") or 1) for cid, r in people.items() if int(r.get("join_round") or 1) > 1}
    if df.empty or not late:
        return _empty("No client joins late in this run.", title)
    founders = df[~df["client_id"].isin(list(late))].groupby("round")["value"].mean()
    fig = go.Figure()
    if not founders.empty:
        fig.add_trace(go.Scatter(x=founders.index, y=founders.values, mode="lines", name="clients from round 1 (mean)",
                                 line={"color": "#111", "dash": "dash", "width": 2}))
    for i, (cid, join) in enumerate(sorted(late.items(), key=lambda kv: kv[1])):
        part = df[df["client_id"] == cid].sort_values("round")
        name = str(people.get(cid, {}).get("name", f"client {cid}"))
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=part["round"], y=part["value"], mode="lines+markers", name=f"{name} (joins {join})",
                                 line={"color": color}, marker={"size": 4}))
        fig.add_vline(x=join, line_dash="dot", line_color=color, opacity=0.6)
    return _layout(fig, title, "Round", metric_label(metric))


# ---- the verdict: who gains, who loses ------------------------------------------------------------
def gains(verdicts: Sequence[Any], colors: Mapping[str, str] | None = None, *, title: str | None = None) -> go.Figure:
    """The verdict's chart: per client, the paired difference of the primary metric between a
    strategy and its baseline (:class:`engine.verdict.Verdict`), as diverging horizontal bars
    (right: the strategy is better for that client). One verdict: bars blue where the client gains,
    orange where it loses, with whiskers over seeds when there are several, and the mean
    difference with its interval as a band. Several verdicts: grouped bars in each strategy's
    colour (``colors``: strategy label -> colour)."""
    verdicts = [v for v in verdicts if v.clients]
    if not verdicts:
        return _empty("No paired runs: launch the local baseline on the same split and seed.", title or "Who gains")
    metric = verdicts[0].metric
    scale = metric.scale
    unit = f" ({metric.unit})" if metric.unit else ""
    against = {v.baseline for v in verdicts}
    words = "training alone" if against == {"local"} else "pooled training" if against == {"centralized"} else "the baseline"
    title = title or (f"Who gains: {chart_text(verdicts[0].strategy)} minus {words}, {metric.label}" if len(verdicts) == 1
                      else f"Who gains: each strategy minus {words}, {metric.label}")
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
        fig.add_trace(go.Bar(
            x=xs, y=labels, orientation="h", name="per client",
            marker_color=[GAIN if x > 0 else LOSS for x in xs],
            error_x={"type": "data", "array": err, "visible": any(err), "color": "#555"},
            customdata=[[len(c.per_seed)] for c in ranked],
            hovertemplate="%{y}: %{x:+.2f}" + unit + " (%{customdata[0]} seed(s))<extra></extra>"))
        iv = v.interval
        if iv.defined:
            fig.add_vrect(x0=iv.low * scale, x1=iv.high * scale, fillcolor="#999", opacity=0.15, line_width=0)
        fig.add_vline(x=iv.mean * scale, line_dash="dash", line_color="#333",
                      annotation_text=f"mean {iv.mean * scale:+.2f}", annotation_position="top")
        names = labels
        del by_id
    else:
        colors = dict(colors or series_colors([(v.strategy, v.strategy) for v in verdicts]))
        for v in verdicts:
            by_id = {c.client_id: c for c in v.clients}
            xs = [by_id[cid].mean * scale if cid in by_id else None for cid, _ in order]
            label = chart_text(v.strategy if len(against) == 1 else f"{v.strategy} vs {v.baseline}")
            fig.add_trace(go.Bar(x=xs, y=names, orientation="h", name=label,
                                 marker_color=colors.get(v.strategy, PALETTE[0]),
                                 hovertemplate=f"{label}<br>" + "%{y}: %{x:+.2f}" + unit + "<extra></extra>"))
        fig.update_layout(barmode="group")
    fig.add_vline(x=0, line_color="#111", line_width=1)
    diff = "points" if scale == 100 else (metric.unit or metric.label)
    fig = _layout(fig, title, f"Difference in {metric.label} ({diff}; right: better with the strategy)", "Client",
                  height=max(300, (26 if len(verdicts) == 1 else 14 * len(verdicts) + 10) * len(names) + 150))
    fig.update_layout(hovermode="closest", showlegend=len(verdicts) > 1)
    fig.update_yaxes(categoryorder="array", categoryarray=names)
    return fig


LOSS_KEYS = {"train_loss_mean": ("training", "solid"), "val_loss_mean": ("validation (held out)", "dash"),
             "local_loss_mean": ("own test data", "dot")}
"""The losses drawn together for one run (overfitting shows as held-out losses rising while the
training loss falls)."""


def losses(round_df: pd.DataFrame, x: str = "round", *, run_id: str | None = None,
           title: str = "Loss: training against held-out data (mean over clients)") -> go.Figure:
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
        fig.add_trace(go.Scatter(x=part[x], y=part[key], mode="lines+markers", name=name, marker={"size": 4},
                                 line={"color": "#444" if key == "train_loss_mean" else "#d95f02", "dash": dash},
                                 hovertemplate=f"{name} loss<br>%{{y:.4g}}<extra></extra>"))
    return _layout(fig, title, metric_label(x), "Loss")
