"""The target, the split column and time windows of a table: the task inferred from the target
and the target encoded, a file's own train/test/validation column read, and rows turned into
sliding windows for sequence models."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from pandas.api import types as ptypes

from engine.data.config import DataConfig
from engine.data.tables.infer import ColumnPlan, line_of
from engine.errors import DataError

MAX_AUTO_CLASSES = 20
"""A whole-number target with at most this many values is read as classes (``task: auto``)."""

SPLIT_VALUES = {
    "train": "train",
    "training": "train",
    "test": "test",
    "testing": "test",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
}
SPLIT_NAMES = ("split", "subset", "partition", "fold", "set", "role", "usage")


def infer_task(y: pd.Series) -> str:
    if ptypes.is_bool_dtype(y):
        return "classification"
    values = y if ptypes.is_numeric_dtype(y) else pd.to_numeric(y.astype(str).str.strip(), errors="coerce")
    if values.isna().any():
        return "classification"
    integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))
    return "classification" if integral and values.nunique() <= MAX_AUTO_CLASSES else "regression"


def encode_target(y: pd.Series, task: str, target: str) -> tuple[np.ndarray, list[str]]:
    """Targets as class codes (classification) or floats (regression), and the class names."""
    if task == "regression":
        values = (
            y
            if ptypes.is_numeric_dtype(y) and not ptypes.is_bool_dtype(y)
            else pd.to_numeric(y.astype(str).str.strip(), errors="coerce")
        )
        values = values.astype(float)
        bad = ~np.isfinite(values.to_numpy())
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"target '{target}' must be a number for regression but line "
                f"{line_of(y.index[i])} has '{y.iloc[i]}'; fix the value or set data.task to "
                f'"classification"'
            )
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


def check_classes(codes: np.ndarray, classes: list[str], lines: np.ndarray, target: str) -> None:
    counts = np.bincount(codes, minlength=len(classes))
    if (counts > 0).sum() < 2:
        only = classes[int(codes[0])]
        raise DataError(
            f"target '{target}' has a single class ('{only}'); a classifier needs at least "
            f'two; choose another data.target or set data.task to "regression"'
        )
    if len(classes) > max(100, len(codes) // 2):
        raise DataError(
            f"target '{target}' has {len(classes)} classes for {len(codes)} samples: it looks "
            f"like an identifier or a number; choose another data.target or set data.task to "
            f'"regression"'
        )
    single = np.flatnonzero(counts == 1)
    if len(single):
        c = int(single[0])
        line = int(lines[np.flatnonzero(codes == c)[0]])
        raise DataError(
            f"class '{classes[c]}' of target '{target}' has a single sample (line {line}); "
            f"a class needs at least two samples to be split for training and testing: "
            f"remove or relabel that row, or merge the class with another"
        )


Side = dict[str, np.ndarray]


def make_windows(
    x: np.ndarray,
    y: np.ndarray,
    lines: np.ndarray,
    side: Side,
    times: pd.Series,
    cfg: DataConfig,
    split: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Side, np.ndarray | None, list[str]]:
    """Sliding windows ``(M, W, F)`` over rows sorted by (series, time), never crossing a series
    (``window.group_column``, else the natural column); targets ``horizon`` rows after the end. A
    window belongs to the train/test/validation split of its target row."""
    w = cfg.window
    assert w is not None
    warnings = []
    key = (
        times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        if ptypes.is_datetime64_any_dtype(times)
        else times.to_numpy(dtype=float)
    )
    series = w.group_column or cfg.natural_column()
    gcodes = pd.factorize(side[series])[0] if series else np.zeros(len(y), dtype=np.int64)
    order = np.lexsort((key, gcodes))
    x, y, lines, key, gcodes = x[order], y[order], lines[order], key[order], gcodes[order]
    side = {k: v[order] for k, v in side.items()}
    split = split[order] if split is not None else None
    starts = np.flatnonzero(np.r_[True, gcodes[1:] != gcodes[:-1]])
    stops = np.r_[starts[1:], len(y)]
    if np.any((key[1:] == key[:-1]) & (gcodes[1:] == gcodes[:-1])):
        warnings.append(
            f"time column '{w.time_column}' repeats values within a series; windows follow file order there"
        )
    ends = [np.arange(a + w.length - 1, b - w.horizon, w.stride) for a, b in zip(starts, stops, strict=True)]
    ends = np.concatenate(ends) if ends else np.arange(0)
    if len(ends) == 0:
        longest = int((stops - starts).max()) if len(starts) else 0
        raise DataError(
            f"no window fits: the longest series has {longest} rows but a window needs "
            f"{w.length + w.horizon} (data.window.length + horizon); shorten the window"
        )
    view = sliding_window_view(x, w.length, axis=0)  # (N - W + 1, F, W)
    xw = np.ascontiguousarray(view[ends - w.length + 1].transpose(0, 2, 1))
    target_rows = ends + w.horizon
    return (
        xw,
        y[target_rows],
        lines[target_rows],
        {k: v[ends] for k, v in side.items()},
        split[target_rows] if split is not None else None,
        warnings,
    )


def split_values(s: pd.Series) -> np.ndarray | None:
    """A column's values as ``train``/``test``/``validation`` (case and synonyms ignored), or
    ``None`` when some present value is none of them."""
    text = s.astype(str).str.strip().str.lower().where(s.notna())
    mapped = text.map(SPLIT_VALUES)
    if (text.notna() & mapped.isna()).any():
        return None
    return mapped.to_numpy(dtype=object)


def split_candidates(df: pd.DataFrame, plans: dict[str, ColumnPlan]) -> list[str]:
    """Columns whose every value is train/test/validation with both train and test present (the
    likely name first)."""
    found = []
    for name, plan in plans.items():
        kind = plan.inferred if plan.type == "ignore" else plan.type
        if kind not in ("categorical", "boolean", "ordinal") or not 2 <= plan.unique <= 6:
            continue
        values = split_values(df[name])
        if values is not None and {"train", "test"} <= set(values[pd.notna(values)]):
            found.append(name)
    return sorted(found, key=lambda n: (not any(k in n.lower() for k in SPLIT_NAMES), n))


def read_split(df: pd.DataFrame, column: str) -> np.ndarray:
    values = split_values(df[column])
    if values is None:
        text = df[column].astype(str).str.strip().str.lower()
        bad = df[column].notna() & ~text.isin(list(SPLIT_VALUES))
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"split column '{column}' has '{df[column].iloc[i]}' at line {line_of(df.index[i])}; "
            f"its values must be train, test or validation; fix the value or choose another "
            f"data.split_column"
        )
    if "train" not in set(values):
        raise DataError(f"split column '{column}' marks no row as train; the clients need training rows")
    return values
