"""ONNX export of a kept model, preprocessing included: the graph takes the raw encoded features
(missing values as NaN, exactly what :mod:`engine.artifacts.schema` produces from a new file) and
returns the outputs (``outputs``: logits, or standardised values for regression) and, for a
classifier, ``probabilities``. The batch dimension is dynamic.

Needs the ``onnx`` extra (``pip install 'fedmosaic[onnx]'``: onnx, onnxscript, and onnxruntime to
check). Exports with torch's TorchScript-based exporter (opset 17: well under a second per model)
and, where that exporter lacks an operator (the 1-D CNN's adaptive pooling to a size that does not
divide its input), with torch's ``torch.export``-based exporter (onnxscript; several seconds per
model). The test suite checks every architecture's ONNX outputs against torch's within 1e-4 on a
client's test split.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from engine.artifacts.load import Loaded, load_folder
from engine.errors import FedMosaicError, ModelNotFoundError

OPSET = 17


class ExtraMissingError(FedMosaicError):
    """An optional extra (onnx, flwr, mlflow) is not installed; the message names the install."""


def require(module: str, extra: str) -> None:
    """Import ``module`` or say which extra installs it."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise ExtraMissingError(
            f"{module} is not installed; install the {extra} extra: pip install 'fedmosaic[{extra}]'"
        ) from None


class _Exported(nn.Module):
    def __init__(self, predictor: nn.Module, classify: bool) -> None:
        super().__init__()
        self.predictor = predictor
        self.classify = classify

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor] | Tensor:
        out = self.predictor(x)
        if self.classify:
            return out, torch.softmax(out, dim=1)
        return out


def export_onnx(loaded: Loaded) -> bytes:
    """The ONNX model of a kept complete model (see the module docstring)."""
    require("onnx", "onnx")
    if loaded.predictor is None:
        raise ModelNotFoundError(
            f"'{loaded.config.get('name')}' is not a complete model; only complete models export to ONNX"
        )
    classify = loaded.config["task"] == "classification"
    module = _Exported(loaded.predictor, classify).eval()
    example = torch.zeros((2, *loaded.config["input"]["shape"]))
    outputs = ["outputs", "probabilities"] if classify else ["outputs"]
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                (example,),
                buf,
                dynamo=False,
                opset_version=OPSET,
                input_names=["features"],
                output_names=outputs,
                dynamic_axes={"features": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
            )
            return buf.getvalue()
        except Exception:  # noqa: BLE001 - an operator the TorchScript exporter lacks: the newer exporter
            require("onnxscript", "onnx")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            input_names=["features"],
            output_names=outputs,
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            verbose=False,
        )
        return program.model_proto.SerializeToString()


def onnx_bytes(folder: Path) -> bytes:
    """The ONNX model of the kept model in ``folder``."""
    return export_onnx(load_folder(folder))


def run_onnx(model: bytes, x: Tensor) -> np.ndarray:
    """The ``outputs`` of an ONNX model on ``x`` under onnxruntime (CPU)."""
    require("onnxruntime", "onnx")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return session.run(["outputs"], {"features": x.detach().cpu().numpy().astype(np.float32)})[0]
