"""A user's own CSV file as a dataset (``data.dataset: "csv"``).

Pick the target column (``data.target``); the task is inferred (text, booleans and integer
targets with at most 20 values are classes; other numbers are regression) and ``data.task``
overrides it. Every other column is inferred as numeric, boolean, categorical (one-hot), ordinal,
datetime (expanded into calendar features) or identifier-like (flagged and kept out of the
features); ``data.columns`` overrides any of them. Missing feature values are imputed from
whole-file statistics and counted in :attr:`Dataset.report`; rows with a missing target are
dropped and counted. Three other shapes of the same file:

- ``data.image_shape``: the feature columns are pixels (``label, px0..px783`` -> ``[1, 28, 28]``).
- ``data.window``: rows sorted by a time column are cut into sliding windows (sequence input).
- a ``natural`` partition column is kept out of the features and exposed in
  :attr:`Dataset.columns`, one client per value.

:func:`inspect_csv` runs the same inference on an upload before any config exists, for the Data
page's schema table. Nothing is evaluated or unpickled: the file is only parsed as text.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pandas.api import types as ptypes
from numpy.lib.stride_tricks import sliding_window_view

from engine.data.base import DATASETS, Dataset, DatasetSource, as_tensor_x
from engine.data.config import DataConfig
from engine.data.csv_infer import (
    ColumnPlan, CsvFile, encode_column, infer_column, line_of, parse_times, read_csv,
)
from engine.errors import DataError
from engine.models.base import InputSpec

MAX_AUTO_CLASSES = 20
_TARGET_NAMES = ("target", "label", "labels", "y", "class", "outcome")


def resolve_path(path: str | Path, root: Path | None) -> Path:
    """The file ``path`` names: absolute as given; relative, tried against the working directory
    and then ``root`` (the data directory).

    :raises DataError: no such file.
    """
    given = Path(path).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given] + ([root / given] if root else [])
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise DataError(f"data.path '{path}' is not a file (looked at {tried}); "
                    f"check the path or upload the file")


def _missing_column(what: str, name: str, names: list[str]) -> DataError:
    same_case = [n for n in names if n.strip().lower() == name.strip().lower()]
    close = same_case or difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    listed = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
    return DataError(f"{what} '{name}' is not a column of the file; {hint}columns: {listed}")


def _infer_task(y: pd.Series) -> str:
    if ptypes.is_bool_dtype(y):
        return "classification"
    values = y if ptypes.is_numeric_dtype(y) else pd.to_numeric(y.astype(str).str.strip(), errors="coerce")
    if values.isna().any():
        return "classification"
    integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    return "classification" if integral and values.nunique() <= MAX_AUTO_CLASSES else "regression"


def _encode_target(y: pd.Series, task: str, target: str) -> tuple[np.ndarray, list[str]]:
    """Targets as class codes (classification) or floats (regression), and the class names."""
    if task == "regression":
        values = y if ptypes.is_numeric_dtype(y) and not ptypes.is_bool_dtype(y) else \
            pd.to_numeric(y.astype(str).str.strip(), errors="coerce")
        values = values.astype(float)
        bad = ~np.isfinite(values.to_numpy())
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"target '{target}' must be a number for regression but line "
                            f"{line_of(y.index[i])} has '{y.iloc[i]}'; fix the value or set data.task to "
                            f'"classification"')
        return values.to_numpy(dtype=np.float32), []
    if ptypes.is_numeric_dtype(y) and not ptypes.is_bool_dtype(y):
        values = y.to_numpy(dtype=float)
        integral = bool(np.all(np.mod(values, 1) == 0))
        uniq = np.unique(values)
        names = [str(int(v)) if integral else str(v) for v in uniq]
        return np.searchsorted(uniq, values).astype(np.int64), names
    text = y.astype(str).str.strip()
    cats = pd.Categorical(text)
    return cats.codes.astype(np.int64), [str(c) for c in cats.categories]


def _check_classes(codes: np.ndarray, classes: list[str], lines: np.ndarray, target: str) -> None:
    counts = np.bincount(codes, minlength=len(classes))
    if (counts > 0).sum() < 2:
        only = classes[int(codes[0])]
        raise DataError(f"target '{target}' has a single class ('{only}'); a classifier needs at least "
                        f"two; choose another target or set data.task to \"regression\"")
    if len(classes) > max(100, len(codes) // 2):
        raise DataError(f"target '{target}' has {len(classes)} classes for {len(codes)} samples: it looks "
                        f"like an identifier or a number; choose another target or set data.task to "
                        f"\"regression\"")
    single = np.flatnonzero(counts == 1)
    if len(single):
        c = int(single[0])
        line = int(lines[np.flatnonzero(codes == c)[0]])
        raise DataError(f"class '{classes[c]}' of target '{target}' has a single sample (line {line}); "
                        f"a class needs at least two samples to be split for training and testing: "
                        f"remove or relabel that row, or merge the class with another")


Side = dict[str, np.ndarray]


def _windows(x: np.ndarray, y: np.ndarray, lines: np.ndarray, side: Side, times: pd.Series,
             cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, Side, list[str]]:
    """Sliding windows ``(M, W, F)`` over rows sorted by (series, time), never crossing a series
    (``window.group_column``, else the natural column); targets ``horizon`` rows after the end."""
    w = cfg.window
    assert w is not None
    warnings = []
    key = times.to_numpy(dtype="datetime64[ns]").astype(np.int64) if ptypes.is_datetime64_any_dtype(times) \
        else times.to_numpy(dtype=float)
    series = w.group_column or cfg.natural_column()
    gcodes = pd.factorize(side[series])[0] if series else np.zeros(len(y), dtype=np.int64)
    order = np.lexsort((key, gcodes))
    x, y, lines, key, gcodes = x[order], y[order], lines[order], key[order], gcodes[order]
    side = {k: v[order] for k, v in side.items()}
    starts = np.flatnonzero(np.r_[True, gcodes[1:] != gcodes[:-1]])
    stops = np.r_[starts[1:], len(y)]
    if np.any((key[1:] == key[:-1]) & (gcodes[1:] == gcodes[:-1])):
        warnings.append(f"time column '{w.time_column}' repeats values within a series; "
                        f"windows follow file order there")
    ends = [np.arange(a + w.length - 1, b - w.horizon, w.stride) for a, b in zip(starts, stops, strict=True)]
    ends = np.concatenate(ends) if ends else np.arange(0)
    if len(ends) == 0:
        longest = int((stops - starts).max()) if len(starts) else 0
        raise DataError(f"no window fits: the longest series has {longest} rows but a window needs "
                        f"{w.length + w.horizon} (data.window.length + horizon); shorten the window")
    view = sliding_window_view(x, w.length, axis=0)  # (N - W + 1, F, W)
    xw = np.ascontiguousarray(view[ends - w.length + 1].transpose(0, 2, 1))
    target_rows = ends + w.horizon
    return xw, y[target_rows], lines[target_rows], {k: v[ends] for k, v in side.items()}, warnings


def table_to_dataset(table: CsvFile, cfg: DataConfig, *,
                     need_target: bool = True) -> tuple[Dataset | None, dict]:
    """Infer, check and encode a parsed CSV as configured.

    :returns: the dataset (``None`` when ``need_target`` is false and no target is set) and the
        JSON-able report (schema, imputed counts, flagged columns, warnings).
    :raises DataError: the first problem found, naming the column or line and the fix.
    """
    df = table.frame
    names = list(df.columns)
    n_rows = len(df)
    report: dict[str, Any] = {"source": table.name, "rows": n_rows, "size_mb": round(table.size_mb, 3),
                              "delimiter": table.delimiter, "encoding": table.encoding, "target": cfg.target}
    warnings: list[str] = []
    for name in cfg.columns:
        if name not in names:
            raise _missing_column("data.columns names", name, names)
    target = cfg.target
    if target is None and need_target:
        raise DataError(f"data.target is not set; choose the column to predict: {', '.join(names[:30])}")
    if target is not None and target not in names:
        raise _missing_column("target", target, names)
    group = cfg.natural_column()
    w = cfg.window
    group_cols = [c for c in dict.fromkeys([group, w.group_column if w else None]) if c is not None]
    special = {c: "group" for c in group_cols}
    if w is not None:
        special[w.time_column] = "time"
    for col, role in special.items():
        what = {"group": "partition/window column", "time": "data.window.time_column"}[role]
        if col not in names:
            raise _missing_column(what, col, names)
        if col == target:
            raise DataError(f"{what} '{col}' is also the target; choose a different column")
    keep = np.ones(n_rows, dtype=bool)
    dropped: dict[str, int] = {}
    for col in ([target] if target else []) + list(special):
        missing = df[col].isna().to_numpy()
        if missing.all():
            raise DataError(f"column '{col}' is empty (every value is missing); choose another column")
        if missing.any():
            dropped[f"missing {col}"] = int((missing & keep).sum())
            keep &= ~missing
    if dropped:
        df = df[keep]
        warnings.append("dropped rows: " + ", ".join(f"{n} with {k}" for k, n in dropped.items()))
    plans: list[ColumnPlan] = []
    times = None
    for name in names:
        if name == target:
            continue
        if special.get(name) == "group":
            plans.append(ColumnPlan(name, "group", "group", role="group", unique=int(df[name].nunique()),
                                    examples=[str(v) for v in df[name].unique()[:3]]))
            continue
        plan = infer_column(name, df[name], cfg.columns.get(name))
        if special.get(name) == "time":
            times = df[name] if ptypes.is_numeric_dtype(df[name]) else parse_times(df[name])
            bad = times.isna().to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"time column '{name}' has '{df[name].iloc[i]}' at line "
                                f"{line_of(df.index[i])}, which is neither a date nor a number; fix it")
            plan.role = "time"
            plan.type = "datetime" if ptypes.is_datetime64_any_dtype(times) else "numeric"
            plan.note = "sorts the windows"
            if plan.type == "datetime":
                plan.note += "; expanded into calendar features"
        plans.append(plan)
    if cfg.image_shape is not None:
        for plan in plans:
            if plan.role == "feature" and plan.type != "numeric":
                raise DataError(f"data.image_shape reads every feature column as a pixel, but column "
                                f"'{plan.name}' is {plan.type}; set data.columns.{plan.name} to "
                                f"\"ignore\" or \"numeric\"")
    report["columns"] = [p.summary() for p in plans]
    report["id_like"] = [p.name for p in plans if p.role == "id"]
    report["natural_candidates"] = [
        p.name for p in plans if p.type in ("categorical", "ordinal", "boolean", "group")
        and 2 <= p.unique <= min(64, max(2, len(df) // 5))]
    if report["id_like"]:
        warnings.append("identifier-like columns kept out of the features: " + ", ".join(report["id_like"]))
    if target is None:
        low = {n.lower(): n for n in names}
        report["target_suggestion"] = next((low[t] for t in _TARGET_NAMES if t in low), names[-1])
        report["warnings"] = warnings
        return None, report

    feature_plans = [p for p in plans if p.role == "feature" or (p.role == "time" and p.type == "datetime")]
    blocks, feature_names, imputed = [], [], {}
    for plan in feature_plans:
        block, fnames, n_missing = encode_column(plan, df[plan.name])
        blocks.append(block)
        feature_names += fnames
        if n_missing and plan.role == "feature":
            imputed[plan.name] = n_missing
    if not feature_names and not (w is not None and w.include_target):
        raise DataError("no feature columns are left after the target, identifiers and ignored columns; "
                        "override a column's type in data.columns")
    for entry in report["columns"]:
        entry["imputed"] = imputed.get(entry["name"], 0)
        entry["features"] = sum(1 for f in feature_names if f == entry["name"] or
                                f.startswith((entry["name"] + "=", entry["name"] + ".")))

    y_col = df[target]
    task_inferred = _infer_task(y_col)
    task = task_inferred if cfg.task == "auto" else cfg.task
    y, classes = _encode_target(y_col, task, target)
    lines = df.index.to_numpy() + 2
    x = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0))
    if cfg.window is not None and cfg.window.include_target:
        extra = y[:, None].astype(np.float64) if task == "regression" else np.eye(len(classes))[y]
        x = np.concatenate([x, extra], axis=1)
        feature_names += ([f"{target} (past)"] if task == "regression"
                          else [f"{target}={c} (past)" for c in classes])
    side = {c: df[c].astype(str).to_numpy() for c in group_cols}

    if cfg.window is not None:
        x, y, lines, side, more = _windows(x, y, lines, side, times, cfg)
        warnings += more
        spec = InputSpec("sequence", (cfg.window.length, x.shape[2]))
    elif cfg.image_shape is not None:
        c, h, wd = cfg.image_shape
        if x.shape[1] != c * h * wd:
            raise DataError(f"data.image_shape {cfg.image_shape} needs {c * h * wd} pixel columns but the "
                            f"file has {x.shape[1]} feature columns besides the target '{target}'; fix "
                            f"image_shape or set extra columns to \"ignore\" in data.columns")
        top = float(np.abs(x).max()) if x.size else 0.0
        if 1.0 < top <= 255.0:
            x = x / 255.0
            report["pixel_scale"] = "divided by 255 (values were 0-255)"
        x = x.reshape(len(x), c, h, wd)
        spec = InputSpec("image", (c, h, wd))
    else:
        spec = InputSpec("tabular", (x.shape[1],))
    if task == "classification":
        _check_classes(y, classes, lines, target)
        counts = np.bincount(y, minlength=len(classes))
        report["class_counts"] = {c: int(n) for c, n in zip(classes, counts, strict=True)}
    else:
        report["target_stats"] = {"mean": float(np.mean(y)), "std": float(np.std(y)),
                                  "min": float(np.min(y)), "max": float(np.max(y))}
    report.update({
        "task": task, "task_inferred": task_inferred, "classes": classes[:100], "samples": len(y),
        "input": str(spec), "n_features": len(feature_names), "feature_names": feature_names[:500],
        "imputed": imputed, "imputed_total": int(sum(imputed.values())), "dropped_rows": dropped,
        "warnings": warnings,
    })
    if imputed:
        warnings.append(f"imputed {sum(imputed.values())} missing values in {len(imputed)} columns "
                        f"(median for numbers, most frequent otherwise; whole-file statistics)")
    y_t = torch.as_tensor(y, dtype=torch.float32 if task == "regression" else torch.long)
    dataset = Dataset(Path(table.name).stem, as_tensor_x(x), y_t, spec, task=task, classes=classes,
                      columns=side, feature_names=feature_names, report=report)
    return dataset, report


def inspect_csv(source: str | Path | bytes | None = None, cfg: DataConfig | dict | None = None,
                root: Path | None = None) -> dict[str, Any]:
    """Schema report of a CSV (a path, or an upload's bytes) for the Data page, before a config exists.

    :param cfg: the ``data`` section so far (target, columns overrides, window, ...); without a
        target only the columns are inferred and ``target_suggestion`` names a likely one.
    :returns: ``{"rows", "columns": [{"name", "type", "inferred", "role", "missing", "imputed", ...}],
        "id_like", "natural_candidates", "warnings", "task", "classes", "input", ...}``.
    :raises DataError: the file cannot be used as configured (names the column/line and the fix).
    """
    if cfg is None:
        cfg = DataConfig(dataset="csv")
    elif isinstance(cfg, dict):
        cfg = DataConfig.model_validate({"dataset": "csv", **cfg})
    if source is None:
        if cfg.path is None:
            raise DataError("no file given: upload a CSV or set data.path")
        source = resolve_path(cfg.path, root)
    table = read_csv(source, delimiter=cfg.delimiter, encoding=cfg.encoding, max_file_mb=cfg.max_file_mb)
    return table_to_dataset(table, cfg, need_target=False)[1]


@DATASETS.register("csv")
class CsvData(DatasetSource):
    description = ("Your own CSV: pick the target column; column types, the task and missing values are "
                   "handled automatically and can be overridden. Tabular, images (data.image_shape) or "
                   "time-series windows (data.window).")
    kind = "tabular"
    task = "auto"
    source = "a user file (data.path)"

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        if not cfg.path:
            raise DataError("data.path is not set; upload a CSV or give the path of one")
        path = resolve_path(cfg.path, root)
        table = read_csv(path, delimiter=cfg.delimiter, encoding=cfg.encoding, max_file_mb=cfg.max_file_mb)
        dataset, _ = table_to_dataset(table, cfg)
        assert dataset is not None
        return dataset
