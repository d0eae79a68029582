"""Per-client preprocessing, fitted on that client's training split only.

Every method is a per-feature affine map ``(x - center) / scale``: ``standardize`` (mean, std),
``minmax`` (min, range), ``robust`` (median, inter-quartile range). Features are the last axis for
tabular and sequence inputs and the channel axis for images, so statistics never mix clients or
touch any test set. Being affine, a fitted transform is two small tensors: cheap to store,
checkpoint and apply to the global test set at evaluation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Method = Literal["none", "standardize", "minmax", "robust"]
METHODS: tuple[str, ...] = ("none", "standardize", "minmax", "robust")


@dataclass
class Affine:
    """``(x - center) / scale`` broadcast over a batch; identity when both are ``None``."""

    center: Tensor | None = None
    scale: Tensor | None = None

    def __call__(self, x: Tensor) -> Tensor:
        if self.center is None or self.scale is None:
            return x
        return (x - self.center.to(x.device)) / self.scale.to(x.device)


def _feature_view(x: Tensor, kind: str) -> tuple[Tensor, tuple[int, ...]]:
    """``x`` as (samples, features) and the broadcast shape of per-feature statistics."""
    if kind == "image":  # (N, C, H, W): statistics per channel
        c = x.shape[1]
        return x.transpose(0, 1).reshape(c, -1).T, (c, 1, 1)
    f = x.shape[-1]
    return x.reshape(-1, f), ((1, f) if kind == "sequence" else (f,))


def fit(method: str, x: Tensor, kind: str) -> Affine:
    """Fit ``method`` on a client's training features ``x``."""
    if method == "none" or len(x) == 0:
        return Affine()
    flat, shape = _feature_view(x, kind)
    if method == "standardize":
        center, scale = flat.mean(0), flat.std(0, unbiased=False)
    elif method == "minmax":
        center, scale = flat.amin(0), flat.amax(0) - flat.amin(0)
    elif method == "robust":
        q = torch.quantile(flat, torch.tensor([0.25, 0.5, 0.75]), dim=0)
        center, scale = q[1], q[2] - q[0]
    else:
        raise ValueError(f"unknown preprocessing '{method}'; valid: {', '.join(METHODS)}")
    scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))
    return Affine(center.reshape(shape), scale.reshape(shape))
