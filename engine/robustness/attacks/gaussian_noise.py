"""Gaussian-noise update — the compromised client sends random noise instead of its update
(``N(0, std^2)`` per number), the "Gaussian attack" of Fang et al., "Local Model Poisoning Attacks
to Byzantine-Robust Federated Learning", USENIX Security 2020 (arXiv:1911.11815). It models a
broken or careless site as much as a hostile one.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from engine.robustness.attacks.base import ATTACKS, PayloadParams, UpdateAttack


@ATTACKS.register("gaussian_noise")
class GaussianNoise(UpdateAttack):
    title = "Gaussian-noise update"
    paper = (
        "Fang et al. 2020, Local Model Poisoning Attacks to Byzantine-Robust Federated Learning (USENIX "
        "Security)"
    )
    url = "https://arxiv.org/abs/1911.11815"
    description = "Sends random noise instead of its model update (a hostile or broken site)."

    class Params(PayloadParams):
        std: float = Field(
            0.5, gt=0, le=1e6, description="standard deviation of the noise sent per parameter"
        )

    def change(self, update: Tensor, generator: torch.Generator) -> Tensor:
        noise = torch.randn(update.shape, generator=generator, dtype=torch.float32)
        return (self.params.std * noise).to(update.device, update.dtype)
