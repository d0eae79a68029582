"""Reading a user's CSV and turning its columns into numeric features: pure functions over a
pandas DataFrame, used by the ``csv`` dataset and by :func:`engine.data.csv_data.inspect_csv`.

Each column gets an inferred type (numeric, boolean, categorical, ordinal, datetime, id, empty),
which ``data.columns`` can override; :func:`encode_column` then produces its float features,
imputing missing values with whole-file statistics (median for numbers, most frequent otherwise)
and counting what it filled. Every problem raises :class:`DataError` naming the column, the file
line (line 1 is the header) and the fix.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from engine.data.config import ColumnSpec
from engine.errors import DataError

DELIMITERS = (",", ";", "\t", "|")
MAX_ONEHOT = 32  # categorical columns with more values are coded as ordinals unless overridden
MAX_CATEGORIES = 1000  # refuse to one-hot more than this
TRUE = frozenset({"true", "yes", "y", "t", "on", "1"})
FALSE = frozenset({"false", "no", "n", "f", "off", "0"})
NA_VALUES = ["?"]  # on top of pandas' defaults ("", "NA", "N/A", "null", "NaN", ...)
_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key|index|idx)$|^unnamed: ?\d+$", re.IGNORECASE)
_DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?"
                        r"(Z|[+-]\d{2}:?\d{2})?$|^\d{1,2}:\d{2}(:\d{2})?$")


def _delim_name(d: str) -> str:
    return "tab" if d == "\t" else f"'{d}'"


def line_of(label: Any) -> int:
    """File line of the data row with index label ``label`` (pandas' 0-based row number; rows
    dropped earlier keep their labels) when line 1 is the header."""
    return int(label) + 2


@dataclass
class CsvFile:
    """A parsed CSV file and how it was read."""

    frame: pd.DataFrame
    name: str
    delimiter: str
    encoding: str
    size_mb: float


def _sniff(head: str) -> str | None:
    """The delimiter that gives the same number (> 1) of fields on every sampled line."""
    lines = head.splitlines()[:50]
    if len(lines) > 1 and not head.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line may be cut
    best, best_fields = None, 1
    for d in DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=d) if row}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = d, fields
    return best


def _decode_error(raw: bytes, encoding: str, name: str) -> DataError:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        hint = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "latin-1 or cp1252"
        return DataError(
            f"{name}: line {line} is not valid {encoding} text (byte 0x{raw[exc.start]:02x}); "
            f"re-save the file as UTF-8 or set data.encoding (e.g. {hint})"
        )
    return DataError(f"{name}: cannot decode the file as {encoding}; set data.encoding")


def read_csv(source: str | Path | bytes, *, delimiter: str | None = None, encoding: str = "utf-8",
             max_file_mb: float = 200.0, name: str | None = None) -> CsvFile:
    """Parse a CSV file (a path, or the bytes of an upload) into a DataFrame.

    :raises DataError: too large, empty, header only, undecodable, ragged rows, wrong delimiter.
    """
    if isinstance(source, (bytes, bytearray)):
        raw: bytes | None = bytes(source)
        size = len(raw)
        name = name or "uploaded file"
    else:
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise DataError(f"CSV file not found: {path}; check data.path")
        size = path.stat().st_size
        raw = None
    size_mb = size / 1e6
    if size_mb > max_file_mb:
        raise DataError(f"{name} is {size_mb:.1f} MB, over the limit data.max_file_mb = {max_file_mb:g}; "
                        f"raise data.max_file_mb or use a smaller file")
    if raw is None:
        with open(path, "rb") as fh:
            head_bytes = fh.read(65536)
    else:
        head_bytes = raw[:65536]
    if not head_bytes.strip():
        raise DataError(f"{name} is empty; choose a CSV file with a header line and data rows")
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    head = head_bytes.decode(enc, errors="replace")
    sep = delimiter or _sniff(head) or ","
    try:
        frame = pd.read_csv(io.BytesIO(raw) if raw is not None else path, sep=sep, encoding=enc,
                            na_values=NA_VALUES, skipinitialspace=True, low_memory=False)
    except UnicodeDecodeError:
        if raw is None:
            raw = path.read_bytes()
        raise _decode_error(raw, enc, name) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} has no columns; choose a CSV file with a header line and data rows") \
            from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        where = (f"line {m.group(2)} has {m.group(3)} fields but the header has {m.group(1)}"
                 if m else str(exc).strip())
        raise DataError(f"{name}: {where} (delimiter {_delim_name(sep)}); fix the row's quoting or "
                        f"extra separators, or set data.delimiter") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[1] == 1:
        header = frame.columns[0]
        others = [d for d in DELIMITERS if d != sep and d in header]
        if others:
            raise DataError(
                f"{name}: reading with delimiter {_delim_name(sep)} gives one column '{header[:60]}', "
                f"whose name contains {_delim_name(others[0])}; set data.delimiter to "
                f"{others[0]!r} (or leave it unset to detect it)"
            )
        raise DataError(f"{name} has a single column '{header[:60]}'; a dataset needs a target and at "
                        f"least one feature column (separated by , ; tab or |)")
    if len(frame) == 0:
        raise DataError(f"{name} has a header but no data rows; add rows below the header line")
    return CsvFile(frame, name, sep, encoding, size_mb)


@dataclass
class ColumnPlan:
    """What one column is and how it becomes features (filled in by :func:`infer_column`)."""

    name: str
    type: str  # numeric | boolean | categorical | ordinal | datetime | id | empty | ignore
    inferred: str
    role: str = "feature"  # feature | target | group | time | ignored | id
    impute: str = "auto"
    missing: int = 0
    unique: int = 0
    examples: list[str] = field(default_factory=list)
    note: str = ""
    order: list[str] | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-able row of the schema table the Data page shows."""
        return {"name": self.name, "type": self.type, "inferred": self.inferred, "role": self.role,
                "missing": self.missing, "unique": self.unique, "examples": self.examples,
                "note": self.note}


def _first_bad(mask: pd.Series | np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0])


def _text(s: pd.Series) -> pd.Series:
    return s.astype(str).str.strip()


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
    return _parse_dates(_text(s[valid])).reindex(s.index)


def infer_column(name: str, s: pd.Series, spec: ColumnSpec | None) -> ColumnPlan:
    """Infer a column's type (or apply the override ``spec``) and check its values.

    :raises DataError: mixed numbers and text, infinite values, unparseable dates.
    """
    valid = s.notna()
    present = s[valid]
    plan = ColumnPlan(name, "empty", "empty", missing=int((~valid).sum()))
    if spec is not None:
        plan.impute, plan.order = spec.impute, spec.order
    if len(present):
        plan.unique = int(present.nunique())
        plan.examples = [str(v)[:40] for v in present.unique()[:3]]
    forced = spec.type if spec is not None and spec.type != "auto" else None
    if len(present) == 0:
        plan.inferred = "empty"
    elif ptypes.is_bool_dtype(s):
        plan.inferred = "boolean"
    elif ptypes.is_numeric_dtype(s):
        plan.inferred = _numeric_or_id(name, present)
    else:
        plan.inferred = _infer_text(name, s, present, forced)
    plan.type = forced or plan.inferred
    if plan.type == "ignore":
        plan.role = "ignored"
    elif plan.type == "id":
        plan.role = "id"
        plan.note = "identifier-like (unique per row): kept out of the features; override its type to use it"
    elif plan.type == "empty":
        raise DataError(f"column '{name}' is empty (every value is missing); delete it or set "
                        f'data.columns.{name} to "ignore"')
    if plan.type == "numeric" and ptypes.is_numeric_dtype(s):
        bad = np.isinf(s.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            i = _first_bad(bad)
            raise DataError(f"column '{name}' has an infinite value ({s.iloc[i]}) at line "
                            f"{line_of(s.index[i])}; replace it with a number or leave the cell empty to "
                            f"have it imputed")
    if plan.type == "categorical" and plan.unique > MAX_CATEGORIES:
        raise DataError(f"column '{name}' has {plan.unique} distinct values, too many to one-hot; set "
                        f'data.columns.{name} to "ordinal" or "ignore"')
    return plan


def _numeric_or_id(name: str, present: pd.Series) -> str:
    values = present.to_numpy()
    integral = ptypes.is_integer_dtype(present) or bool(np.all(np.mod(values[np.isfinite(values)], 1) == 0))
    if integral and len(present) >= 20 and present.is_unique:
        lo, hi = values.min(), values.max()
        if _ID_NAME.search(name) or hi - lo == len(values) - 1:
            return "id"
    return "numeric"


def _infer_text(name: str, s: pd.Series, present: pd.Series, forced: str | None) -> str:
    text = _text(present)
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
        i = _first_bad(bad)
        where, value = line_of(present.index[i]), present.iloc[i]
        raise DataError(
            f"column '{name}' mixes numbers and text (line {where}: '{value}'); fix the value, or set "
            f'data.columns.{name} to "numeric" (text becomes missing and is imputed) or "categorical"'
        )
    sample = text.iloc[:200]
    if forced in (None, "datetime") and sample.str.match(_DATE_LIKE).mean() >= 0.9:
        parsed = _parse_dates(text)
        fails = parsed.isna().to_numpy()
        if fails.any() and forced is None:
            i = _first_bad(fails)
            where, value = line_of(present.index[i]), present.iloc[i]
            raise DataError(
                f"column '{name}' holds dates but line {where} has '{value}'; fix the value, or set "
                f'data.columns.{name} to "datetime" (bad dates become missing) or "categorical"'
            )
        return "datetime"
    n_unique = len(uniq)
    if len(present) >= 20 and (n_unique == len(present) or
                               (_ID_NAME.search(name) and n_unique > 0.9 * len(present)) or
                               n_unique > max(50, 0.5 * len(present))):
        return "id"
    return "categorical" if n_unique <= MAX_ONEHOT else "ordinal"


def _fill_value(plan: ColumnPlan, values: pd.Series, numeric: bool) -> Any:
    method = plan.impute
    if method == "auto":
        method = "median" if numeric else "most_frequent"
    if method == "zero":
        return 0
    present = values.dropna()
    if len(present) == 0:
        return 0
    if method == "mean" and numeric:
        return float(present.mean())
    if method == "median" and numeric:
        return float(present.median())
    return present.mode().iloc[0]


def encode_column(plan: ColumnPlan, s: pd.Series) -> tuple[np.ndarray, list[str], int]:
    """Float features ``(N, k)`` for one column, their names, and how many values were imputed.

    :raises DataError: values that cannot be read as the column's (overridden) type.
    """
    name, kind = plan.name, plan.type
    if kind == "numeric":
        values = s if ptypes.is_numeric_dtype(s) else pd.to_numeric(_text(s), errors="coerce")
        values = values.astype(float)
        values = values.where(np.isfinite(values.fillna(0.0)))
        n_missing = int(values.isna().sum())
        filled = values.fillna(_fill_value(plan, values, True)).to_numpy(dtype=np.float64)
        return filled[:, None], [name], n_missing
    if kind == "boolean":
        if ptypes.is_bool_dtype(s):
            values = s.astype(float)
        else:
            lower = _text(s).str.lower().where(s.notna())
            bad = lower.notna() & ~lower.isin(TRUE | FALSE)
            if bad.any():
                i = _first_bad(bad)
                raise DataError(f"column '{name}' is boolean but line {line_of(s.index[i])} has "
                                f"'{s.iloc[i]}'; use true/false, yes/no or 1/0, or set "
                                f"data.columns.{name} to \"categorical\"")
            values = lower.isin(TRUE).astype(float).where(lower.notna())
        n_missing = int(values.isna().sum())
        filled = values.fillna(_fill_value(plan, values, False)).to_numpy(dtype=np.float64)
        return filled[:, None], [name], n_missing
    if kind in ("categorical", "ordinal"):
        text = _text(s).where(s.notna())
        n_missing = int(text.isna().sum())
        text = text.fillna(_fill_value(plan, text, False))
        if kind == "ordinal" and plan.order:
            order = [str(v) for v in plan.order]
            unknown = ~text.isin(order)
            if unknown.any():
                i = _first_bad(unknown)
                raise DataError(f"column '{name}' has '{text.iloc[i]}' at line {line_of(text.index[i])}, "
                                f"which is not in its order {order}; add it to data.columns.{name}.order")
            cats = pd.Categorical(text, categories=order)
        else:
            cats = pd.Categorical(text)
        codes = cats.codes.astype(np.int64)
        if kind == "ordinal":
            return codes.astype(np.float64)[:, None], [name], n_missing
        onehot = np.zeros((len(codes), len(cats.categories)), dtype=np.float64)
        onehot[np.arange(len(codes)), codes] = 1.0
        return onehot, [f"{name}={c}" for c in cats.categories], n_missing
    if kind == "datetime":
        stamps = parse_times(s)
        n_missing = int(stamps.isna().sum())
        parts = {"year": stamps.dt.year, "month": stamps.dt.month, "day": stamps.dt.day,
                 "weekday": stamps.dt.day_of_week, "hour": stamps.dt.hour}
        cols, names = [], []
        for part, values in parts.items():
            values = values.astype(float)
            if part == "year" and values.nunique() <= 1 or part == "hour" and values.fillna(0).eq(0).all():
                continue
            cols.append(values.fillna(values.median() if values.notna().any() else 0).to_numpy())
            names.append(f"{name}.{part}")
        if not cols:
            cols, names = [np.zeros(len(s))], [f"{name}.day"]
        return np.stack(cols, axis=1), names, n_missing
    return np.zeros((len(s), 0)), [], 0
