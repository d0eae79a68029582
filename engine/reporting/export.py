"""Exports of runs: CSV of their figures, the JSON config (re-runnable with ``python -m engine
run``), a reproducibility manifest, and the self-contained HTML report (:mod:`engine.reporting.report`).

Every table is built from the database alone, so the pages (download buttons: :func:`render`),
the CLI (``python -m engine export|summary|report``) and scripts get the same numbers. CSV floats
are written with full precision: reading a CSV back gives the stored numbers exactly; text cells
that start like a spreadsheet formula are written as text (:mod:`engine.sanitize`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import ConfigError, StorageError
from engine.reporting.report import build_report
from engine.reporting.tables import (
    client_table,
    config_json,
    id_list,
    manifest,
    round_table,
    runs_summary,
    seed_summary,
)
from engine.sanitize import csv_text, safe_filename, write_csv
from engine.tracking.storage import Store


@dataclass(frozen=True)
class Format:
    """One export format and its renderer: ``render(store, ids, target, title)`` -> text, where
    ``target`` is the one run id, or the list of ids when several runs (or a list) were asked for."""

    name: str
    suffix: str
    mime: str
    description: str
    render: Callable[[Store, list[str], str | list[str], str | None], str]
    several: bool = False
    """Whether it takes several runs into one file."""


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "csv",
            ".csv",
            "text/csv",
            "round metrics, one row per round (wide)",
            lambda store, ids, target, title: csv_text(round_table(store, target)),
            True,
        ),
        Format(
            "rounds-long-csv",
            ".csv",
            "text/csv",
            "round metrics, one row per round and metric (long)",
            lambda store, ids, target, title: csv_text(store.round_metrics(ids)),
            True,
        ),
        Format(
            "clients-csv",
            ".csv",
            "text/csv",
            "client metrics, one row per round, client and metric (long)",
            lambda store, ids, target, title: csv_text(client_table(store, ids)),
            True,
        ),
        Format(
            "clients-wide-csv",
            ".csv",
            "text/csv",
            "client metrics, one row per round and client (wide)",
            lambda store, ids, target, title: csv_text(client_table(store, ids, wide=True)),
            True,
        ),
        Format(
            "summary-csv",
            ".csv",
            "text/csv",
            "one row per run: settings and final figures",
            lambda store, ids, target, title: csv_text(runs_summary(store, ids)),
            True,
        ),
        Format(
            "seeds-csv",
            ".csv",
            "text/csv",
            "final figures averaged over the seeds of each setting (mean, std)",
            lambda store, ids, target, title: csv_text(seed_summary(store, ids)),
            True,
        ),
        Format(
            "json",
            ".json",
            "application/json",
            "the full config, re-runnable with python -m engine run",
            lambda store, ids, target, title: config_json(store, ids[0]),
        ),
        Format(
            "manifest",
            ".json",
            "application/json",
            "reproducibility manifest: seed, partition fingerprint, versions, devices, times",
            lambda store, ids, target, title: _json(manifest(store, ids[0])),
        ),
        Format(
            "html",
            ".html",
            "text/html",
            "self-contained HTML report: charts, config, roster, summary",
            lambda store, ids, target, title: build_report(store, ids, title=title),
            True,
        ),
    )
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
    ids = id_list(run_ids)
    stem = f"{store.get_run(ids[0])['name']}-{ids[0]}" if len(ids) == 1 else f"runs-{len(ids)}"
    kind = {"csv": "rounds", "json": "config"}.get(f.name, f.name.removesuffix("-csv"))
    return safe_filename(f"{stem}-{kind}{f.suffix}")


def render(store: Store, run_ids: str | Sequence[str], fmt: str, *, title: str | None = None) -> Rendered:
    """Build one export in memory.

    :raises ConfigError: unknown format, no run, or several runs for a one-run format.
    :raises RunNotFoundError: a run id is not in the database.
    """
    f = _format(fmt)
    ids = id_list(run_ids)
    for run_id in ids:
        store.get_run(run_id)
    if len(ids) > 1 and not f.several:
        raise ConfigError(f"format '{fmt}' exports one run; select one (or use csv, summary-csv or html)")
    several = len(ids) > 1 or not isinstance(run_ids, str)
    target: str | list[str] = ids if several else ids[0]
    text = f.render(store, ids, target, title)
    return Rendered(default_filename(store, ids, f.name), text.encode("utf-8"), f.mime)


def export_runs(
    store: Store, run_ids: str | Sequence[str], fmt: str, out: Path, *, title: str | None = None
) -> Path:
    """Write an export of one or several runs to ``out`` (its file name is sanitised; a folder
    gets the default file name). Returns the path written.

    :raises StorageError: the file cannot be written.
    """
    rendered = render(store, run_ids, fmt, title=title)
    out = Path(out)
    out = (
        out / rendered.filename if out.is_dir() else out.with_name(safe_filename(out.name, rendered.filename))
    )
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
