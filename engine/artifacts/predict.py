"""Predictions of a kept model on new data: a table with the training schema (CSV, .xlsx,
Parquet; the target column optional) or image files.

The file is read by the data path's reader (:func:`engine.data.tables.reading.read_table`: encodings,
separators and decimal marks detected, .xlsx and Parquet), checked against the model's schema
(missing and unknown columns named), encoded as the training rows were
(:mod:`engine.artifacts.schema`) and passed through the client's own fitted preprocessing and
model (:class:`engine.artifacts.load.Predictor`). Classifiers give the predicted class and one
probability per class; regression models give values in the target's units. When the file holds
the target, the figures are computed as the run computes them, beside the figures a predictor that
ignores the input reaches on the same rows (the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.artifacts.encode import IMAGE_SUFFIXES, Encoded, encode_table, read_images
from engine.artifacts.load import Loaded
from engine.core import training
from engine.core.scores import constant_outputs, scores
from engine.errors import DataError, ModelNotFoundError

PREDICTION = "prediction"
MAX_BYTES = 200 * 2**20


@dataclass
class Prediction:
    """What :func:`predict` returns: the rows with their predictions (``table``), the figures
    when the target was given (``metrics`` and the input-blind ``reference``), and notes."""

    table: pd.DataFrame
    task: str
    classes: list[str]
    target: str | None
    metrics: dict[str, float] | None = None
    reference: dict[str, float] | None = None
    rows_scored: int = 0
    warnings: list[str] = field(default_factory=list)
    outputs: torch.Tensor | None = None


def _complete(loaded: Loaded) -> None:
    if loaded.predictor is None:
        part = loaded.config.get("part")
        raise ModelNotFoundError(
            f"'{loaded.config.get('name')}' is the federation's shared {part}, not a complete "
            f"model: it cannot predict on its own; pick a client's model"
        )


def _outputs(loaded: Loaded, x: torch.Tensor) -> torch.Tensor:
    _complete(loaded)
    shape = tuple(loaded.config["input"]["shape"])
    if tuple(x.shape[1:]) != shape:
        raise DataError(f"the file gives inputs of shape {tuple(x.shape[1:])} but the model reads {shape}")
    with torch.no_grad():
        return training.predict(loaded.predictor, x)


def encode(
    loaded: Loaded,
    source: bytes | str | Path,
    name: str | None = None,
    *,
    images: list[tuple[str, bytes]] | None = None,
) -> Encoded:
    """Read and encode a table (``source``) or image files (``images``) for this model."""
    config = loaded.config
    if images:
        if config["input"]["kind"] != "image":
            raise DataError(
                "this model reads tables, not images; give a CSV, .xlsx or Parquet file with the "
                "training columns"
            )
        return read_images(images, list(config["input"]["shape"]))
    from engine.data.tables.reading import read_table

    table = read_table(source, name=name, max_file_mb=MAX_BYTES / 2**20)
    target = config.get("target", {})
    return encode_table(
        config["schema"],
        table.frame,
        list(config.get("classes", [])),
        config["task"],
        (float(target.get("mean", 0.0)), float(target.get("std", 1.0))),
    )


def predict(
    loaded: Loaded,
    source: bytes | str | Path | None = None,
    name: str | None = None,
    *,
    images: list[tuple[str, bytes]] | None = None,
) -> Prediction:
    """Predict on a table file or on image files (see the module docstring).

    :raises DataError: unreadable file, schema mismatch (naming the columns), unreadable values.
    :raises ModelNotFoundError: a federation part that does not predict on its own.
    """
    _complete(loaded)
    if source is None and not images:
        raise DataError("give a file to predict on")
    encoded = encode(loaded, source if source is not None else b"", name, images=images)
    out = _outputs(loaded, encoded.x)
    return describe(loaded, encoded, out)


def describe(loaded: Loaded, encoded: Encoded, out: torch.Tensor) -> Prediction:
    """The prediction table and figures from a model's raw outputs on encoded rows."""
    config = loaded.config
    task, classes = config["task"], list(config.get("classes", []))
    target = (config.get("target") or {}).get("name") or config.get("schema", {}).get("target")
    keep = [c for c in encoded.rows.columns if c != target]
    window = config.get("schema", {}).get("form") == "window"
    id_cols = keep if window else [c for c in keep if c in _identifying(config)]
    table = encoded.rows[id_cols].copy() if id_cols else pd.DataFrame(index=encoded.rows.index)
    if "file" in encoded.rows.columns and config["input"]["kind"] == "image" and not id_cols:
        table["file"] = encoded.rows["file"]
    table.insert(0, "row", np.arange(1, len(out) + 1))
    if task == "classification":
        probs = torch.softmax(out.float(), dim=1).numpy()
        table[PREDICTION] = [classes[i] if i < len(classes) else str(i) for i in probs.argmax(1)]
        for j, c in enumerate(classes):
            table[f"p({c})"] = probs[:, j]
    else:
        t = config.get("target") or {}
        units = f" ({t['units']})" if t.get("units") else ""
        values = out.reshape(len(out), -1)[:, 0].double().numpy() * float(t.get("std", 1.0)) + float(
            t.get("mean", 0.0)
        )
        table[f"{PREDICTION}{units}"] = values
    result = Prediction(table, task, classes, target, warnings=list(encoded.warnings), outputs=out)
    if encoded.y is not None and target:
        table.insert(1, target, encoded.rows[target].to_numpy())
        y = encoded.y
        valid = (y >= 0) if task == "classification" else torch.isfinite(y)
        if bool(valid.any()):
            std = float((config.get("target") or {}).get("std", 1.0))
            result.metrics = scores(task, out[valid], y[valid], std)
            result.reference = _reference(config, y[valid], std)
            result.rows_scored = int(valid.sum())
        if not bool(valid.all()):
            result.warnings.append(
                f"{int((~valid).sum())} row(s) without a usable target are predicted but not scored"
            )
    return result


def _identifying(config: dict[str, Any]) -> set[str]:
    """Columns the training file had besides the features (identifiers, sites): kept beside the
    predictions so rows can be matched."""
    schema = config.get("schema", {})
    features = {c["name"] if isinstance(c, dict) else c for c in schema.get("columns", [])}
    return set(schema.get("known_columns", [])) - features


def _reference(config: dict[str, Any], y: torch.Tensor, target_std: float) -> dict[str, float] | None:
    """The figures on these rows of the run's reference: the predictor that ignores the input,
    fitted on the model's training labels (the client's; pooled for the federation's models)
    (:func:`engine.core.scores.constant_outputs`)."""
    labels = (config.get("client") or {}).get("training_labels") or config.get("pooled_training_labels")
    if not labels:
        return None
    task, n_out = config["task"], int(config["n_outputs"])
    if task == "classification":
        train_y = np.repeat(np.arange(len(labels["counts"])), labels["counts"])
    else:
        train_y = np.array([labels["mean"]])
    return scores(task, constant_outputs(task, train_y, n_out, len(y)), y, target_std)


def prediction_csv(result: Prediction) -> str:
    """The prediction table as spreadsheet-safe CSV text (:func:`engine.sanitize.csv_text`)."""
    from engine.sanitize import csv_text

    return csv_text(result.table, float_format="%.6g")


def is_image_name(name: str) -> bool:
    """Whether a file name looks like an image Predict reads as one."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES
