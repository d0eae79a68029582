"""Turning a user's new table or images into a kept model's input, as its schema
(:mod:`engine.artifacts.schema`) says: the columns checked against the schema, rows encoded as the
training rows were (or cut into windows), the target read back when the file has it, and image
files resized to the model's input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from engine.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_IMAGES = 10_000


@dataclass
class Encoded:
    """A new file as model input: ``x`` (raw features, before the client's preprocessing), the
    target when the file has it (``None`` otherwise; rows whose target is missing have NaN/-1),
    the file's own rows (to put predictions beside) and what was noticed on the way."""

    x: Tensor
    y: Tensor | None
    rows: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def mismatch(schema: dict[str, Any], columns: list[str]) -> None:
    """Refuse a table whose columns are not the training schema's, naming the missing and the
    unknown ones.

    :raises DataError: missing feature columns, or columns the training file did not have.
    """
    need = list(schema.get("columns", []))
    need = [c["name"] if isinstance(c, dict) else c for c in need]
    need += [c for c in schema.get("required", []) if c not in need]
    have = set(columns)
    missing = [c for c in need if c not in have]
    allowed = (
        set(need)
        | set(schema.get("known_columns", []))
        | ({schema["target"]} if schema.get("target") else set())
    )
    extra = [c for c in columns if c not in allowed]
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"missing column{'s' if len(missing) > 1 else ''} {_names(missing)}")
    if extra:
        parts.append(f"column{'s' if len(extra) > 1 else ''} the model was not trained with: {_names(extra)}")
    fix = "add the missing columns with the training file's names" if missing else ""
    if extra:
        fix += ("; " if fix else "") + "remove or rename the other columns"
    raise DataError(f"the file does not have the training schema: {'; '.join(parts)}; {fix}")


def _names(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:12])
    return shown + (f" and {len(names) - 12} more" if len(names) > 12 else "")


def encode_table(
    schema: dict[str, Any],
    df: pd.DataFrame,
    classes: list[str],
    task: str,
    target_scale: tuple[float, float] = (0.0, 1.0),
) -> Encoded:
    """Encode a parsed table with the training schema.

    :param classes: the label encoding (class names in code order); ``task`` says whether the
        target is a class or a number, ``target_scale`` the (mean, std) regression targets were
        standardised with.
    :raises DataError: a schema mismatch, a value that cannot be read as its column's type.
    """
    form = schema.get("form")
    if schema.get("readable") is False:
        raise DataError(
            f"this model cannot predict from a table of new rows: {schema.get('why', 'not supported')}"
        )
    df = df.reset_index(drop=True)
    mismatch(schema, [str(c) for c in df.columns])
    warnings: list[str] = []
    if form == "window":
        return _encode_windows(schema, df, classes, task, target_scale, warnings)
    if form == "table":
        x = _encode_rows(schema, df, warnings)
    else:
        names = [c["name"] if isinstance(c, dict) else c for c in schema["columns"]]
        frame = df[names].apply(pd.to_numeric, errors="coerce")
        bad = frame.isna() & df[names].notna()
        if bad.to_numpy().any():
            col = names[int(np.flatnonzero(bad.to_numpy().any(0))[0])]
            row = int(np.flatnonzero(bad[col].to_numpy())[0])
            raise DataError(
                f"column '{col}' must hold numbers but row {row + 1} has '{df[col].iloc[row]}'; fix it"
            )
        x = frame.to_numpy(dtype=np.float64)
        if form in ("pixels", "image"):
            shape = schema.get("image_shape") or schema["input"]["shape"]
            divide = float(schema.get("divide", 1.0))
            if form == "image" and np.nanmax(np.abs(x), initial=0.0) > 1.0:
                divide = 255.0
                warnings.append("pixel values above 1 were read as 0-255 and divided by 255")
            x = (x / divide).reshape(len(x), *shape)
    y = _target(schema, df, classes, task, target_scale, warnings)
    return Encoded(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32), y, df, warnings)


def _encode_rows(
    schema: dict[str, Any], df: pd.DataFrame, warnings: list[str], check: bool = True
) -> np.ndarray:
    from engine.data.config import ColumnSpec
    from engine.data.tables.encode import date_parts, encode_column
    from engine.data.tables.infer import ColumnPlan, apply_missing_codes, parse_times

    codes = {
        name: ColumnSpec(missing_values=values) for name, values in schema.get("missing_values", {}).items()
    }
    df, _ = apply_missing_codes(df, codes)
    blocks = []
    for col in schema["columns"]:
        name, kind = col["name"], col["type"]
        s = df[name]
        if kind in ("numeric", "boolean"):
            block, _ = encode_column(ColumnPlan(name, kind, kind), s)
        elif kind == "datetime":
            stamps = parse_times(s)
            unread = stamps.isna() & s.notna()
            if unread.any():
                warnings.append(
                    f"column '{name}': {int(unread.sum())} value(s) are not dates and were treated as missing"
                )
            parts = date_parts(stamps)
            block = np.stack(
                [parts[p].astype(float).to_numpy(dtype=np.float64) for p in col["parts"]], axis=1
            )
        else:
            levels = [str(v) for v in col["levels"]]
            text = s.astype(str).str.strip().where(s.notna())
            unknown = text.notna() & ~text.isin(levels)
            if unknown.any():
                seen = ", ".join(f"'{v}'" for v in text[unknown].unique()[:5])
                warnings.append(
                    f"column '{name}': {int(unknown.sum())} value(s) the model never saw ({seen}) were "
                    f"treated as missing"
                )
            codes_ = pd.Categorical(text.where(~unknown), categories=levels).codes.astype(np.int64)
            missing = codes_ < 0
            if kind == "ordinal":
                block = np.where(missing, np.nan, codes_.astype(np.float64))[:, None]
            else:
                block = np.zeros((len(codes_), len(levels)), dtype=np.float64)
                block[np.flatnonzero(~missing), codes_[~missing]] = 1.0
                block[missing] = np.nan
        blocks.append(block)
    x = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(df), 0))
    if check and x.shape[1] != len(schema.get("features", [])) and schema.get("features"):
        raise DataError(
            f"encoding produced {x.shape[1]} features but the model reads {len(schema['features'])}; "
            f"the saved schema does not match this model"
        )
    return np.where(np.isfinite(x), x, np.nan)


def _encode_windows(
    schema: dict[str, Any],
    df: pd.DataFrame,
    classes: list[str],
    task: str,
    target_scale: tuple[float, float],
    warnings: list[str],
) -> Encoded:
    """Cut a table of rows into the model's time-series windows, as the training rows were cut
    (:func:`engine.data.tables.dataset` ``_windows``: sorted by series and time, never crossing a series;
    a window's target is ``horizon`` rows after its end). One prediction per window; the rows shown
    are the target rows (their time and series)."""
    from engine.data.config import DataConfig
    from engine.data.tables.infer import parse_times
    from engine.data.tables.target import make_windows

    cfg = DataConfig.model_validate({"dataset": "csv", **schema["data"]})
    w = cfg.window
    assert w is not None
    x = _encode_rows(schema, df, warnings, check=False)
    target = schema.get("target")
    has_target = bool(target) and target in df.columns and bool(df[target].notna().all())
    if schema.get("include_target") and not has_target:
        raise DataError(
            f"this model reads the past values of '{target}' in each window: give that column, "
            f"filled for every row"
        )
    y_raw = np.zeros(len(df))
    if has_target:
        if task == "regression":
            y_raw = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=np.float64)
        else:
            y_raw = pd.Categorical(df[target].map(_class_text), categories=classes).codes.astype(np.int64)
            if (y_raw < 0).any():
                raise DataError(
                    f"target '{target}' has classes the model does not know "
                    f"({', '.join(map(str, df[target][y_raw < 0].unique()[:5]))})"
                )
        if schema.get("include_target"):
            extra = y_raw[:, None] if task == "regression" else np.eye(len(classes))[y_raw]
            x = np.concatenate([x, extra], axis=1)
    times = df[w.time_column]
    times = times if pd.api.types.is_numeric_dtype(times) else parse_times(times)
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise DataError(
            f"time column '{w.time_column}' has '{df[w.time_column].iloc[row]}' at row {row + 1}, "
            f"which is neither a date nor a number; fix it"
        )
    series = schema.get("required", [])[1:]
    side = {c: df[c].astype(str).to_numpy() for c in series}
    lines = np.arange(len(df)) + 2
    xw, yw, lines, side, _, more = make_windows(
        np.where(np.isfinite(x), x, np.nan), y_raw, lines, side, times, cfg, None
    )
    warnings += more
    rows = df.iloc[lines - 2][[w.time_column, *series]].reset_index(drop=True)
    y = None
    if has_target:
        mean, std = target_scale
        y = (
            torch.as_tensor((yw - mean) / std, dtype=torch.float32)
            if task == "regression"
            else torch.as_tensor(yw)
        )
        rows[target] = df[target].iloc[lines - 2].to_numpy()
    return Encoded(torch.as_tensor(np.ascontiguousarray(xw), dtype=torch.float32), y, rows, warnings)


def _target(
    schema: dict[str, Any],
    df: pd.DataFrame,
    classes: list[str],
    task: str,
    target_scale: tuple[float, float],
    warnings: list[str],
) -> Tensor | None:
    """The target column when present: class codes (-1 where missing or unknown), or
    standardised numbers (NaN where missing)."""
    target = schema.get("target")
    if not target or target not in df.columns:
        return None
    s = df[target]
    if task == "regression":
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
        mean, std = target_scale
        return torch.as_tensor((values - mean) / std, dtype=torch.float32)
    text = s.map(_class_text).where(s.notna())
    codes = pd.Categorical(text, categories=classes).codes.astype(np.int64)
    unknown = text.notna() & (codes < 0)
    if unknown.any():
        seen = ", ".join(f"'{v}'" for v in text[unknown].unique()[:5])
        warnings.append(
            f"target '{target}': {int(unknown.sum())} row(s) have classes the model does not know "
            f"({seen}); they are left out of the figures"
        )
    return torch.as_tensor(codes)


def _class_text(value: Any) -> str:
    """A target value as the training label encoding names it (``1.0`` -> ``"1"``)."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def read_images(files: list[tuple[str, bytes]], shape: list[int]) -> Encoded:
    """Image files as model input ``(N, C, H, W)`` in [0, 1]: converted to grey or RGB as the model
    reads, resized to its height and width. Files that are not images are refused by name.

    :raises DataError: a file that is not a readable image, or too many files.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    if len(files) > MAX_IMAGES:
        raise DataError(f"{len(files)} images at once; give at most {MAX_IMAGES}")
    c, h, w = shape
    mode = "L" if c == 1 else "RGB"
    arrays, names = [], []
    for name, blob in files:
        try:
            with Image.open(io.BytesIO(blob)) as img:
                img = img.convert(mode).resize((w, h), Image.Resampling.BILINEAR)
                a = np.asarray(img, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(
                f"'{name}' is not an image this app can read ({type(exc).__name__}); give PNG or JPEG files"
            ) from None
        arrays.append(a[None] if c == 1 else a.transpose(2, 0, 1))
        names.append(name)
    if not arrays:
        raise DataError("no image given")
    x = torch.as_tensor(np.stack(arrays))
    return Encoded(x, None, pd.DataFrame({"file": names}))
