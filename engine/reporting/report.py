"""A self-contained HTML report of one or several runs, to send to people who will not open the
app: the Plotly charts (plotly.js inlined, so it opens offline in any browser), the summary table
(with means and spreads over seeds), and per run its config (re-runnable JSON), roster,
reproducibility manifest and event log.

Built from the database alone, with the figure builders of :mod:`engine.reporting.charts`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from engine.core.metrics import Metric, client_key, headline_keys, run_primary, shared_primary, summary_keys
from engine.errors import ConfigError, StorageError
from engine.reporting import charts
from engine.reporting.charts import headline_label
from engine.reporting.markup import CSS, Figures, esc, html_table, json_script
from engine.reporting.pairing import verdicts_for
from engine.reporting.tables import ROSTER_SUMMARY, manifest, runs_summary, seed_summary
from engine.sanitize import safe_filename
from engine.tracking.storage import Store


def _short(keys: Sequence[str]) -> dict[str, str]:
    """Short column headers of summary keys (the full name is the header's tooltip)."""
    out = {
        k: headline_label(k)
        if k.startswith(("best_local", "local_")) and k.endswith("_mean")
        else charts.short_label(k)
        for k in keys
    }
    out.update({"cum_bytes_up": "MB uploaded", "sim_time_s": "simulated s"})
    return out


PER_RUN_CHARTS = 6
"""Runs beyond this many get no per-client charts (the report stays light)."""


def primary_metric(keys: set[str], runs: Sequence[dict[str, Any]] = ()) -> str | None:
    """The round key to headline the report's curves with: the runs' primary metric on the clients'
    own test data (:mod:`engine.core.metrics`), the round's own figure (a curve over rounds)."""
    metric = shared_primary(list(runs)) if runs else run_primary({}, keys)
    return next((k for k in headline_keys(metric, best_first=False) if k in keys), None)


def _verdict_html(store: Store, ids: Sequence[str], figures: Figures) -> list[str]:
    """The verdict section: each strategy against its paired local (and centralized) runs, as
    sentences and the who-gains chart (nothing when no run is paired)."""
    verdicts, pairings = verdicts_for(store, list(ids))
    if not pairings:
        return []
    parts = ["<h2>Verdict</h2>"]
    if not verdicts:
        parts.append(
            '<p class="note">No strategy run here has a paired <code>local</code> run on the same split '
            "and seed; launch one to see whether collaborating pays.</p>"
        )
        return parts
    for v in verdicts:
        parts.append(f'<p class="verdict verdict-{esc(v.outcome)}"><strong>{esc(v.sentence)}</strong></p>')
    parts.append(
        f'<p class="note">{esc(verdicts[0].interval_note)} Figures at each client\'s best validation '
        f"round.</p>"
    )
    local = [v for v in verdicts if v.baseline == "local"] or verdicts
    parts.append(figures.html(charts.gains(local)))
    parts.append(json_script("verdict-data", [v.as_dict() for v in verdicts]))
    return parts


def _summary_html(store: Store, ids: Sequence[str], metric: Metric) -> list[str]:
    """The summary table, the means over seeds, and the summary as JSON for scripts."""
    parts: list[str] = []
    summary = runs_summary(store, ids)
    metrics = [k for k in (*summary_keys(metric)[:5], "cum_bytes_up", "sim_time_s") if k in summary.columns]
    short = _short(metrics)
    table = summary.copy()
    table["setting"] = [v or st for v, st in zip(table["variant"], table["strategy"], strict=True)]
    table["rounds"] = [f"{d}/{t}" for d, t in zip(table["rounds_done"], table["rounds"], strict=True)]
    if "cum_bytes_up" in table:
        table["cum_bytes_up"] = table["cum_bytes_up"] / 1e6
    parts.append("<h2>Summary</h2>")
    parts.append(
        html_table(
            table,
            ["name", "status", "setting", "dataset", "seed", "n_clients", "rounds", *metrics],
            {"n_clients": "clients", **short},
        )
    )
    seeds = seed_summary(store, ids, metrics=metrics)
    if not seeds.empty and (seeds["n"] > 1).any():
        seeds = seeds[seeds["n"] > 1]
        scale = {"cum_bytes_up": 1e6}
        grid = seeds.pivot_table(
            index=["group_id", "setting", "n", "seeds"],
            columns="metric",
            aggfunc="first",
            values=["mean", "std"],
            sort=False,
        )
        rows = []
        for (_group_id, setting, n, seed_list), row in grid.iterrows():
            cells = {"setting": setting, "seeds": f"{n} ({seed_list})"}
            for m in metrics:
                if ("mean", m) in row and pd.notna(row[("mean", m)]):
                    k = scale.get(m, 1.0)
                    cells[m] = f"{row[('mean', m)] / k:.4g} ± {row[('std', m)] / k:.2g}"
            rows.append(cells)
        parts.append("<h3>Averaged over seeds (mean ± std)</h3>")
        parts.append(html_table(pd.DataFrame(rows), ["setting", "seeds", *metrics], short))
    parts.append(json_script("summary-data", json.loads(summary.to_json(orient="records"))))
    return parts


def _charts_html(
    round_df: pd.DataFrame,
    client_df: pd.DataFrame,
    runs: list[dict[str, Any]],
    primary: str | None,
    metric: Metric,
    client_metric: str | None,
    figures: Figures,
) -> list[str]:
    """Learning curves, communication and time, and the clients' spread."""
    keys = set(round_df["key"]) if not round_df.empty else set()
    parts: list[str] = []
    parts.append("<h2>Learning curves</h2>")
    if primary is None:
        parts.append('<p class="note">No evaluated round yet.</p>')
    else:
        parts.append(figures.html(charts.curves(round_df, primary, runs=runs)))
        for extra in (f"best_local_{metric.key}_mean", f"local_{metric.key}_worst10", "val_loss_mean"):
            if extra in keys and extra != primary:
                parts.append(figures.html(charts.curves(round_df, extra, runs=runs)))
        parts.append("<h2>Communication and time</h2>")
        if "cum_bytes_up" in keys:
            parts.append(
                figures.html(
                    charts.curves(
                        round_df,
                        primary,
                        x="cum_bytes_up",
                        runs=runs,
                        title=f"{charts.metric_label(primary)} vs data uploaded",
                    )
                )
            )
        if "sim_time_s" in keys:
            parts.append(
                figures.html(
                    charts.curves(
                        round_df,
                        primary,
                        x="sim_time_s",
                        runs=runs,
                        title=f"{charts.metric_label(primary)} vs simulated time",
                    )
                )
            )
        parts.append(figures.html(charts.communication(round_df, runs=runs)))
    if client_metric:
        parts.append("<h2>Clients</h2>")
        parts.append(figures.html(charts.fairness(client_df, client_metric, runs=runs)))
    return parts


def _run_html(
    store: Store,
    run: dict[str, Any],
    client_df: pd.DataFrame,
    roster: pd.DataFrame,
    client_metric: str | None,
    figures: Figures,
    first_without: bool,
) -> list[str]:
    """One run's section: its status, per-client charts (``client_metric``; ``first_without``:
    the first run past :data:`PER_RUN_CHARTS`, which says why it has none), roster, config,
    manifest and event log."""
    parts: list[str] = []
    run_id = run["id"]
    parts.append(
        f'<h2 id="run-{esc(run_id)}">Run {esc(run["name"])} '
        f'<span class="meta">({esc(run_id)}, <span class="status-{esc(run["status"])}">'
        f"{esc(run['status'])}</span>)</span></h2>"
    )
    if run.get("error"):
        parts.append(
            f"<p><strong>{'Error' if run['status'] == 'failed' else 'Note'}:</strong> {esc(run['error'])}</p>"
        )
    if client_metric and not first_without:
        parts.append(figures.html(charts.final_client_bars(client_df, client_metric, roster, run_id=run_id)))
        parts.append(figures.html(charts.client_heatmap(client_df, client_metric, roster, run_id=run_id)))
    elif client_metric:
        parts.append(f'<p class="note">Per-client charts are shown for the first {PER_RUN_CHARTS} runs.</p>')
    parts.append("<h3>Roster</h3>")
    mine = roster[roster["run_id"] == run_id] if not roster.empty else roster
    parts.append(html_table(mine, list(ROSTER_SUMMARY)))
    config = run["config"]
    parts.append(
        "<details><summary>Config (re-run with <code>python -m engine run config.json</code>)</summary>"
        f"<pre>{esc(json.dumps(config, indent=2))}</pre></details>"
    )
    parts.append(json_script(f"config-{run_id}", config))
    parts.append(
        "<details><summary>Reproducibility manifest</summary>"
        f"<pre>{esc(json.dumps(manifest(store, run_id), indent=2, default=str))}</pre></details>"
    )
    events = store.events(run_id)
    if not events.empty:
        events = events.tail(200).copy()
        events["time"] = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) for t in events["ts"]]
        events["round"] = [("" if pd.isna(r) else int(r)) for r in events["round"]]
        parts.append(
            "<details><summary>Event log</summary>"
            + html_table(events, ["time", "round", "level", "message"])
            + "</details>"
        )
    return parts


def build_report(store: Store, run_ids: Sequence[str], *, title: str | None = None) -> str:
    """The report of ``run_ids`` as one HTML document (a few MB: plotly.js is inside).

    :raises ConfigError: no run given.
    :raises RunNotFoundError: an id is not in the database.
    """
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        raise ConfigError("a report needs at least one run")
    runs = [store.get_run(r) for r in ids]
    title = title or (runs[0]["name"] if len(runs) == 1 else f"FedMosaic: {len(runs)} runs compared")
    round_df = store.round_metrics(ids)
    client_df = store.client_metrics(ids)
    roster = store.clients(ids)
    keys = set(round_df["key"]) if not round_df.empty else set()
    primary = primary_metric(keys, runs)
    metric = shared_primary(runs)
    figures = Figures()
    parts: list[str] = [
        f"<h1>{esc(title)}</h1>",
        (
            f'<p class="meta">Generated {time.strftime("%Y-%m-%d %H:%M %Z")} by FedMosaic · '
            f"{len(runs)} run{'s' if len(runs) != 1 else ''} · opens offline in any browser</p>"
        ),
    ]

    parts.extend(_summary_html(store, ids, metric))
    parts.extend(_verdict_html(store, ids, figures))
    client_keys = set(client_df["key"]) if not client_df.empty else set()
    client_metric = next(
        (
            k
            for k in (
                client_key(metric),
                client_key(metric, best=False),
                "local_acc",
                "local_r2",
                "local_loss",
            )
            if k in client_keys
        ),
        None,
    )
    parts.extend(_charts_html(round_df, client_df, runs, primary, metric, client_metric, figures))
    for i, run in enumerate(runs):
        parts.extend(
            _run_html(
                store,
                run,
                client_df,
                roster,
                client_metric if i <= PER_RUN_CHARTS else None,
                figures,
                i == PER_RUN_CHARTS,
            )
        )
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def write_report(store: Store, run_ids: Sequence[str], out: Path, *, title: str | None = None) -> Path:
    """Write :func:`build_report` to ``out`` (file name sanitised; ``.html`` added if missing).

    :raises StorageError: the file cannot be written.
    """
    out = Path(out)
    name = safe_filename(out.name, "report.html")
    if not name.lower().endswith((".html", ".htm")):
        name += ".html"
    out = out.with_name(name)
    text = build_report(store, run_ids, title=title)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out
