"""Poisoned logits — for strategies that share what models say instead of weights (FD's per-class
mean logits, FedMD's scores on the public set). The compromised client trains honestly and lies
about its outputs: ``flip`` reverses the class order (its logits favour class ``C - 1 - c`` where
its model favours ``c``, times ``scale`` to sound confident); ``noise`` adds ``N(0, std^2)``.
Poisoned predictions in knowledge transfer, and a robust mean of them as the defence, are studied
by Chang et al., "Cronus: Robust and Heterogeneous Collaborative Learning with Black-Box Knowledge
Transfer", 2019 (arXiv:1912.11279).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from engine.robustness.attacks.base import ATTACKS, KnowledgeAttack, PayloadParams


@ATTACKS.register("poisoned_logits")
class PoisonedLogits(KnowledgeAttack):
    title = "Poisoned logits"
    paper = (
        "Chang et al. 2019, Cronus: Robust and Heterogeneous Collaborative Learning with Black-Box "
        "Knowledge Transfer"
    )
    url = "https://arxiv.org/abs/1912.11279"
    description = (
        "For strategies that share outputs (fd, fedmd): sends logits that favour the wrong class, "
        "or noisy ones."
    )
    acts_on = "logits"
    tasks = frozenset({"classification"})

    class Params(PayloadParams):
        mode: Literal["flip", "noise"] = Field(
            "flip", description="flip: favour the mirror class; noise: add Gaussian noise"
        )
        scale: float = Field(
            3.0, gt=0, le=1e6, description="flip: factor the reversed logits are multiplied by"
        )
        std: float = Field(5.0, gt=0, le=1e6, description="noise: standard deviation added to every logit")

    def poison_knowledge(self, value: Tensor, generator: torch.Generator) -> Tensor:
        if self.params.mode == "flip":
            return self.params.scale * value.flip(-1)
        noise = torch.randn(value.shape, generator=generator, dtype=torch.float32)
        return value + (self.params.std * noise).to(value.device, value.dtype)
