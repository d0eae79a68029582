"""Exports of runs: CSV of their figures, the JSON config (re-runnable with ``python -m engine
run``), a reproducibility manifest, and the self-contained HTML report (:mod:`engine.report`).

Every table is built from the database alone, so the pages (download buttons: :func:`render`),
the CLI (``python -m engine export|summary|report``) and scripts get the same numbers. CSV floats
are written with full precision: reading a CSV back gives the stored numbers exactly; text cells
that start like a spreadsheet formula are written as text (:mod:`engine.sanitize`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import ConfigError, StorageError
from engine.metrics import headline, run_primary
from engine.sanitize import csv_text, write_csv
from engine.storage import Store


@dataclass(frozen=True)
class Format:
    """One export format."""

    name: str
    suffix: str
    mime: str
    description: str
    several: bool = False
    """Whether it takes several runs into one file."""


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("csv", ".csv", "text/csv", "round metrics, one row per round (wide)", True),
    Format("rounds-long-csv", ".csv", "text/csv", "round metrics, one row per round and metric (long)", True),
    Format("clients-csv", ".csv", "text/csv", "client metrics, one row per round, client and metric (long)", True),
    Format("clients-wide-csv", ".csv", "text/csv", "client metrics, one row per round and client (wide)", True),
    Format("summary-csv", ".csv", "text/csv", "one row per run: settings and final figures", True),
    Format("seeds-csv", ".csv", "text/csv", "final figures averaged over the seeds of each setting (mean, std)", True),
    Format("json", ".json", "application/json", "the full config, re-runnable with python -m engine run"),
    Format("manifest", ".json", "application/json",
           "reproducibility manifest: seed, partition fingerprint, versions, devices, times"),
    Format("html", ".html", "text/html", "self-contained HTML report: charts, config, roster, summary", True),
)}

def summary_order(run: dict[str, Any], final: dict[str, Any]) -> list[str]:
    """The order of a run's final figures in summaries: its primary metric's headline first
    (:func:`engine.metrics.summary_keys`), then the rest by name."""
    from engine.metrics import run_primary, summary_keys

    first = [k for k in summary_keys(run_primary(run, set(final))) if k in final]
    return first + sorted(k for k in final if k not in first and k != "primary_metric")


def safe_filename(name: str, default: str = "export") -> str:
    """A file name with only letters, digits, ``-``, ``_`` and ``.``; no path parts, no leading dot."""
    name = Path(str(name)).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name[:120] or default


def _ids(run_ids: str | Iterable[str]) -> list[str]:
    ids = [run_ids] if isinstance(run_ids, str) else list(dict.fromkeys(run_ids))
    if not ids:
        raise ConfigError("select at least one run to export")
    return ids


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds") if ts else None


# ---- tables -------------------------------------------------------------------------------------
def round_table(store: Store, run_id: str | Sequence[str]) -> pd.DataFrame:
    """One row per round, one column per round metric. Several runs: one row per run and round,
    with a ``run_id`` column first."""
    several = not isinstance(run_id, str)
    long = store.round_metrics(_ids(run_id))
    index = ["run_id", "round"] if several else ["round"]
    if long.empty:
        return pd.DataFrame({k: [] for k in index})
    return _widen(long, index)


def _widen(long: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Long ``key, value`` rows to one column per key (no aggregation: keys are unique per row)."""
    wide = long.set_index([*index, "key"])["value"].unstack("key")
    wide.columns.name = None
    return wide.reset_index()


def client_table(store: Store, run_id: str | Sequence[str], wide: bool = False) -> pd.DataFrame:
    """Client metrics with each client's name and architecture: long (``run_id, round,
    client_id, client, arch, key, value``) or wide (one row per run, round and client, one column
    per metric)."""
    ids = _ids(run_id)
    long = store.client_metrics(ids)
    roster = store.clients(ids)[["run_id", "client_id", "name", "arch"]].rename(columns={"name": "client"})
    long = long.merge(roster, on=["run_id", "client_id"], how="left")
    if not wide:
        return long[["run_id", "round", "client_id", "client", "arch", "key", "value"]]
    index = ["run_id", "round", "client_id", "client", "arch"]
    if long.empty:
        return pd.DataFrame({k: [] for k in index})
    return _widen(long, index)


def runs_summary(store: Store, run_ids: Iterable[str]) -> pd.DataFrame:
    """One row per run: name, status, strategy, dataset, seed, group, tags, rounds, times, the
    primary metric with its headline figure (:func:`engine.metrics.headline`), and the final
    figures (the last evaluated round: the round's own and those at each client's best validation
    round), headline first, in the order given."""
    rows = []
    for run_id in _ids(run_ids):
        run = store.get_run(run_id)
        final = run.get("summary") or {}
        row: dict[str, Any] = {
            "run_id": run_id, "name": run["name"], "status": run["status"], "strategy": run["strategy"],
            "variant": run.get("variant") or "", "dataset": run["dataset"], "seed": run["seed"],
            "n_clients": run["n_clients"], "rounds": run["rounds"], "rounds_done": run["current_round"],
            "group_id": run.get("group_id") or "", "tags": "; ".join(run.get("tags") or []),
            "parent_id": run.get("parent_id") or "", "created_at": _iso(run.get("created_at")),
            "started_at": _iso(run.get("started_at")), "finished_at": _iso(run.get("finished_at")),
            "duration_s": ((run["finished_at"] - run["started_at"])
                           if run.get("finished_at") and run.get("started_at") else None),
        }
        key, value = headline(final, run_primary(run, set(final)))
        row.update({"primary_metric": run_primary(run, set(final)).key, "headline_key": key or "",
                    "headline": value if value is not None else math.nan})
        row.update({k: (final[k] if final[k] is not None else math.nan) for k in summary_order(run, final)})
        rows.append(row)
    return pd.DataFrame(rows)


def group_key(run: dict[str, Any]) -> tuple[str, str]:
    """Runs with equal keys are seeds of one setting: ``(group_id, variant)`` for sweep members,
    ``(run_id, name)`` for a run on its own."""
    if run.get("group_id"):
        return run["group_id"], run.get("variant") or run.get("strategy") or ""
    return run["id"], run["name"]


def seed_summary(store: Store, run_ids: Iterable[str], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Final figures averaged over the seeds of each setting: one row per setting and metric
    with ``mean``, ``std`` (sample, ``ddof=1``; 0 for one seed), ``min``, ``max``, ``n`` and the
    seeds. Only finished runs count."""
    runs = [store.get_run(r) for r in _ids(run_ids)]
    runs = [r for r in runs if r["status"] == "finished"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    rows = []
    for (group_id, label), members in groups.items():
        finals = [m.get("summary") or {} for m in members]
        if metrics:
            keys = list(metrics)
        else:
            keys = list(dict.fromkeys(k for m, f in zip(members, finals, strict=True) for k in summary_order(m, f)
                                      if not k.startswith(("ref_", "best_round"))))
        for key in keys:
            values = [f[key] for f in finals if f.get(key) is not None]
            if not values:
                continue
            s = pd.Series(values, dtype=float)
            rows.append({"group_id": group_id if members[0].get("group_id") else "", "setting": label,
                         "metric": key, "mean": s.mean(), "std": s.std(ddof=1) if len(s) > 1 else 0.0,
                         "min": s.min(), "max": s.max(), "n": len(s),
                         "seeds": " ".join(str(m["seed"]) for m in members)})
    return pd.DataFrame(rows, columns=["group_id", "setting", "metric", "mean", "std", "min", "max", "n", "seeds"])


# ---- JSON ---------------------------------------------------------------------------------------
def config_json(store: Store, run_id: str) -> str:
    """The run's full config as JSON (valid input for ``python -m engine run``)."""
    return json.dumps(store.get_run(run_id)["config"], indent=2)


def config_fingerprint(config: dict[str, Any]) -> str:
    """SHA-256 of the config's canonical JSON: equal configs, equal fingerprints."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def manifest(store: Store, run_id: str) -> dict[str, Any]:
    """What it takes to reproduce a run and check a reproduction: seed, partition fingerprint,
    config fingerprint, library versions, devices, start/end times, resumes, and where each
    preprocessing statistic came from (federated aggregate, each client's own data, or the whole file)."""
    run = store.get_run(run_id)
    recorded = run.get("manifest") or {}
    events = store.events(run_id)
    resumes = [m for m in events["message"].tolist() if m.startswith("resumed")] if not events.empty else []
    final = run.get("summary") or {}
    return {
        "run_id": run_id, "name": run["name"], "status": run["status"], "seed": run["seed"],
        "partition_fingerprint": recorded.get("partition_fingerprint"),
        "config_sha256": config_fingerprint(run["config"]),
        "strategy": run["strategy"], "dataset": run["dataset"], "n_clients": run["n_clients"],
        "rounds": run["rounds"], "rounds_done": run["current_round"],
        "versions": run.get("versions") or recorded.get("versions") or {},
        "devices": recorded.get("devices", []), "torch_threads": recorded.get("torch_threads"),
        "preprocessing": recorded.get("preprocessing"),  # where every preprocessing statistic came from
        "created_at": _iso(run.get("created_at")), "started_at": _iso(run.get("started_at")),
        "finished_at": _iso(run.get("finished_at")),
        "duration_s": ((run["finished_at"] - run["started_at"])
                       if run.get("finished_at") and run.get("started_at") else None),
        "compute_s": final.get("cum_wall_s"), "resumes": resumes,
        "group_id": run.get("group_id"), "variant": run.get("variant"), "parent_id": run.get("parent_id"),
        "rerun": "python -m engine run <this run's config.json>",
    }


def _json(value: Any) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, default=str, allow_nan=False)


# ---- files --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rendered:
    """An export in memory (for download buttons): file name, bytes, MIME type."""

    filename: str
    data: bytes
    mime: str


def default_filename(store: Store, run_ids: str | Sequence[str], fmt: str) -> str:
    """``<run name>-<id>-<format><suffix>``, or ``runs-<n>-...`` for several runs; sanitised."""
    f = _format(fmt)
    ids = _ids(run_ids)
    stem = f"{store.get_run(ids[0])['name']}-{ids[0]}" if len(ids) == 1 else f"runs-{len(ids)}"
    kind = {"csv": "rounds", "json": "config"}.get(f.name, f.name.removesuffix("-csv"))
    return safe_filename(f"{stem}-{kind}{f.suffix}")


def render(store: Store, run_ids: str | Sequence[str], fmt: str, *, title: str | None = None) -> Rendered:
    """Build one export in memory.

    :raises ConfigError: unknown format, no run, or several runs for a one-run format.
    :raises RunNotFoundError: a run id is not in the database.
    """
    f = _format(fmt)
    ids = _ids(run_ids)
    for run_id in ids:
        store.get_run(run_id)
    if len(ids) > 1 and not f.several:
        raise ConfigError(f"format '{fmt}' exports one run; select one (or use csv, summary-csv or html)")
    several = len(ids) > 1 or not isinstance(run_ids, str)
    target: str | list[str] = ids if several else ids[0]
    if f.name == "csv":
        text = csv_text(round_table(store, target))
    elif f.name == "rounds-long-csv":
        text = csv_text(store.round_metrics(ids))
    elif f.name == "clients-csv":
        text = csv_text(client_table(store, ids))
    elif f.name == "clients-wide-csv":
        text = csv_text(client_table(store, ids, wide=True))
    elif f.name == "summary-csv":
        text = csv_text(runs_summary(store, ids))
    elif f.name == "seeds-csv":
        text = csv_text(seed_summary(store, ids))
    elif f.name == "json":
        text = config_json(store, ids[0])
    elif f.name == "manifest":
        text = _json(manifest(store, ids[0]))
    else:
        from engine.report import build_report

        text = build_report(store, ids, title=title)
    return Rendered(default_filename(store, ids, f.name), text.encode("utf-8"), f.mime)


def export_runs(store: Store, run_ids: str | Sequence[str], fmt: str, out: Path, *,
                title: str | None = None) -> Path:
    """Write an export of one or several runs to ``out`` (its file name is sanitised; a folder
    gets the default file name). Returns the path written.

    :raises StorageError: the file cannot be written.
    """
    rendered = render(store, run_ids, fmt, title=title)
    out = Path(out)
    out = out / rendered.filename if out.is_dir() else out.with_name(safe_filename(out.name, rendered.filename))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part")
        tmp.write_bytes(rendered.data)
        tmp.replace(out)
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def export_run(store: Store, run_id: str, fmt: str, out: Path) -> Path:
    """Write one run's export (any of :data:`FORMATS`) to ``out``; see :func:`export_runs`.

    :raises StorageError: the file cannot be written.
    """
    return export_runs(store, run_id, fmt, out)


def write_table(table: pd.DataFrame, out: Path) -> Path:
    """Write a table as CSV (sanitised file name).

    :raises StorageError: the file cannot be written.
    """
    out = Path(out)
    out = out.with_name(safe_filename(out.name, "table.csv"))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(table, out)
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}") from None
    return out


def _format(fmt: str) -> Format:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ConfigError(f"unknown export format '{fmt}'; use one of: {', '.join(FORMATS)}") from None
