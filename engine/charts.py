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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from engine.metrics import higher_is_better
from engine.sanitize import chart_text

PALETTE = qualitative.Plotly + qualitative.D3
"""Colours of runs and settings, in order."""

_NAMES = {
    "acc": "accuracy", "loss": "loss", "mse": "mean squared error", "mae": "mean absolute error",
    "r2": "R²", "train_loss": "training loss",
}
_STATS = {"mean": "mean over clients", "wmean": "sample-weighted mean over clients",
          "std": "spread (std) over clients", "worst10": "worst 10% of clients", "best": "best client"}
_SCOPES = {"global": "on the global test set", "local": "on each client's own test data",
           "server": "of the server model on the global test set"}
_SPECIAL = {
    "round": "Round", "sim_time_s": "Simulated time (s)", "cum_bytes_up": "Data uploaded (bytes, cumulative)",
    "cum_bytes_down": "Data downloaded (bytes, cumulative)", "bytes_up": "Data uploaded this round (bytes)",
    "bytes_down": "Data downloaded this round (bytes)", "wall_s": "Compute time this round (s)",
    "cum_wall_s": "Compute time (s, cumulative)", "n_selected": "Clients selected",
    "n_completed": "Clients that completed the round", "train_loss": "Training loss",
}


def metric_label(key: str) -> str:
    """A readable name for a metric key: ``global_acc_mean`` -> "Accuracy on the global test set
    (mean over clients)"."""
    if key in _SPECIAL:
        return _SPECIAL[key]
    base, suffix = key, ""
    if "[" in key:  # server_acc[cnn]: per-architecture server model
        base, suffix = key.split("[", 1)
        suffix = f" [{suffix.rstrip(']')}]"
    parts = base.split("_")
    stat = parts.pop() if parts[-1] in _STATS and len(parts) > 1 else None
    scope = parts.pop(0) if parts[0] in _SCOPES else None
    name = "_".join(parts)
    text = _NAMES.get(name, name.replace("_", " "))
    text = text[:1].upper() + text[1:]
    if scope:
        text += f" {_SCOPES[scope]}"
    if stat:
        text += f" ({_STATS[stat]})"
    return text + suffix


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


# ---- run-level curves ---------------------------------------------------------------------------
def curves(round_df: pd.DataFrame, metric: str, x: str = "round", runs: Any = None, *,
           title: str | None = None, band: bool = True) -> go.Figure:
    """One line per run, or per setting with a mean +- std band over its seeds.

    :param metric: a round metric key (``global_acc_mean``, ``server_acc``, ``local_loss_worst10``).
    :param x: ``round``, ``sim_time_s`` (simulated time) or ``cum_bytes_up`` (communication
        spent); for a band the x of each round is the mean over seeds.
    :param runs: run rows (labels, sweep groups); see the module docstring.
    """
    wide = wide_rounds(round_df)
    title = title or metric_label(metric)
    if metric not in wide.columns:
        return _empty(f"No '{metric_label(metric)}' recorded for these runs.", title)
    if x not in wide.columns:
        return _empty(f"No '{metric_label(x)}' recorded for these runs (x axis).", title)
    fig = go.Figure()
    run_ids = list(dict.fromkeys(wide["run_id"]))
    for i, (label, members) in enumerate(series_groups(run_ids, runs)):
        color = PALETTE[i % len(PALETTE)]
        part = wide[wide["run_id"].isin(members)][list(dict.fromkeys(["run_id", "round", x, metric]))]
        part = part.dropna(subset=list(dict.fromkeys([metric, x])))
        if part.empty:
            continue
        if len(members) == 1:
            fig.add_trace(go.Scatter(x=part[x], y=part[metric], mode="lines+markers", name=label,
                                     line={"color": color}, marker={"size": 4},
                                     hovertemplate=f"{label}<br>%{{y:.4g}}<extra></extra>"))
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
    for i, (label, members) in enumerate(series_groups(run_ids, runs)):
        color = PALETTE[i % len(PALETTE)]
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
    """One line per client of one run (the first in ``client_df`` unless ``run_id``), coloured
    by ``color_by`` (a roster column: ``arch``, ``tier``...)."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    df = _client_frame(client_df, metric, run_id)
    title = title or f"{metric_label(metric)} per client"
    if df.empty:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    people = _roster(roster, run_id)
    colors: dict[str, str] = {}
    fig = go.Figure()
    for cid, part in df.groupby("client_id", sort=True):
        info = people.get(int(cid), {})
        name = str(info.get("name", f"client {cid}"))
        group = str(info.get(color_by) or "client")
        first = group not in colors
        color = colors.setdefault(group, PALETTE[len(colors) % len(PALETTE)])
        fig.add_trace(go.Scatter(x=part["round"], y=part["value"], mode="lines", name=group, legendgroup=group,
                                 showlegend=first, line={"color": color, "width": 1.5}, opacity=0.8,
                                 hovertemplate=f"{name} ({group})<br>round %{{x}}: %{{y:.4g}}<extra></extra>"))
    fig = _layout(fig, title, "Round", metric_label(metric))
    fig.update_layout(hovermode="closest")
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
                      run_id: str | None = None, color_by: str = "arch", title: str | None = None) -> go.Figure:
    """Each client's final ``metric`` in one run, best first, coloured by architecture (or
    ``color_by="tier"``), with the mean over clients as a dashed line."""
    run_id = run_id if run_id is not None or client_df.empty else client_df["run_id"].iloc[0]
    last = final_values(client_df, metric, run_id)
    title = title or f"Final {metric_label(metric)[:1].lower()}{metric_label(metric)[1:]} per client"
    if last.empty:
        return _empty(f"No '{metric_label(metric)}' recorded per client.", title)
    people = _roster(roster, run_id)
    last["name"] = [str(people.get(int(c), {}).get("name", f"client {c}")) for c in last["client_id"]]
    last["group"] = [str(people.get(int(c), {}).get(color_by) or "unspecified") for c in last["client_id"]]
    last = last.sort_values("value", ascending=not higher_is_better(metric))
    fig = go.Figure()
    colors: dict[str, str] = {}
    for group in dict.fromkeys(last["group"]):
        colors[group] = PALETTE[len(colors) % len(PALETTE)]
        part = last[last["group"] == group]
        fig.add_trace(go.Bar(x=part["name"], y=part["value"], name=group, marker_color=colors[group],
                             hovertemplate="%{x}<br>%{y:.4g}<extra>" + group + "</extra>"))
    mean = float(last["value"].mean())
    fig.add_hline(y=mean, line_dash="dash", line_color="#444", annotation_text=f"mean {mean:.3g}")
    fig = _layout(fig, title, "Client", metric_label(metric))
    fig.update_layout(hovermode="closest", barmode="overlay", legend_title_text=color_by)
    fig.update_xaxes(categoryorder="array", categoryarray=list(last["name"]))
    return fig


def fairness(client_df: pd.DataFrame, metric: str = "local_acc", runs: Any = None, *,
             title: str | None = None) -> go.Figure:
    """How evenly each run serves its clients: the distribution of the clients' final ``metric``
    (a box with every client as a point), the worst 10% of clients marked with a diamond."""
    title = title or f"Fairness: final {metric_label(metric)[:1].lower()}{metric_label(metric)[1:]} across clients"
    if client_df.empty:
        return _empty("No client figures recorded.", title)
    run_ids = list(dict.fromkeys(client_df["run_id"]))
    rows = _run_rows(runs, run_ids)
    fig = go.Figure()
    seen: dict[str, int] = {}
    for i, run_id in enumerate(run_ids):
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
        color = PALETTE[i % len(PALETTE)]
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
"""The virtual clock's ``status`` client metric (engine.clock: OK, STRAGGLER, DROPOUT, PARTIAL)."""
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
