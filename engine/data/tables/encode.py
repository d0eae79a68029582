"""Encoding a table's columns as its plans say (:mod:`engine.data.tables.infer` makes the plans):
numbers as they are, categories one-hot or as ordinal codes, booleans as 0/1, dates as calendar
features; missing values stay NaN for each client's preprocessing to fill."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from engine.data.stats import Feature
from engine.data.tables.infer import (
    FALSE,
    TRUE,
    ColumnPlan,
    Numbers,
    as_text,
    first_bad,
    is_number_column,
    line_of,
    parse_times,
)
from engine.errors import DataError


def _impute_of(plan: ColumnPlan, numeric: bool) -> str:
    method = plan.impute
    if method == "auto":
        return "median" if numeric else "most_frequent"
    if method in ("mean", "median") and not numeric:
        return "most_frequent"
    return method


def encode_columns(
    plans: list[ColumnPlan], df: pd.DataFrame, numbers: Numbers | None = None
) -> tuple[np.ndarray, list[Feature]]:
    """Float features ``(N, F)`` of the planned feature columns (missing values NaN) and their
    schema, in column order.

    :param numbers: the frame's number columns, if already gathered (rows must match ``df``).
    :raises DataError: values that cannot be read as the column's (overridden) type.
    """
    numbers = numbers or Numbers(df, [p.name for p in plans])
    x = np.empty((len(df), 0))
    blocks: list[np.ndarray] = []
    features: list[Feature] = []
    run: list[int] = []  # consecutive number columns, taken from the matrix at once

    def flush() -> None:
        if run:
            block = numbers.matrix[:, run]
            blocks.append(np.where(np.isfinite(block), block, np.nan))
            run.clear()

    for plan in plans:
        if plan.type == "numeric" and plan.name in numbers.at:
            run.append(numbers.at[plan.name])
            features.append(Feature(plan.name, plan.name, "numeric", _impute_of(plan, True)))  # type: ignore[arg-type]
            continue
        flush()
        block, feats = encode_column(plan, df[plan.name])
        blocks.append(block)
        features += feats
    flush()
    if blocks:
        x = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
    return x, features


def encode_column(plan: ColumnPlan, s: pd.Series) -> tuple[np.ndarray, list[Feature]]:
    """Float features ``(N, k)`` of one column (missing values NaN) and their schema.

    :raises DataError: values that cannot be read as the column's (overridden) type.
    """
    name, kind = plan.name, plan.type
    if kind == "numeric":
        values = s if is_number_column(s) else pd.to_numeric(as_text(s).where(s.notna()), errors="coerce")
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
        values = np.where(np.isfinite(values), values, np.nan)
        return values[:, None], [Feature(name, name, "numeric", _impute_of(plan, True))]  # type: ignore[arg-type]
    if kind == "boolean":
        if ptypes.is_bool_dtype(s):
            values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            lower = as_text(s).str.lower().where(s.notna())
            bad = lower.notna() & ~lower.isin(TRUE | FALSE)
            if bad.any():
                i = first_bad(bad)
                raise DataError(
                    f"column '{name}' is boolean but line {line_of(s.index[i])} has "
                    f"'{s.iloc[i]}'; use true/false, yes/no or 1/0, or set column '{name}' to "
                    f'"categorical" in data.columns'
                )
            values = lower.isin(TRUE).astype(float).where(lower.notna()).to_numpy(dtype=np.float64)
        return values[:, None], [Feature(name, name, "binary", _impute_of(plan, False))]  # type: ignore[arg-type]
    if kind in ("categorical", "ordinal"):
        text = as_text(s).where(s.notna())
        if kind == "ordinal" and plan.order:
            order = [str(v) for v in plan.order]
            unknown = text.notna() & ~text.isin(order)
            if unknown.any():
                i = first_bad(unknown)
                raise DataError(
                    f"column '{name}' has '{text.iloc[i]}' at line {line_of(text.index[i])}, "
                    f"which is not in its order {order}; add it to the order of column '{name}' "
                    f"in data.columns"
                )
            cats = pd.Categorical(text, categories=order)
        else:
            cats = pd.Categorical(text)
        codes = cats.codes.astype(np.int64)
        missing = codes < 0
        impute = _impute_of(plan, False)
        if kind == "ordinal":
            values = np.where(missing, np.nan, codes.astype(np.float64))
            return values[:, None], [
                Feature(
                    name,
                    name,
                    "code",
                    impute,  # type: ignore[arg-type]
                    tuple(str(c) for c in cats.categories),
                )
            ]
        onehot = np.zeros((len(codes), len(cats.categories)), dtype=np.float64)
        onehot[np.flatnonzero(~missing), codes[~missing]] = 1.0
        onehot[missing] = np.nan
        return onehot, [Feature(f"{name}={c}", name, "onehot", impute) for c in cats.categories]  # type: ignore[arg-type]
    if kind == "datetime":
        stamps = parse_times(s)
        parts = date_parts(stamps)
        cols, feats = [], []
        for part, values in parts.items():
            values = values.astype(float)
            if part == "year" and values.nunique() <= 1 or part == "hour" and values.fillna(0).eq(0).all():
                continue
            cols.append(values.to_numpy(dtype=np.float64))
            feats.append(Feature(f"{name}.{part}", name, "numeric", _impute_of(plan, True)))  # type: ignore[arg-type]
        if not cols:
            cols = [stamps.dt.day.astype(float).to_numpy(dtype=np.float64)]
            feats = [Feature(f"{name}.day", name, "numeric", _impute_of(plan, True))]  # type: ignore[arg-type]
        return np.stack(cols, axis=1), feats
    return np.zeros((len(s), 0)), []


def date_parts(stamps: pd.Series) -> dict[str, pd.Series]:
    """The numeric parts a date column is encoded as (a part constant over the training rows is
    dropped there; a saved model's schema lists the parts it reads)."""
    return {
        "year": stamps.dt.year,
        "month": stamps.dt.month,
        "day": stamps.dt.day,
        "weekday": stamps.dt.day_of_week,
        "hour": stamps.dt.hour,
    }
