"""Forward FLOPs of a model, counted from the tensor functions its forward pass calls.

A :class:`~torch.overrides.TorchFunctionMode` sees every ``linear``, ``conv1d/2d/3d`` and matrix
product a forward pass calls, with their inputs and outputs, and counts ``2 x`` multiply-adds for
each, the same figures torch's ``FlopCounterMode`` gives (tested on every architecture). It is
used instead of ``FlopCounterMode`` because that one imports ``torch._dynamo`` (2-2.5 s of every
run's start-up, docs/benchmarks.md) and works one level lower, on aten operators.

The same pass also finds a sample's largest tensor, which sizes every forward call made without
gradients (:func:`rows_per_call`: scoring, prototypes, distillation targets) so its activations
stay under :data:`CHUNK_BYTES`.

Functions this does not see: fused kernels that run as one call (recurrent layers such as
``gru``/``lstm``); modules with such kernels add their own figure (``recurrent_flops``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

CHUNK_BYTES = 8 << 20
"""Bytes of the largest activation of one forward call (rows x clients x the model's largest
per-sample tensor, :func:`sample_cost`): bounds the memory of scoring, whatever the
model and the size of the test set. Also the fastest size measured: scoring 2,000 28x28 images
with the FedAvg CNN (one thread) took 0.97 s in calls of 128 rows (9 MB of activations), 1.24 s
in 256 and 1.77 s in 1,024, as the activations outgrow the caches."""


def _matmul(a: Tensor, b: Tensor, out: Tensor) -> int:
    return 2 * out.numel() * a.shape[-1]


def _linear(x: Tensor, weight: Tensor, out: Tensor) -> int:
    return 2 * out.numel() * weight.shape[-1]


def _conv(x: Tensor, weight: Tensor, out: Tensor) -> int:
    # every output element sums (in_channels / groups) x kernel products
    return 2 * out.numel() * math.prod(weight.shape[1:])


def _sdpa(q: Tensor, k: Tensor, out: Tensor) -> int:
    # scores q @ k^T, then scores @ v: two products over the key length
    return 2 * 2 * out.numel() // out.shape[-1] * k.shape[-2] * q.shape[-1]


_RULES = {
    "linear": _linear,
    "conv1d": _conv,
    "conv2d": _conv,
    "conv3d": _conv,
    "matmul": _matmul,
    "__matmul__": _matmul,
    "__rmatmul__": lambda b, a, out: _matmul(a, b, out),
    "mm": _matmul,
    "bmm": _matmul,
    "scaled_dot_product_attention": _sdpa,
}
_BIASED = {"addmm": _matmul, "baddbmm": _matmul}  # (bias, a, b)


class FlopCounter(TorchFunctionMode):
    """Counts the forward FLOPs of the tensor functions called while it is active, and the
    largest tensor any of them returned (``largest``, elements)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.largest = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if isinstance(out, Tensor):
            self.largest = max(self.largest, out.numel())
        name = getattr(func, "__name__", "")
        rule = _RULES.get(name)
        if rule is not None and len(args) >= 2 and isinstance(out, Tensor):
            self.total += int(rule(args[0], args[1], out))
        elif name in _BIASED and len(args) >= 3 and isinstance(out, Tensor):
            self.total += int(_BIASED[name](args[1], args[2], out))
        return out


@torch.no_grad()
def _count(model: nn.Module, x: Tensor) -> FlopCounter:
    was_training = model.training
    model.eval()
    try:
        with FlopCounter() as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter


def forward_flops(model: nn.Module, x: Tensor) -> int:
    """FLOPs of ``model(x)`` in eval mode, including the figures of modules with fused kernels
    (``recurrent_flops()`` per sample, times the batch)."""
    fused = sum(int(m.recurrent_flops()) for m in model.modules() if hasattr(m, "recurrent_flops"))
    return _count(model, x).total + fused * len(x)


@dataclass(frozen=True)
class Cost:
    """What one sample costs a forward pass: FLOPs, and the bytes of the largest tensor it
    makes (an activation, or the input itself), which bounds the memory of scoring in chunks."""

    flops: int
    activation_bytes: int


def sample_cost(model: nn.Module, sample_shape: tuple[int, ...]) -> Cost:
    """:class:`Cost` of one sample of ``sample_shape`` through ``model`` (measured once per
    module and shape, then remembered on the module)."""
    cache = model.__dict__.setdefault("_fm_costs", {})
    key = tuple(sample_shape)
    if key not in cache:
        x = torch.zeros((1, *key), device=next(model.parameters()).device)
        counter = _count(model, x)
        fused = sum(int(m.recurrent_flops()) for m in model.modules() if hasattr(m, "recurrent_flops"))
        width = x.element_size()
        cache[key] = Cost(counter.total + fused, max(counter.largest, x.numel()) * width)
    return cache[key]


def rows_per_call(model: nn.Module, sample_shape: tuple[int, ...] | torch.Size) -> int:
    """Rows of one forward call of ``model`` on samples of ``sample_shape`` whose activations fit
    :data:`CHUNK_BYTES` (scoring, prototypes, distillation targets: any forward pass without
    gradients over many rows)."""
    if not len(sample_shape):
        return 2048
    return max(1, CHUNK_BYTES // sample_cost(model, tuple(sample_shape)).activation_bytes)
