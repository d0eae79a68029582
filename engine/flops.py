"""Forward FLOPs of a model, counted from the tensor functions its forward pass calls.

A :class:`~torch.overrides.TorchFunctionMode` sees every ``linear``, ``conv1d/2d/3d`` and matrix
product a forward pass calls, with their inputs and outputs, and counts ``2 x`` multiply-adds for
each, the same figures torch's ``FlopCounterMode`` gives (tested on every architecture). It is
used instead of ``FlopCounterMode`` because that one imports ``torch._dynamo`` (2-2.5 s of every
run's start-up, docs/benchmarks.md) and works one level lower, on aten operators.

Functions this does not see: fused kernels that run as one call (recurrent layers such as
``gru``/``lstm``); modules with such kernels add their own figure (``recurrent_flops``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode


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
    "linear": _linear, "conv1d": _conv, "conv2d": _conv, "conv3d": _conv,
    "matmul": _matmul, "__matmul__": _matmul, "__rmatmul__": lambda b, a, out: _matmul(a, b, out),
    "mm": _matmul, "bmm": _matmul, "scaled_dot_product_attention": _sdpa,
}
_BIASED = {"addmm": _matmul, "baddbmm": _matmul}  # (bias, a, b)


class FlopCounter(TorchFunctionMode):
    """Counts the forward FLOPs of the tensor functions called while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        rule = _RULES.get(name)
        if rule is not None and len(args) >= 2 and isinstance(out, Tensor):
            self.total += int(rule(args[0], args[1], out))
        elif name in _BIASED and len(args) >= 3 and isinstance(out, Tensor):
            self.total += int(_BIASED[name](args[1], args[2], out))
        return out


@torch.no_grad()
def forward_flops(model: nn.Module, x: Tensor) -> int:
    """FLOPs of ``model(x)`` in eval mode, including the figures of modules with fused kernels
    (``recurrent_flops()`` per sample, times the batch)."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounter() as counter:
            model(x)
    finally:
        model.train(was_training)
    fused = sum(int(m.recurrent_flops()) for m in model.modules() if hasattr(m, "recurrent_flops"))
    return counter.total + fused * len(x)
