"""A user's own CSV file as a dataset (``data.dataset: "csv"``).

Pick the target column (``data.target``); the task is inferred (text, booleans and integer
targets with at most 20 values are classes; other numbers are regression) and ``data.task``
overrides it. Every other column is inferred as numeric, boolean, categorical (one-hot), ordinal,
datetime (expanded into calendar features) or identifier-like (flagged and kept out of the
features); ``data.columns`` overrides any of them and names a column's missing-value codes.
Missing feature values stay missing (NaN) in :attr:`Dataset.x`: each client's preprocessing fills
them (:mod:`engine.data.stats`); they are counted in :attr:`Dataset.report`. Rows with a missing
target are dropped and counted. ``data.split_column`` names a column saying per row whether it is
train, test or validation data (:attr:`Dataset.split`). Three other shapes of the same file:

- ``data.image_shape``: the feature columns are pixels (``label, px0..px783`` -> ``[1, 28, 28]``).
- ``data.window``: rows sorted by a time column are cut into sliding windows (sequence input).
- a ``natural`` partition column is kept out of the features and exposed in
  :attr:`Dataset.columns`, one client per value.

:func:`inspect_csv` runs the same inference on an upload before any config exists, for the Data
page's schema table. Files are read by :mod:`engine.data.tables.reading` (CSV text, .xlsx, Parquet):
nothing is evaluated or unpickled.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.access import confine
from engine.data.base import DATASETS, Dataset, DatasetSource, as_tensor_x
from engine.data.config import DataConfig
from engine.data.stats import Feature
from engine.data.tables.columns import (
    column_roles,
    count_missing,
    describe_columns,
    describe_target,
    missing_column,
    plan_columns,
    shape_input,
)
from engine.data.tables.encode import encode_columns
from engine.data.tables.infer import ColumnPlan, Numbers, apply_missing_codes, infer_columns
from engine.data.tables.pixels import guess_image_shape
from engine.data.tables.reading import Table, read_table
from engine.data.tables.target import encode_target, infer_task, read_split
from engine.errors import DataError

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
    raise DataError(
        f"data.path '{path}' is not a file (looked at {tried}); check the path or upload the file"
    )


def table_to_dataset(
    table: Table, cfg: DataConfig, *, need_target: bool = True, problems: list[str] | None = None
) -> tuple[Dataset | None, dict]:
    """Infer, check and encode a parsed table as configured.

    :param problems: when given (the Data page), a column that cannot be used as typed is noted in
        the report (``problem``), left out of the features, and its message appended here, instead
        of raising.
    :returns: the dataset (``None`` when ``need_target`` is false and no target is set) and the
        JSON-able report (schema, missing counts, flagged columns, warnings).
    :raises DataError: the first problem found, naming the column or line and the fix.
    """
    df = table.frame
    names = list(df.columns)
    n_rows = len(df)
    report: dict[str, Any] = {
        "source": table.name,
        "rows": n_rows,
        "size_mb": round(table.size_mb, 3),
        **table.how(),
        "target": cfg.target,
    }
    warnings: list[str] = []
    for name in cfg.columns:
        if name not in names:
            raise missing_column("data.columns names", name, names)
    df, coded = apply_missing_codes(df, cfg.columns)
    if coded:
        warnings.append(
            "treated as missing: "
            + ", ".join(f"{n} value{'s' if n != 1 else ''} of '{c}'" for c, n in coded.items())
        )
    target = cfg.target
    if target is None and need_target:
        raise DataError(f"data.target is not set; choose the column to predict: {', '.join(names[:30])}")
    if target is not None and target not in names:
        raise missing_column("target", target, names)
    w = cfg.window
    group_cols, special = column_roles(cfg, names, target)
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
    split = read_split(df, cfg.split_column) if cfg.split_column is not None else None

    plain = [n for n in names if n != target and special.get(n) not in ("group", "split")]
    numbers = Numbers(df, plain)
    inferred = infer_columns(df, plain, cfg.columns, problems, numbers)
    plans, times = plan_columns(df, names, target, special, inferred)
    if cfg.image_shape is not None:
        for plan in plans:
            if plan.role == "feature" and plan.type != "numeric":
                raise DataError(
                    f"data.image_shape reads every feature column as a pixel, but column "
                    f"'{plan.name}' is {plan.type}; set column '{plan.name}' to \"ignore\" or "
                    f'"numeric" in data.columns'
                )
    describe_columns(report, plans, df, problems, warnings)
    if target is None:
        low = {n.lower(): n for n in names}
        report["target_suggestion"] = next((low[t] for t in _TARGET_NAMES if t in low), names[-1])
    _image_guess(report, plans, cfg)
    if target is None:
        report["warnings"] = warnings
        return None, report

    feature_plans = [p for p in plans if p.role == "feature" or (p.role == "time" and p.type == "datetime")]
    x, features = encode_columns(feature_plans, df, numbers)
    if not features and not (w is not None and w.include_target):
        raise DataError(
            "no feature columns are left after the target, identifiers and ignored columns; "
            "set a column's type in data.columns"
        )
    missing = count_missing(x, features, report["columns"])

    y_col = df[target]
    task_inferred = infer_task(y_col)
    task = task_inferred if cfg.task == "auto" else cfg.task
    y, classes = encode_target(y_col, task, target)
    lines = df.index.to_numpy() + 2
    if cfg.window is not None and cfg.window.include_target:
        extra = y[:, None].astype(np.float64) if task == "regression" else np.eye(len(classes))[y]
        x = np.concatenate([x, extra], axis=1)
        past = [f"{target} (past)"] if task == "regression" else [f"{target}={c} (past)" for c in classes]
        features += [
            Feature(n, target, "numeric" if task == "regression" else "onehot", "median")  # type: ignore[arg-type]
            for n in past
        ]
    side = {c: df[c].astype(str).to_numpy() for c in group_cols}

    x, y, lines, side, split, spec, features = shape_input(
        x, y, lines, side, times, split, features, cfg, target, report, warnings
    )
    describe_target(report, task, y, classes, lines, target, split)
    report.update(
        {
            "task": task,
            "task_inferred": task_inferred,
            "classes": classes[:100],
            "samples": len(y),
            "input": str(spec),
            "n_features": len(features),
            "feature_names": [f.name for f in features[:500]],
            "missing": missing,
            "missing_total": int(sum(missing.values())),
            "dropped_rows": dropped,
            "missing_codes": coded,
            "warnings": warnings,
        }
    )
    if missing:
        warnings.append(
            f"{sum(missing.values())} missing values in {len(missing)} columns are filled by each "
            f"client's preprocessing (statistics: {cfg.statistics})"
        )
    y_t = torch.as_tensor(y, dtype=torch.float32 if task == "regression" else torch.long)
    dataset = Dataset(
        Path(table.name).stem,
        as_tensor_x(x),
        y_t,
        spec,
        task=task,
        classes=classes,
        columns=side,
        feature_names=[f.name for f in features],
        report=report,
        features=features if spec.kind != "image" else None,
        split=split,
        rows=None if cfg.window is not None else df.index.to_numpy(),
    )
    return dataset, report


def _image_guess(report: dict[str, Any], plans: list[ColumnPlan], cfg: DataConfig) -> None:
    """``report["image_guess"]``: whether the feature columns look like pixels
    (:mod:`engine.data.tables.pixels`) while the file is read as rows; pixel columns (guessed or
    read as images) are never offered as category codes."""
    if cfg.image_shape is not None:
        report["code_like"] = []
        return
    if cfg.window is not None:
        return
    guess = guess_image_shape(plans, leave_out=report.get("target_suggestion"))
    if guess is not None:
        report["image_guess"] = guess.summary()
        pixels = set(guess.pixels)
        report["code_like"] = [c for c in report["code_like"] if c not in pixels]


def _read(source: str | Path | bytes, cfg: DataConfig, name: str | None = None) -> Table:
    """The parsed file; a path is parsed once per content and reading settings (the Data page
    inspects the same file several times per interaction). Callers never modify the frame."""
    options = (cfg.delimiter, cfg.encoding, cfg.decimal, cfg.sheet, cfg.max_file_mb, name)
    if isinstance(source, (bytes, bytearray)):
        return read_table(
            source,
            delimiter=cfg.delimiter,
            encoding=cfg.encoding,
            decimal=cfg.decimal,
            sheet=cfg.sheet,
            max_file_mb=cfg.max_file_mb,
            name=name,
        )
    path = Path(source)
    try:
        stat = path.stat()
    except OSError:
        stat = None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns) if stat else (str(path), 0, 0)
    return _read_path(key, options)


@lru_cache(maxsize=2)
def _read_path(key: tuple[str, int, int], options: tuple) -> Table:
    delimiter, encoding, decimal, sheet, max_file_mb, name = options
    return read_table(
        key[0],
        delimiter=delimiter,
        encoding=encoding,
        decimal=decimal,
        sheet=sheet,
        max_file_mb=max_file_mb,
        name=name,
    )


def inspect_csv(
    source: str | Path | bytes | None = None,
    cfg: DataConfig | dict | None = None,
    root: Path | None = None,
    *,
    problems: list[str] | None = None,
) -> dict[str, Any]:
    """Schema report of a table file (a path, or an upload's bytes) for the Data page, before a
    config exists.

    :param cfg: the ``data`` section so far (target, columns overrides, window, ...); without a
        target only the columns are inferred and ``target_suggestion`` names a likely one.
    :param problems: collect column problems here instead of raising (see :func:`table_to_dataset`).
    :returns: ``{"rows", "columns": [{"name", "type", "inferred", "role", "missing", ...}],
        "id_like", "natural_candidates", "split_candidates", "warnings", "task", "classes", "input",
        "format", "encoding", "delimiter", "decimal", ...}``, and ``image_guess`` when the feature
        columns look like pixels (:func:`engine.data.tables.pixels.guess_image_shape`).
    :raises DataError: the file cannot be used as configured (names the column/line and the fix).
    """
    if cfg is None:
        cfg = DataConfig(dataset="csv")
    elif isinstance(cfg, dict):
        cfg = DataConfig.model_validate({"dataset": "csv", **cfg})
    if source is None:
        if cfg.path is None:
            raise DataError("no file given: upload a file or set data.path")
        cfg = confine(cfg, root)  # only inside the allowed roots (engine/access.py)
        source = resolve_path(cfg.path, root)
    return table_to_dataset(_read(source, cfg), cfg, need_target=False, problems=problems)[1]


@DATASETS.register("csv")
class CsvData(DatasetSource):
    description = (
        "Your own table (CSV, Excel .xlsx or Parquet): pick the target column; column types, the "
        "task and missing values are handled automatically and can be overridden. Read as rows, as "
        "images (pixel columns) or as time-series windows."
    )
    kind = "tabular"
    task = "auto"
    source = "a file you upload"

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        if not cfg.path:
            raise DataError("data.path is not set; upload a file or give the path of one")
        path = resolve_path(cfg.path, root)
        dataset, _ = table_to_dataset(_read(path, cfg), cfg)
        assert dataset is not None
        return dataset
