"""Turning a table's columns into numeric features: pure functions over a pandas DataFrame, used
by the ``csv`` dataset and by :func:`engine.data.tables.dataset.inspect_csv`.

Each column gets an inferred type (numeric, boolean, categorical, ordinal, datetime, id, empty),
which ``data.columns`` can override; :func:`encode_columns` then produces float features in which
a missing value stays missing (NaN): filling it is each client's preprocessing, with statistics
from the federation or the client (:mod:`engine.data.stats`), never from the whole file. What the
file decides is the schema: the columns, their types, a categorical column's categories (one
one-hot slot each) and an ordinal column's order.

Numeric columns are inferred and encoded together with array operations, so a file with 10,000
columns costs about what its cells cost. Every problem raises :class:`DataError` naming the column,
the file line (line 1 is the header) and the fix - or, when the caller collects ``problems``
(the Data page's schema table), is noted on the column, which is then left out of the features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from engine.data.config import ColumnSpec
from engine.errors import DataError

MAX_ONEHOT = 32  # categorical columns with more values are coded as ordinals unless overridden
MAX_CATEGORIES = 1000  # refuse to one-hot more than this
CODE_VALUES = (3, 10)  # integer columns with this many distinct values, from 0 or 1, may be category codes
TRUE = frozenset({"true", "yes", "y", "t", "on", "1"})
FALSE = frozenset({"false", "no", "n", "f", "off", "0"})
_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key|index|idx)$|^unnamed: ?\d+$", re.IGNORECASE)
_DATE_LIKE = re.compile(
    r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$|^\d{1,2}:\d{2}(:\d{2})?$"
)


def line_of(label: Any) -> int:
    """File line of the data row with index label ``label`` (pandas' 0-based row number; rows
    dropped earlier keep their labels) when line 1 is the header."""
    return int(label) + 2


@dataclass
class ColumnPlan:
    """What one column is and how it becomes features (filled in by :func:`infer_columns`)."""

    name: str
    type: str  # numeric | boolean | categorical | ordinal | datetime | id | empty | ignore
    inferred: str
    role: str = "feature"  # feature | target | group | time | split | ignored | id
    impute: str = "auto"
    missing: int = 0
    unique: int = 0
    examples: list[str] = field(default_factory=list)
    note: str = ""
    order: list[str] | None = None
    suggest: str | None = None  # a type the column may rather be (integer codes -> categorical)
    problem: str | None = None  # why the column cannot be used as it is (inspect mode)
    low: float | None = None  # numeric columns: smallest and largest present value
    high: float | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-able row of the schema table the Data page shows."""
        out = {
            "name": self.name,
            "type": self.type,
            "inferred": self.inferred,
            "role": self.role,
            "missing": self.missing,
            "unique": self.unique,
            "examples": self.examples,
            "note": self.note,
        }
        if self.suggest:
            out["suggest"] = self.suggest
        if self.problem:
            out["problem"] = self.problem
        return out


def first_bad(mask: pd.Series | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def as_text(s: pd.Series) -> pd.Series:
    return s.astype(str).str.strip()


def _show(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)[:40]


def _parse_dates(text: pd.Series) -> pd.Series:
    """Datetimes from text; unparseable values become NaT."""
    for fmt in ("ISO8601", None):
        try:
            if fmt is None:
                guess = pd.tseries.api.guess_datetime_format(text.iloc[0])
                fmt = guess or "mixed"
            parsed = pd.to_datetime(text, format=fmt, errors="coerce")
        except (ValueError, TypeError):
            continue
        if parsed.notna().all():
            return parsed
    return pd.to_datetime(text, format="mixed", errors="coerce")


def parse_times(s: pd.Series) -> pd.Series:
    """A column as datetimes (NaT where missing or unparseable)."""
    if ptypes.is_datetime64_any_dtype(s):
        return s
    if ptypes.is_numeric_dtype(s) and not ptypes.is_bool_dtype(s):  # Unix time, seconds or milliseconds
        unit = "ms" if s.abs().max() > 1e11 else "s"
        return pd.to_datetime(s, unit=unit, errors="coerce")
    valid = s.notna()
    if not valid.any():
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    return _parse_dates(as_text(s[valid])).reindex(s.index)


def is_number_column(s: pd.Series) -> bool:
    """Numbers (not booleans, not dates): inferred and encoded as one array with the others."""
    return ptypes.is_numeric_dtype(s) and not ptypes.is_bool_dtype(s)


def number_matrix(df: pd.DataFrame, names: list[str], dtypes: pd.Series | None = None) -> np.ndarray:
    """``(rows, len(names))`` float64 values of number columns, NaN where missing."""
    if not names:
        return np.zeros((len(df), 0))
    dtypes = df.dtypes if dtypes is None else dtypes
    frame = df[names]
    if all(dtypes[n] == np.float64 or dtypes[n] == np.int64 for n in names):
        return frame.to_numpy(dtype=np.float64)  # the common case, without per-cell NA handling
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)


class Numbers:
    """The number columns of a frame as one float64 matrix, built once for inference and encoding."""

    def __init__(self, df: pd.DataFrame, names: list[str] | None = None) -> None:
        names = list(df.columns) if names is None else names
        dtypes = df.dtypes
        self.names = [n for n in names if _number_dtype(dtypes[n])]
        self.at = {n: j for j, n in enumerate(self.names)}
        self.matrix = number_matrix(df, self.names, dtypes)


def _number_dtype(dt: Any) -> bool:
    return ptypes.is_numeric_dtype(dt) and not ptypes.is_bool_dtype(dt)


def apply_missing_codes(
    df: pd.DataFrame, specs: dict[str, ColumnSpec]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Cells equal to a column's ``missing_values`` become missing; returns the frame and how many
    cells each column lost."""
    changed: dict[str, int] = {}
    for name, spec in specs.items():
        codes = getattr(spec, "missing_values", None)
        if not codes or name not in df.columns:
            continue
        s = df[name]
        if is_number_column(s):
            wanted = pd.to_numeric(
                pd.Series([str(c).strip().replace(",", ".") for c in codes]), errors="coerce"
            )
            hit = s.isin(wanted.dropna().tolist())
        else:
            hit = as_text(s).isin([str(c).strip() for c in codes]) & s.notna()
        if hit.any():
            df = df.copy() if not changed else df
            df[name] = s.mask(hit)
            changed[name] = int(hit.sum())
    return df, changed


def infer_columns(
    df: pd.DataFrame,
    names: list[str],
    specs: dict[str, ColumnSpec],
    problems: list[str] | None = None,
    numbers: Numbers | None = None,
) -> dict[str, ColumnPlan]:
    """Plans for ``names`` (number columns together, the others one by one).

    :param problems: when given, a column that cannot be used as it is gets ``problem`` set and
        role ``ignored`` and its message is appended here, instead of raising.
    :param numbers: the frame's number columns, if already gathered.
    :raises DataError: mixed numbers and text, infinite values, unparseable dates, too many categories.
    """
    numbers = numbers or Numbers(df, names)
    wanted = set(names)
    plans = _infer_numbers(df, [n for n in numbers.names if n in wanted], specs, numbers)
    for name in names:
        try:
            if name not in plans:
                plans[name] = infer_column(name, df[name], specs.get(name))
            _check(plans[name], df, numbers)
        except DataError as exc:
            if problems is None:
                raise
            plan = plans.get(name) or ColumnPlan(
                name,
                "ignore",
                "mixed",
                missing=int(df[name].isna().sum()),
                unique=int(df[name].nunique()),
                examples=[_show(v) for v in df[name].dropna().unique()[:3]],
            )
            plan.problem, plan.role = str(exc), "ignored"
            plans[name] = plan
            problems.append(str(exc))
    return {n: plans[n] for n in names}


def _infer_numbers(
    df: pd.DataFrame, names: list[str], specs: dict[str, ColumnSpec], numbers: Numbers
) -> dict[str, ColumnPlan]:
    if not names:
        return {}
    cols = [numbers.at[n] for n in names]
    m = numbers.matrix if len(cols) == numbers.matrix.shape[1] else numbers.matrix[:, cols]
    n = len(m)
    nan = np.isnan(m)
    missing = nan.sum(0)
    present = n - missing
    ordered = np.sort(np.ascontiguousarray(m.T), axis=1)  # per column, NaN last
    changes = (ordered[:, 1:] != ordered[:, :-1]) & ~np.isnan(ordered[:, 1:])
    unique = np.where(present > 0, 1 + changes.sum(1), 0)
    with np.errstate(invalid="ignore"):
        integral = np.all(np.isnan(ordered) | (ordered == np.floor(ordered)), axis=1)  # inf counts as whole
    low = ordered[:, 0] if n else np.full(m.shape[1], np.nan)
    high = ordered[np.arange(m.shape[1]), np.maximum(present - 1, 0)] if n else low
    heads = m[:64].T.tolist()
    plans = {}
    for j, name in enumerate(names):
        spec = specs.get(name)
        forced = spec.type if spec is not None and spec.type != "auto" else None
        plan = ColumnPlan(name, "empty", "empty", missing=int(missing[j]), unique=int(unique[j]))
        if spec is not None:
            plan.impute, plan.order = spec.impute, spec.order
        if present[j] == 0:
            plans[name] = _finish(plan, forced)
            continue
        seen: list[float] = []
        for v in heads[j]:
            if v == v and v not in seen:  # not NaN, not yet listed
                seen.append(v)
                if len(seen) == 3:
                    break
        plan.examples = [_show(v) for v in seen]
        plan.low, plan.high = float(low[j]), float(high[j])
        plan.inferred = "numeric"
        if (
            integral[j]
            and present[j] >= 20
            and unique[j] == present[j]
            and np.isfinite(low[j])
            and (_ID_NAME.search(name) or high[j] - low[j] == present[j] - 1)
        ):
            plan.inferred = "id"
        elif (
            integral[j]
            and CODE_VALUES[0] <= unique[j] <= CODE_VALUES[1]
            and forced is None
            and present[j] >= 4 * unique[j]
            and 0 <= low[j] <= 1
            and high[j] <= 20
        ):  # codes 0/1..k
            plan.suggest = "categorical"
            plan.note = (
                f"{unique[j]} integer values ({_show(low[j])} to {_show(high[j])}): if they are "
                f"category codes (a type code), set the type to categorical"
            )
        plans[name] = _finish(plan, forced)
    return plans


def _finish(plan: ColumnPlan, forced: str | None) -> ColumnPlan:
    """Apply the override and the role that follows from the type."""
    plan.type = "empty" if plan.inferred == "empty" else forced or plan.inferred
    if plan.type == "ignore":
        plan.role = "ignored"
    elif plan.type == "id":
        plan.role = "id"
        plan.note = "identifier-like (unique per row): kept out of the features; override its type to use it"
    elif plan.type == "empty":
        plan.role = "ignored"
        plan.note = "empty (every value is missing): not used"
    if plan.type != "numeric":
        plan.suggest = None
    return plan


def _check(plan: ColumnPlan, df: pd.DataFrame, numbers: Numbers) -> None:
    """Problems of a planned column that make it unusable as typed."""
    if (
        plan.type == "numeric"
        and plan.role == "feature"
        and plan.name in numbers.at
        and (plan.low == -np.inf or plan.high == np.inf)
    ):
        s = df[plan.name]
        i = first_bad(np.isinf(numbers.matrix[:, numbers.at[plan.name]]))
        raise DataError(
            f"column '{plan.name}' has an infinite value ({s.iloc[i]}) at line "
            f"{line_of(s.index[i])}; replace it with a number or leave the cell empty (it "
            f"is then imputed)"
        )
    if plan.type == "categorical" and plan.unique > MAX_CATEGORIES:
        raise DataError(
            f"column '{plan.name}' has {plan.unique} distinct values, too many to one-hot; set "
            f'column \'{plan.name}\' to "ordinal" or "ignore" in data.columns'
        )


def infer_column(name: str, s: pd.Series, spec: ColumnSpec | None) -> ColumnPlan:
    """Infer one column's type (or apply the override ``spec``).

    :raises DataError: mixed numbers and text, unparseable dates.
    """
    if is_number_column(s):
        frame = s.to_frame(name)
        return _infer_numbers(frame, [name], {name: spec} if spec is not None else {}, Numbers(frame))[name]
    valid = s.notna()
    present = s[valid]
    plan = ColumnPlan(name, "empty", "empty", missing=int((~valid).sum()))
    if spec is not None:
        plan.impute, plan.order = spec.impute, spec.order
    if len(present):
        plan.unique = int(present.nunique())
        plan.examples = [_show(v) for v in present.unique()[:3]]
    forced = spec.type if spec is not None and spec.type != "auto" else None
    if len(present) == 0:
        plan.inferred = "empty"
    elif ptypes.is_bool_dtype(s):
        plan.inferred = "boolean"
    elif ptypes.is_datetime64_any_dtype(s):
        plan.inferred = "datetime"
    else:
        plan.inferred = _infer_text(name, s, present, forced)
    return _finish(plan, forced)


def _infer_text(name: str, s: pd.Series, present: pd.Series, forced: str | None) -> str:
    text = as_text(present)
    lower = text.str.lower()
    uniq = lower.unique()
    if len(uniq) <= 2 and set(uniq) <= TRUE | FALSE and forced in (None, "boolean"):
        return "boolean"
    distinct = pd.Series(text.unique())
    bad_values = distinct[pd.to_numeric(distinct, errors="coerce").isna()]
    if len(bad_values) == 0:
        return "numeric"
    bad = text.isin(bad_values).to_numpy()
    if forced is None and bad.mean() <= 0.5:
        i = first_bad(bad)
        where, value = line_of(present.index[i]), present.iloc[i]
        raise DataError(
            f"column '{name}' mixes numbers and text (line {where}: '{value}'); fix the value, or set column "
            f'\'{name}\' to "numeric" (text becomes missing and is imputed) or "categorical" in data.columns'
        )
    sample = text.iloc[:200]
    if forced in (None, "datetime") and sample.str.match(_DATE_LIKE).mean() >= 0.9:
        parsed = _parse_dates(text)
        fails = parsed.isna().to_numpy()
        if fails.any() and forced is None:
            i = first_bad(fails)
            where, value = line_of(present.index[i]), present.iloc[i]
            raise DataError(
                f"column '{name}' holds dates but line {where} has '{value}'; fix the value, or set column "
                f'\'{name}\' to "datetime" (bad dates become missing) or "categorical" in data.columns'
            )
        return "datetime"
    n_unique = len(uniq)
    if len(present) >= 20 and (
        n_unique == len(present)
        or (_ID_NAME.search(name) and n_unique > 0.9 * len(present))
        or n_unique > max(50, 0.5 * len(present))
    ):
        return "id"
    return "categorical" if n_unique <= MAX_ONEHOT else "ordinal"
