"""The column steps of :func:`engine.data.tables.dataset.table_to_dataset`: which columns have a role
besides features (partition, window, time, split), every column's plan, the report's view of the
schema and missing values, the rows shaped as the model reads them (table, images or windows), and
the target's description."""

from __future__ import annotations

import difflib
import re
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from engine.data.config import DataConfig
from engine.data.stats import Feature
from engine.data.tables.infer import ColumnPlan, line_of, parse_times
from engine.data.tables.target import check_classes, make_windows, split_candidates
from engine.errors import DataError
from engine.models.base import InputSpec

_SITE_NAME = re.compile(
    r"site|hospital|h[oô]pital|clinic|center|centre|city|region|device|client|institution|"
    r"provider|location|ward|country|state",
    re.IGNORECASE,
)


def missing_column(what: str, name: str, names: list[str]) -> DataError:
    same_case = [n for n in names if n.strip().lower() == name.strip().lower()]
    close = same_case or difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    listed = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
    return DataError(f"{what} '{name}' is not a column of the file; {hint}columns: {listed}")


def column_roles(cfg: DataConfig, names: list[str], target: str | None) -> tuple[list[str], dict[str, str]]:
    """The columns with a role besides features (``group``: partition or window groups, ``time``,
    ``split``), checked against the file's columns and the target."""
    group = cfg.natural_column()
    w = cfg.window
    group_cols = [c for c in dict.fromkeys([group, w.group_column if w else None]) if c is not None]
    special = {c: "group" for c in group_cols}
    if w is not None:
        special[w.time_column] = "time"
    if cfg.split_column is not None:
        if cfg.split_column in special:
            raise DataError(
                f"data.split_column '{cfg.split_column}' is also the partition, window or time "
                f"column; choose a different column"
            )
        special[cfg.split_column] = "split"
    for col, role in special.items():
        what = {
            "group": "partition/window column",
            "time": "data.window.time_column",
            "split": "data.split_column",
        }[role]
        if col not in names:
            raise missing_column(what, col, names)
        if col == target:
            raise DataError(f"{what} '{col}' is also the target; choose a different column")
    return group_cols, special


def plan_columns(
    df: pd.DataFrame,
    names: list[str],
    target: str | None,
    special: dict[str, str],
    inferred: dict[str, ColumnPlan],
) -> tuple[list[ColumnPlan], pd.Series | None]:
    """Every column's plan in file order (the target aside), and the parsed time column if any."""
    plans: list[ColumnPlan] = []
    times = None
    for name in names:
        if name == target:
            continue
        role = special.get(name)
        if role in ("group", "split"):
            plans.append(
                ColumnPlan(
                    name,
                    role,
                    role,
                    role=role,
                    unique=int(df[name].nunique()),
                    examples=[str(v) for v in df[name].unique()[:3]],
                    note="one client per value"
                    if role == "group"
                    else "says which rows are train, test or validation data",
                )
            )
            continue
        plan = inferred[name]
        if role == "time":
            times = df[name] if ptypes.is_numeric_dtype(df[name]) else parse_times(df[name])
            bad = times.isna().to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"time column '{name}' has '{df[name].iloc[i]}' at line "
                    f"{line_of(df.index[i])}, which is neither a date nor a number; fix it"
                )
            plan.role = "time"
            plan.type = "datetime" if ptypes.is_datetime64_any_dtype(times) else "numeric"
            plan.note = "sorts the windows"
            if plan.type == "datetime":
                plan.note += "; expanded into calendar features"
        plans.append(plan)
    return plans, times


def describe_columns(
    report: dict[str, Any],
    plans: list[ColumnPlan],
    df: pd.DataFrame,
    problems: list[str] | None,
    warnings: list[str],
) -> None:
    """The report's view of the columns: schema, identifier-like, empty, partition and split
    candidates, code-like numbers, problems; warnings for what is left out."""
    report["columns"] = [p.summary() for p in plans]
    report["id_like"] = [p.name for p in plans if p.role == "id"]
    report["empty"] = [p.name for p in plans if p.type == "empty"]
    # a column set to "ignore" (by hand, or when pixel columns are read as images) stays offered
    # as the split or train/test column by what it holds: choosing it there un-ignores it
    report["natural_candidates"] = sorted(
        [
            p.name
            for p in plans
            if (p.inferred if p.type == "ignore" else p.type)
            in ("categorical", "ordinal", "boolean", "group")
            and 2 <= p.unique <= min(64, max(2, len(df) // 5))
        ],
        key=lambda n: not _SITE_NAME.search(n),
    )  # site-like names first, then file order
    report["split_candidates"] = split_candidates(
        df, {p.name: p for p in plans if p.role in ("feature", "split") or p.type == "ignore"}
    )
    report["code_like"] = [p.name for p in plans if p.suggest == "categorical" and p.role == "feature"]
    report["problems"] = list(problems or [])
    if report["id_like"]:
        warnings.append("identifier-like columns kept out of the features: " + ", ".join(report["id_like"]))
    if report["empty"]:
        warnings.append("empty columns (no value at all) left out: " + ", ".join(report["empty"][:10]))


def count_missing(x: np.ndarray, features: list[Feature], columns: list[dict[str, Any]]) -> dict[str, int]:
    """Missing values per source column (empty cells, plus text a numeric override could not
    read), and each column's entry in the report given its feature and missing counts."""
    per_column: dict[str, int] = {}
    nan_counts = np.isnan(x).sum(0) if x.size else np.zeros(x.shape[1], dtype=int)
    missing: dict[str, int] = {}
    for j, f in enumerate(features):
        if f.column not in per_column and nan_counts[j]:
            missing[f.column] = int(nan_counts[j])
        per_column[f.column] = per_column.get(f.column, 0) + 1
    for entry in columns:
        entry["features"] = per_column.get(entry["name"], 0)
        if entry["name"] in missing:
            entry["missing"] = missing[entry["name"]]
    return missing


def shape_input(
    x: np.ndarray,
    y: np.ndarray,
    lines: np.ndarray,
    side: dict[str, np.ndarray],
    times: pd.Series | None,
    split: np.ndarray | None,
    features: list[Feature],
    cfg: DataConfig,
    target: str,
    report: dict[str, Any],
    warnings: list[str],
) -> tuple[Any, ...]:
    """The encoded rows as the model reads them: sliding windows (sequences), images (pixels
    scaled to 0-1 when they were 0-255), or a table; with the input spec and the features."""
    if cfg.window is not None:
        x, y, lines, side, split, more = make_windows(x, y, lines, side, times, cfg, split)
        warnings += more
        spec = InputSpec("sequence", (cfg.window.length, x.shape[2]))
    elif cfg.image_shape is not None:
        c, h, wd = cfg.image_shape
        if x.shape[1] != c * h * wd:
            raise DataError(
                f"data.image_shape {cfg.image_shape} needs {c * h * wd} pixel columns but the "
                f"file has {x.shape[1]} feature columns besides the target '{target}'; fix "
                f'image_shape or set extra columns to "ignore" in data.columns'
            )
        top = float(np.nanmax(np.abs(x))) if x.size and not np.isnan(x).all() else 0.0
        if 1.0 < top <= 255.0:
            x = x / 255.0
            report["pixel_scale"] = "divided by 255 (values were 0-255)"
        x = x.reshape(len(x), c, h, wd)
        spec = InputSpec("image", (c, h, wd))
        features = [Feature(f"channel {k}", f"channel {k}") for k in range(c)]
    else:
        spec = InputSpec("tabular", (x.shape[1],))
    return x, y, lines, side, split, spec, features


def describe_target(
    report: dict[str, Any],
    task: str,
    y: np.ndarray,
    classes: list[str],
    lines: np.ndarray,
    target: str,
    split: np.ndarray | None,
) -> None:
    """The target's view in the report (class counts, checked; or its spread) and the split's counts."""
    if task == "classification":
        check_classes(y, classes, lines, target)
        counts = np.bincount(y, minlength=len(classes))
        report["class_counts"] = {c: int(n) for c, n in zip(classes, counts, strict=True)}
    else:
        report["target_stats"] = {
            "mean": float(np.mean(y)),
            "std": float(np.std(y)),
            "min": float(np.min(y)),
            "max": float(np.max(y)),
        }
    if split is not None:
        kinds, counts = np.unique(split.astype(str), return_counts=True)
        report["split_counts"] = {str(k): int(n) for k, n in zip(kinds, counts, strict=True)}
