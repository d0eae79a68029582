"""``feature``: feature-distribution skew. Samples are dealt as in ``iid`` (honouring data_share),
then each client sees its own samples through a client-specific shift: additive noise, a
per-feature (per-channel for images) scale and offset, and for images a rotation - the synthetic
covariate shift of Li et al. 2022 ("Federated Learning on Non-IID Data Silos", arXiv:2102.02079)
and of FedBN (Li et al. 2021, arXiv:2102.07623).

The shift is applied by :meth:`Feature.transform_client` to a client's train and local test
splits together, in raw feature space before preprocessing; its strength grows linearly from
client 0 (unshifted) to the last client (full strength), or is drawn at random. The global test
and public sets stay unshifted, so the global metric measures how well a model generalises back
to the source distribution. Everything is drawn from the per-client generator: deterministic.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor
from torch.nn import functional as F

from engine.data.base import PARTITIONERS, Dataset, Partitioner, PartitionParams
from engine.data.partitioners.iid_dirichlet import IID


class FeatureParams(PartitionParams):
    noise: float = Field(
        0.0, ge=0, le=5, description="additive Gaussian noise, in units of each feature's std"
    )
    scale: float = Field(0.5, ge=0, le=3, description="per-feature (per-channel) gain exp(scale * N(0,1))")
    offset: float = Field(
        0.0, ge=0, le=5, description="per-feature (per-channel) offset, in units of the std"
    )
    rotate: float = Field(0.0, ge=0, le=180, description="images: rotation up to this many degrees")
    spread: Literal["linear", "random"] = Field(
        "linear", description="strength per client: linear from 0 (client 0) to 1 (last), or uniform random"
    )


@PARTITIONERS.register("feature")
class Feature(Partitioner):
    description = (
        "Feature shift: iid labels, but each client sees its data with its own noise, scale, "
        "offset or rotation."
    )
    Params = FeatureParams
    shifts_features = True

    def split(
        self,
        data: Dataset,
        index: np.ndarray,
        n_clients: int,
        rng: np.random.Generator,
        shares: list[float | None],
    ) -> list[np.ndarray]:
        return IID(IID.Params()).split(data, index, n_clients, rng, shares)

    def strength(self, i: int, n_clients: int, rng: np.random.Generator) -> float:
        """Client ``i``'s shift strength in [0, 1]."""
        p: FeatureParams = self.params  # type: ignore[assignment]
        if p.spread == "random":
            return float(rng.random())
        return i / (n_clients - 1) if n_clients > 1 else 0.0

    def transform_client(self, i: int, n_clients: int, x: Tensor, rng: np.random.Generator) -> Tensor:
        p: FeatureParams = self.params  # type: ignore[assignment]
        s = self.strength(i, n_clients, rng)
        if s == 0 or len(x) == 0:
            return x
        image = x.ndim == 4
        axes = (0, 2, 3) if image else tuple(range(x.ndim - 1))
        shape = (1, x.shape[1], 1, 1) if image else (1,) * (x.ndim - 1) + (x.shape[-1],)
        mean = x.nanmean(dim=axes, keepdim=True)  # missing values (NaN) stay missing
        std = (x - mean).pow(2).nanmean(dim=axes, keepdim=True).sqrt().nan_to_num(1.0).clamp_min(1e-6)
        n_feat = x.shape[1] if image else x.shape[-1]
        gain = np.exp(s * p.scale * rng.standard_normal(n_feat))
        gain = torch.as_tensor(gain, dtype=x.dtype).reshape(shape)
        bias = torch.as_tensor(s * p.offset * rng.standard_normal(n_feat), dtype=x.dtype).reshape(shape) * std
        out = (x - mean) * gain + mean + bias
        if image and p.rotate > 0:
            angle = math.radians(s * p.rotate * (1 if rng.random() < 0.5 else -1))
            cos, sin = math.cos(angle), math.sin(angle)
            theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype).expand(len(x), 2, 3)
            grid = F.affine_grid(theta, list(out.shape), align_corners=False)
            out = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if p.noise > 0:
            g = torch.Generator().manual_seed(int(rng.integers(2**62)))
            out = out + s * p.noise * std * torch.randn(out.shape, generator=g, dtype=x.dtype)
        return out
