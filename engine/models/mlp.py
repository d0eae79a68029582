"""Multi-layer perceptron: flattens any input (image, sequence, tabular) and applies ``depth``
fully connected ReLU layers. The baseline every federated-learning paper starts from."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from engine.models.base import ARCHITECTURES, Architecture, ArchParams, InputSpec, scaled


@ARCHITECTURES.register("mlp")
class MLP(Architecture):
    kinds = frozenset({"image", "sequence", "tabular"})
    description = "Fully connected network on the flattened input."
    how_it_reads = {k: "flattened to one vector" for k in kinds}

    class Params(ArchParams):
        hidden: int = Field(128, ge=4, le=4096, description="units per hidden layer (before width)")
        depth: int = Field(2, ge=1, le=8, description="number of hidden layers")

    @classmethod
    def body(cls, params: Params, spec: InputSpec, rep_dim: int) -> nn.Module:
        hidden = scaled(params.hidden, params.width)
        layers: list[nn.Module] = [nn.Flatten()]
        width_in = spec.numel
        for _ in range(params.depth - 1):
            layers += [nn.Linear(width_in, hidden), nn.ReLU()]
            width_in = hidden
        layers += [nn.Linear(width_in, rep_dim), nn.ReLU()]
        return nn.Sequential(*layers)
