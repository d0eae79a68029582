"""The input schema a kept model reads.

A run's data decides what one sample is. :func:`schema_of` writes that down as plain JSON when the
models are kept, and :mod:`engine.artifacts.encode` reads a new file with it, so a model predicts
on rows it has never seen exactly as its site prepared the training rows:

- ``table`` (a CSV/xlsx/Parquet file read as rows): the feature columns with their types, a
  categorical column's categories (one one-hot slot each, in training order), an ordinal's order,
  a date's calendar parts, the missing-value codes. New rows go through the same encoding
  (:mod:`engine.data.tables.infer`), then the client's fitted preprocessing fills and scales them.
- ``pixels`` (a table whose feature columns are pixels, ``data.image_shape``): the pixel columns
  in order, the image shape and whether values were divided by 255.
- ``features`` (a built-in tabular dataset): its named numeric columns.
- ``image`` (a built-in image dataset): image files (PNG, JPEG...) resized to the model's input,
  or a table with one column per pixel.

- ``window`` (a table cut into time-series windows, ``data.window``): the same columns plus the
  time and series columns; the rows are cut into windows as the training rows were, one
  prediction per window (for the row ``horizon`` steps after its end). The file must hold each
  series' history: a window needs ``length`` rows.

Built-in sequence datasets are not read back from files (they have no table of rows). Files are
read by :mod:`engine.data.tables.reading` (the Data page's reader: encodings, separators, decimal commas,
.xlsx, Parquet); nothing is evaluated or unpickled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.data.base import Dataset
    from engine.data.config import DataConfig


def schema_of(data: Dataset, cfg: DataConfig) -> dict[str, Any]:
    """The JSON-able input schema of a loaded dataset as configured (see the module docstring)."""
    spec = data.input_spec
    base: dict[str, Any] = {"input": {"kind": spec.kind, "shape": list(spec.shape)}, "target": None}
    if cfg.dataset == "csv":
        base["target"] = cfg.target
        report = data.report or {}
        known = [c["name"] for c in report.get("columns", [])]
        base["known_columns"] = known + ([cfg.target] if cfg.target else [])
        if cfg.window is not None:
            codes = {
                name: [str(v) for v in (col.missing_values or [])]
                for name, col in cfg.columns.items()
                if getattr(col, "missing_values", None)
            }
            w = cfg.window
            series = [c for c in dict.fromkeys([w.group_column, cfg.natural_column()]) if c]
            return {
                **base,
                "form": "window",
                "columns": _table_columns(data, skip=cfg.target),
                "missing_values": codes,
                "features": list(data.feature_names or []),
                "required": [w.time_column, *series],
                "data": cfg.model_dump(mode="json", include={"window", "partition", "target", "columns"}),
                "include_target": bool(w.include_target),
            }
        if cfg.image_shape is not None:
            pixels = [c["name"] for c in report.get("columns", []) if c.get("role") == "feature"]
            return {
                **base,
                "form": "pixels",
                "columns": pixels,
                "image_shape": list(cfg.image_shape),
                "divide": 255.0 if report.get("pixel_scale") else 1.0,
            }
        codes = {
            name: [str(v) for v in (col.missing_values or [])]
            for name, col in cfg.columns.items()
            if getattr(col, "missing_values", None)
        }
        return {
            **base,
            "form": "table",
            "columns": _table_columns(data),
            "missing_values": codes,
            "features": list(data.feature_names or []),
        }
    if spec.kind == "image":
        columns = [f"px{i}" for i in range(spec.numel)]
        return {**base, "form": "image", "columns": columns, "target": _target_name(columns)}
    if spec.kind == "tabular":
        names = list(data.feature_names or [f"x{i}" for i in range(spec.shape[0])])
        return {**base, "form": "features", "columns": names, "target": _target_name(names)}
    return {
        **base,
        "form": "window",
        "readable": False,
        "why": "the model reads sequences; new rows alone do not carry the history it needs",
    }


def _target_name(columns: list[str]) -> str:
    """The target's column in a built-in dataset's table: ``target``, unless a feature has that name."""
    return "target" if "target" not in columns else "target (to predict)"


def _table_columns(data: Dataset, skip: str | None = None) -> list[dict[str, Any]]:
    """Per feature column of the file: its type and what encoding it needs (from the schema);
    ``skip``: a column whose features are added apart (a window's past target values)."""
    columns: dict[str, dict[str, Any]] = {}
    for f in data.features or []:
        if skip is not None and f.column == skip:
            continue
        entry = columns.get(f.column)
        if entry is None:
            kind = {"numeric": "numeric", "binary": "boolean", "code": "ordinal", "onehot": "categorical"}[
                f.kind
            ]
            entry = columns[f.column] = {"name": f.column, "type": kind}
            if f.kind == "code":
                entry["levels"] = list(f.levels)
            if f.kind == "onehot":
                entry["levels"] = []
        if f.kind == "onehot":
            entry["levels"].append(f.name[len(f.column) + 1 :])
        elif f.kind == "numeric" and f.name != f.column:  # a date's calendar part: "admitted.month"
            entry["type"] = "datetime"
            entry.setdefault("parts", []).append(f.name[len(f.column) + 1 :])
    return list(columns.values())
