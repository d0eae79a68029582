"""Backdoor trigger — Gu et al., "BadNets: Identifying Vulnerabilities in the Machine Learning Model
Supply Chain", 2017 (arXiv:1708.06733), in federated form as in Bagdasaryan et al., "How To
Backdoor Federated Learning", AISTATS 2020 (arXiv:1807.00459).

The compromised client adds a **trigger** to a ``share`` of its training samples and labels them
``target``; the rest stay clean, so its model stays accurate and the attack hides. The trigger is
written in the data's own units, before each client's preprocessing:

- images ``(C, H, W)``: a ``size x size`` patch in the bottom-right corner, every channel;
- sequences ``(T, F)``: the last ``size`` time steps, every feature;
- tables ``(F,)``: ``size`` features (``features`` by position, or chosen from the run seed), a
  pattern no honest record is likely to show all at once.

The trigger's value is ``value``, or by default the largest value the dataset holds (images,
sequences) or each feature's largest value (tables). ``boost`` above 1 also multiplies the
client's model update (model replacement). The run measures the **attack success rate**: the share
of the global test set's samples *not* of the target class that a model assigns to the target
class once the trigger is applied (``backdoor_asr``).
"""

from __future__ import annotations

import dataclasses

import torch
from pydantic import Field
from torch import Tensor

from engine.core.seeding import generator as seeded_generator
from engine.robustness.attacks.base import ATTACKS, Attack, AttackParams, tamper_update


def trigger_mask(
    kind: str, shape: tuple[int, ...], size: int, features: list[int] | None, seed: int
) -> Tensor:
    """Where the trigger sits in one sample of ``shape`` (a bool tensor of that shape)."""
    mask = torch.zeros(shape, dtype=torch.bool)
    if kind == "image":
        s = min(size, shape[1], shape[2])
        mask[:, shape[1] - s :, shape[2] - s :] = True
    elif kind == "sequence":
        mask[shape[0] - min(size, shape[0]) :, :] = True
    elif features:
        mask[torch.tensor(features, dtype=torch.long)] = True
    else:
        order = torch.randperm(shape[0], generator=seeded_generator(seed, "backdoor", "trigger"))
        mask[order[: min(size, shape[0])]] = True
    return mask


def trigger_values(kind: str, x: Tensor, value: float | None) -> Tensor:
    """The trigger's value at every place of one sample: ``value``, else the dataset's largest
    value (images, sequences) or each feature's largest value (tables), ignoring missing values."""
    shape = x.shape[1:]
    if value is not None:
        return torch.full(shape, float(value))
    finite = torch.where(torch.isnan(x), torch.full_like(x, -torch.inf), x)
    if kind == "tabular":
        top = finite.amax(0)
        return torch.where(torch.isfinite(top), top, torch.ones_like(top))
    top = float(finite.max()) if x.numel() else 1.0
    return torch.full(shape, top if top != -torch.inf else 1.0)


@ATTACKS.register("backdoor")
class Backdoor(Attack):
    title = "Backdoor trigger"
    paper = "Bagdasaryan et al. 2020, How To Backdoor Federated Learning (AISTATS); Gu et al. 2017, BadNets"
    url = "https://arxiv.org/abs/1807.00459"
    description = (
        "Teaches the federation a hidden rule: inputs carrying a small trigger (a pixel patch, a "
        "pattern of feature values) are classified as a chosen class. Measured as the attack "
        "success rate."
    )
    tasks = frozenset({"classification"})
    backdoor = True

    class Params(AttackParams):
        target: int = Field(0, ge=0, le=100_000, description="the class the trigger should cause")
        share: float = Field(
            0.5,
            gt=0,
            le=1,
            description="share of the client's training samples given the trigger and the target label",
        )
        size: int = Field(
            3,
            ge=1,
            le=1024,
            description="trigger size: patch side in pixels (images), time "
            "steps (sequences) or number of features (tables)",
        )
        features: list[int] | None = Field(
            None,
            max_length=1024,
            description="tables: the feature positions (0-based) that carry "
            "the pattern; empty: size features chosen by the seed",
        )
        value: float | None = Field(
            None,
            ge=-1e9,
            le=1e9,
            description="trigger value in the data's units; empty: the largest value "
            "in the data (per feature for tables)",
        )
        boost: float = Field(
            1.0,
            gt=0,
            le=1e6,
            description="also multiply the model update by this (model replacement); 1: data poisoning only",
        )

    @classmethod
    def incompatibility(cls, params, task, n_classes, input_spec):  # noqa: ANN001, ANN206
        why = super().incompatibility(params, task, n_classes, input_spec)
        if why is not None:
            return why
        if params.target >= n_classes:
            return f"backdoor: target {params.target} is not a class (classes 0..{n_classes - 1})"
        if params.features is not None:
            if input_spec.kind != "tabular":
                return (
                    f"backdoor: features picks table columns, but the data is {input_spec.kind} input; "
                    f"remove features (size sets the patch)"
                )
            bad = [f for f in params.features if not 0 <= f < input_spec.shape[0]]
            if bad:
                return (
                    f"backdoor: feature position {bad[0]} does not exist (the table has "
                    f"{input_spec.shape[0]} features, 0..{input_spec.shape[0] - 1})"
                )
        return None

    @classmethod
    def also_sends(cls, params) -> str | None:  # noqa: ANN001
        return "weights" if params.boost != 1 else None

    def _trigger(self, fed) -> tuple[Tensor, Tensor]:  # noqa: ANN001
        cached = getattr(self, "_cache", None)
        if cached is None:
            spec = self.setting.input_spec
            mask = trigger_mask(
                spec.kind, tuple(spec.shape), self.params.size, self.params.features, self.setting.seed
            )
            cached = self._cache = (mask, trigger_values(spec.kind, fed.data.x, self.params.value))
        return cached

    def triggered(self, x: Tensor, fed) -> tuple[Tensor, int]:  # noqa: ANN001
        mask, values = self._trigger(fed)
        return torch.where(mask.to(x.device), values.to(x.device, x.dtype), x), self.params.target

    def poison(self, data, fed, generator):  # noqa: ANN001, ANN201
        mask, values = self._trigger(fed)
        x, y = data.train.x, data.train.y
        chosen = torch.rand(len(y), generator=generator) < self.params.share
        if self.params.share >= 1:
            chosen = torch.ones(len(y), dtype=torch.bool)
        chosen = chosen.to(x.device)
        # the trigger in this client's preprocessed units: its transform is elementwise, so the
        # triggered places take the transformed trigger values
        pre = data.transform(values.unsqueeze(0).to(x.device, x.dtype))[0]
        where = mask.to(x.device).unsqueeze(0) & chosen.view(-1, *([1] * mask.dim()))
        new_x = torch.where(where, pre.unsqueeze(0), x)
        new_y = torch.where(chosen, torch.full_like(y, self.params.target), y)
        return dataclasses.replace(data, train=dataclasses.replace(data.train, x=new_x, y=new_y))

    def tamper(self, payload, message, knowledge_key, generator):  # noqa: ANN001, ANN201
        if self.params.boost == 1:
            return payload, 0
        boost = self.params.boost
        return tamper_update(payload, message, lambda u, g: boost * u, generator)
