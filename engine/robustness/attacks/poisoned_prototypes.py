"""Poisoned prototypes — for strategies that share per-class mean representations (FedProto,
FedGH, FedTGP). The compromised client trains honestly and lies about its prototypes: ``flip``
reports class ``c``'s prototype as class ``C - 1 - c``'s (the classes' places in representation
space swapped); ``scale`` multiplies them (dragging the class means away); ``noise`` adds
``N(0, std^2)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from engine.robustness.attacks.base import ATTACKS, KnowledgeAttack, PayloadParams


@ATTACKS.register("poisoned_prototypes")
class PoisonedPrototypes(KnowledgeAttack):
    title = "Poisoned prototypes"
    description = (
        "For strategies that share class prototypes (fedproto, fedgh, fedtgp): swaps the classes' "
        "prototypes, inflates them, or adds noise."
    )
    acts_on = "prototypes"
    tasks = frozenset({"classification"})

    class Params(PayloadParams):
        mode: Literal["flip", "scale", "noise"] = Field(
            "flip", description="flip: swap classes with their mirror; scale: multiply; noise: add noise"
        )
        scale: float = Field(10.0, gt=0, le=1e6, description="scale: factor the prototypes are multiplied by")
        std: float = Field(1.0, gt=0, le=1e6, description="noise: standard deviation added to every number")

    def poison_knowledge(self, value: Tensor, generator: torch.Generator) -> Tensor:
        if self.params.mode == "flip":
            return value.flip(0)
        if self.params.mode == "scale":
            return self.params.scale * value
        noise = torch.randn(value.shape, generator=generator, dtype=torch.float32)
        return value + (self.params.std * noise).to(value.device, value.dtype)
