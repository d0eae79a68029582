"""The data section of a design: uploaded table files, inspecting the configured file for the
Data page (never leaving it empty-handed), the editable schema table (column roles and types) and
the loaded dataset's summary."""

from __future__ import annotations

import copy
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from engine.data import inspect_csv, load_dataset, natural_groups
from engine.data.config import COLUMN_TYPES, DataConfig
from engine.data.stats import SOURCES
from engine.data.tables.reading import EXTENSIONS
from engine.errors import ConfigError, DataError, FedMosaicError, StorageError, validation_problems
from engine.labels import for_page
from engine.tracking.storage import default_data_dir


def upload_filename(name: str) -> str:
    """An uploaded file's name as stored and shown: its last path part, letters and digits of any
    script, spaces, ``-_.()`` kept, anything else ``_``; no leading dot; at most 120 characters."""
    base = unicodedata.normalize("NFC", re.split(r"[\\/]", str(name))[-1])
    base = re.sub(r"[^\w .()-]+", "_", base).strip(" ._")
    base = re.sub(r"\s+", " ", base)
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 119 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else base[:120]
    return base or "upload.csv"


def save_upload(filename: str, content: bytes, limit_mb: float = 200.0, root: Path | None = None) -> str:
    """Store an uploaded table under ``<data dir>/uploads/`` with a sanitised name; return the path
    to put in ``data.path`` (relative to the data directory).

    :raises DataError: not a ``.csv``/``.tsv``/``.txt``/``.xlsx``/``.parquet`` file, empty, or over
        ``limit_mb``.
    :raises StorageError: the data directory cannot be written.
    """
    name = upload_filename(filename)
    if not name.lower().endswith(EXTENSIONS):
        raise DataError(
            f"'{filename}' is not a table file; upload a .csv (or .tsv/.txt), an Excel .xlsx or a "
            f".parquet file"
        )
    if not content:
        raise DataError(f"'{filename}' is empty; upload a CSV with a header row and data rows")
    size_mb = len(content) / 1e6
    if size_mb > limit_mb:
        raise DataError(
            f"'{filename}' is {size_mb:.0f} MB, over the {limit_mb:.0f} MB limit; upload a "
            f"smaller sample or raise data.max_file_mb"
        )
    folder = (root or default_data_dir()) / "uploads"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    except OSError as exc:
        raise StorageError(f"cannot store the upload in {folder}: {exc.strerror}") from None
    return f"uploads/{name}"


def inspect(data: dict[str, Any]) -> dict[str, Any]:
    """Schema report of the design's CSV (see :func:`engine.data.inspect_csv`).

    :raises DataError: the file cannot be read or used as configured.
    """
    cfg = data_config(data)
    return inspect_csv(None, cfg, default_data_dir())


@dataclass
class Inspection:
    """What the Data page can show about the design's file: the schema report (``None`` when the
    file cannot be read as set), the one error to show (in the page's words), and where it arose:
    ``read`` (the reading settings), ``columns`` (a column's type), ``target`` (target or task),
    ``setup`` (another data setting)."""

    report: dict[str, Any] | None
    error: str | None = None
    stage: str | None = None


def inspect_page(data: dict[str, Any]) -> Inspection:
    """Inspect the design's file for the Data page without ever leaving it empty-handed: when the
    file cannot be used as set, fall back to its schema without a target (so the target, task and
    columns controls stay), then to the bare file (reading controls); the error is returned once,
    naming the page's controls. Stages: ``target`` (the file reads; the target, task, windows,
    image shape or split column is the problem), ``setup`` (a column override or the partition
    column), ``read`` (nothing can be read as set: encoding, separator, the file itself)."""
    try:
        cfg = data_config(data)
    except ConfigError as exc:
        return Inspection(None, for_page(str(exc)), "setup")
    root = default_data_dir()
    problems: list[str] = []
    try:
        report = inspect_csv(None, cfg, root, problems=problems)
    except FedMosaicError as exc:
        first = str(exc)
    else:
        if problems:
            more = (
                f" ({len(problems) - 1} more column{'s' if len(problems) > 2 else ''} noted in the table)"
                if len(problems) > 1
                else ""
            )
            return Inspection(report, for_page(problems[0] + more), "columns")
        return Inspection(report)
    bare = cfg.model_copy(
        update={"target": None, "task": "auto", "window": None, "image_shape": None, "split_column": None}
    )
    for fallback, stage in (
        (bare, "target"),
        (bare.model_copy(update={"columns": {}, "partition": DataConfig().partition}), "setup"),
    ):
        try:
            report = inspect_csv(None, fallback, root, problems=[])
        except FedMosaicError:
            continue
        return Inspection(report, for_page(first), stage)
    return Inspection(None, for_page(first), "read")


def treat_as_missing(data: dict[str, Any], column: str, value: Any) -> dict[str, Any]:
    """The ``data`` section with ``value`` of ``column`` read as missing (``missing_values``)."""
    data = copy.deepcopy(data)
    columns = dict(data.get("columns") or {})
    spec = columns.get(column)
    spec = {"type": spec} if isinstance(spec, str) else dict(spec or {})
    codes = list(spec.get("missing_values") or [])
    if value not in codes:
        codes.append(value)
    spec["missing_values"] = codes
    columns[column] = spec
    data["columns"] = columns
    return data


_STATISTICS_WORDS = {
    "federated": "Federated: aggregates the sites share (sums, counts), never rows",
    "client": "Each client's own training data alone",
    "centralized": "Centralized statistics: not possible in a real federation",
}
#: The choices of ``data.statistics`` (:data:`engine.data.stats.SOURCES`, in its order) in the Data
#: page's words; a source added there without words here fails at import.
STATISTICS = {source: _STATISTICS_WORDS[source] for source in SOURCES}
#: Text encodings offered besides "auto" (detected) and what the file was read with.
ENCODINGS = ("utf-8", "cp1252", "latin-1", "iso-8859-15", "utf-16", "cp1250", "cp1251", "mac-roman")


def data_config(data: dict[str, Any]) -> DataConfig:
    """The validated ``data`` section.

    :raises ConfigError: listing every problem as ``data.field: message``.
    """
    try:
        return DataConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("; ".join(validation_problems(exc, prefix="data."))) from None


def set_column_role(data: dict[str, Any], column: str, role: str, type_: str = "auto") -> dict[str, Any]:
    """Apply one schema-table row: the column's ``role`` (feature, target, split, ignore) and its
    ``type`` override; returns the new ``data`` section."""
    data = copy.deepcopy(data)
    columns = dict(data.get("columns") or {})
    spec = columns.get(column)
    spec = {"type": spec} if isinstance(spec, str) else dict(spec or {})
    if role == "ignore":
        spec["type"] = "ignore"
    else:
        spec["type"] = type_ if type_ in COLUMN_TYPES and type_ != "ignore" else "auto"
    if role == "target":
        data["target"] = column
    elif data.get("target") == column:
        data["target"] = None
    if data.get("split_column") == column and role != "ignore":  # no longer the train/test column
        data["split_column"] = None
    partition = dict(data.get("partition") or {"method": "iid"})
    if role == "split":
        data["partition"] = {
            "method": "natural",
            "column": column,
            **{
                k: v
                for k, v in partition.items()
                if k in ("min_size", "small") and partition.get("method") == "natural"
            },
        }
    elif partition.get("method") == "natural" and partition.get("column") == column:
        data["partition"] = {"method": "iid"}
    if spec.get("type") == "auto" and set(spec) <= {"type"}:
        columns.pop(column, None)
    else:
        columns[column] = spec
    data["columns"] = columns
    return data


def schema_frame(report: dict[str, Any], data: dict[str, Any]) -> pd.DataFrame:
    """The Data page's editable schema table from an :func:`inspect` report."""
    natural = (
        data.get("partition", {}).get("column")
        if data.get("partition", {}).get("method") == "natural"
        else None
    )
    overrides = data.get("columns") or {}
    rows = []
    for c in report.get("columns", []):
        spec = overrides.get(c["name"])
        forced = spec if isinstance(spec, str) else (spec or {}).get("type", "auto")
        if c["name"] == data.get("target"):
            role = "target"
        elif c["name"] == natural:
            role = "split"
        elif (
            forced == "ignore"
            or c.get("role") in ("ignored", "id", "split")
            or c["name"] == data.get("split_column")
        ):
            role = "ignore"
        else:
            role = "feature"
        rows.append(
            {
                "column": c["name"],
                "role": role,
                "type": forced if forced in COLUMN_TYPES and forced != "ignore" else "auto",
                "inferred": c.get("inferred", ""),
                "missing": int(c.get("missing", 0)),
                "unique": int(c.get("unique", 0)),
                "examples": ", ".join(map(str, c.get("examples", [])))[:60],
                "note": c.get("note", ""),
            }
        )
    target = data.get("target")
    if target and all(r["column"] != target for r in rows):  # the report lists features only
        counts = report.get("class_counts") or {}
        rows.insert(
            0,
            {
                "column": target,
                "role": "target",
                "type": "auto",
                "inferred": f"target ({report.get('task', '?')})",
                "missing": 0,
                "unique": len(counts) if counts else 0,
                "examples": ", ".join(map(str, list(counts)[:4]))[:60],
                "note": ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:6]),
            },
        )
    return pd.DataFrame(
        rows, columns=["column", "role", "type", "inferred", "missing", "unique", "examples", "note"]
    )


ROLES = ("feature", "target", "split", "ignore")


def apply_schema(data: dict[str, Any], before: pd.DataFrame, after: pd.DataFrame) -> dict[str, Any]:
    """The ``data`` section after the user edited the schema table from ``before`` to ``after``."""
    for (_, b), (_, a) in zip(before.iterrows(), after.iterrows(), strict=False):
        if a["role"] != b["role"] or a["type"] != b["type"]:
            data = set_column_role(
                data, str(a["column"]), str(a["role"] or "feature"), str(a["type"] or "auto")
            )
    return data


def dataset_summary(data: dict[str, Any]) -> dict[str, Any]:
    """``{"name", "samples", "task", "input", "kind", "classes", "columns"}`` of the configured dataset.

    :raises FedMosaicError: the dataset cannot be loaded (names the fix).
    """
    ds = load_dataset(data_config(data), default_data_dir())
    return {
        "name": ds.name,
        "samples": len(ds),
        "task": ds.task,
        "input": str(ds.input_spec),
        "kind": ds.input_spec.kind,
        "shape": list(ds.input_spec.shape),
        "classes": list(ds.classes),
        "columns": sorted(ds.columns),
        "report": ds.report,
    }


def natural_names(data: dict[str, Any]) -> list[str]:
    """The clients a ``natural`` partition makes (one per value of its column)."""
    return natural_groups(data_config(data), default_data_dir())
