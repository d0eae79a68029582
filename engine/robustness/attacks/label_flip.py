"""Label flipping — the data-poisoning attack of Tolpegin et al., "Data Poisoning Attacks Against
Federated Learning Systems", ESORICS 2020 (arXiv:2007.08432); Fang et al. 2020 use the
all-classes variant.

The compromised client trains honestly on wrong labels. By default every class ``c`` becomes
``C - 1 - c`` (on 10 classes: 0<->9, 1<->8, ...); with ``source`` and ``target`` only that class is
relabelled (a targeted flip: "show the model every 7 as a 1"). ``share`` flips only part of the
client's samples. The data is changed once, before round 1; the client's local test split stays
clean, so its own scores show what it learnt.
"""

from __future__ import annotations

import dataclasses

import torch
from pydantic import Field, model_validator

from engine.robustness.attacks.base import ATTACKS, Attack, AttackParams


@ATTACKS.register("label_flip")
class LabelFlip(Attack):
    title = "Label flipping"
    paper = "Tolpegin et al. 2020, Data Poisoning Attacks Against Federated Learning Systems (ESORICS)"
    url = "https://arxiv.org/abs/2007.08432"
    description = (
        "Trains on wrong labels: every class swapped with its mirror (0<->9, 1<->8...), or one "
        "chosen class relabelled as another."
    )
    tasks = frozenset({"classification"})

    class Params(AttackParams):
        source: int | None = Field(
            None, ge=0, le=100_000, description="only relabel this class (needs target); empty: every class"
        )
        target: int | None = Field(None, ge=0, le=100_000, description="the class source is relabelled as")
        share: float = Field(1.0, gt=0, le=1, description="share of the client's training samples relabelled")

        @model_validator(mode="after")
        def _pair(self):  # noqa: ANN202
            if (self.source is None) != (self.target is None):
                raise ValueError(
                    "give both source and target (relabel source as target), or neither "
                    "(swap every class with its mirror)"
                )
            if self.source is not None and self.source == self.target:
                raise ValueError(f"source and target are both {self.source}: nothing would change")
            return self

    @classmethod
    def incompatibility(cls, params, task, n_classes, input_spec):  # noqa: ANN001, ANN206
        why = super().incompatibility(params, task, n_classes, input_spec)
        if why is None:
            for field in ("source", "target"):
                value = getattr(params, field)
                if value is not None and value >= n_classes:
                    why = f"label flipping: {field} {value} is not a class (classes 0..{n_classes - 1})"
                    break
        return why

    def flip(self, y: torch.Tensor) -> torch.Tensor:
        """The wrong labels for ``y``."""
        if self.params.source is None:
            return self.setting.n_classes - 1 - y
        return torch.where(y == self.params.source, torch.full_like(y, self.params.target), y)

    def poison(self, data, fed, generator):  # noqa: ANN001, ANN201
        y = data.train.y
        chosen = torch.rand(len(y), generator=generator) < self.params.share
        if self.params.share >= 1:
            chosen = torch.ones(len(y), dtype=torch.bool)
        flipped = torch.where(chosen.to(y.device), self.flip(y), y)
        return dataclasses.replace(data, train=dataclasses.replace(data.train, y=flipped))
