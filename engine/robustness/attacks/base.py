"""The attack contract: what a compromised client does, through the seams every strategy has.

An attack acts at one of two places, never inside a strategy:

- **its data** (``acts_on = "data"``): :meth:`Attack.poison` returns the client's training split
  changed (flipped labels, a backdoor trigger). The change is made once, when the run is set up,
  so every executor and every strategy trains on it as on honest data.
- **its payload going up** (``"weights"``, ``"logits"``, ``"prototypes"``): :meth:`Attack.tamper`
  returns the message the client sends after its honest local work, changed. Model attacks work on
  the *update*: the payload's tensors minus what the client received (matched by name and shape);
  knowledge attacks change the strategy's knowledge entry (``Strategy.knowledge_key``: logits
  whose last dimension is the classes, or prototypes whose first dimension is).

Which strategies an attack can reach follows from what the strategy sends (``Strategy.sends``);
:func:`engine.robustness.check.problems` says why an attack cannot apply before a run starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from engine.registry import Registry

if TYPE_CHECKING:
    from engine.data import ClientData, Federation
    from engine.models import InputSpec


class AttackParams(BaseModel):
    """Parameters of an attack; each attack extends it."""

    model_config = ConfigDict(extra="forbid")


class PayloadParams(AttackParams):
    """Parameters of attacks on the payload: when they start."""

    start_round: int = Field(
        1, ge=1, le=100_000, description="first round the client attacks (honest before)"
    )


@dataclass(frozen=True)
class AttackSetting:
    """What an attack knows about the federation it attacks (fixed for the run)."""

    client: int
    task: str
    n_classes: int
    input_spec: InputSpec
    seed: int


class Attack:
    """What one compromised client does. Subclasses set ``acts_on`` and override
    :meth:`poison` (data) or :meth:`tamper` (payload)."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    """The name shown in the app."""
    paper: ClassVar[str] = ""
    url: ClassVar[str] = ""
    description: ClassVar[str] = ""
    acts_on: ClassVar[str] = "data"
    """``data``, ``weights``, ``logits`` or ``prototypes``."""
    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})
    backdoor: ClassVar[bool] = False
    """Whether it plants a trigger whose success rate the run measures (:meth:`triggered`)."""
    Params: ClassVar[type[AttackParams]] = AttackParams

    def __init__(self, params: AttackParams, setting: AttackSetting) -> None:
        self.params = params
        self.setting = setting

    # ---- before the run -------------------------------------------------------------------------
    @classmethod
    def incompatibility(
        cls, params: AttackParams, task: str, n_classes: int, input_spec: InputSpec
    ) -> str | None:
        """Why these parameters cannot attack this data (a class index out of range...), or
        ``None``. The strategy's side is checked by :mod:`engine.robustness.check`."""
        if task not in cls.tasks:
            return f"{cls.title or cls.name} needs a {' or '.join(sorted(cls.tasks))} task, not {task}"
        return None

    @classmethod
    def also_sends(cls, params: AttackParams) -> str | None:
        """A payload kind a data attack also changes with these parameters (the backdoor's boosted
        update: ``"weights"``), or ``None``."""
        return None

    # ---- the seams ------------------------------------------------------------------------------
    def poison(self, data: ClientData, fed: Federation, generator: torch.Generator) -> ClientData:
        """The client's data as it trains on it (default: unchanged). Never changes ``data``'s
        tensors in place (they may be shared)."""
        return data

    def active(self, rnd: int) -> bool:
        """Whether :meth:`tamper` acts in round ``rnd``."""
        return rnd >= getattr(self.params, "start_round", 1)

    def tamper(
        self,
        payload: dict[str, Any],
        message: Mapping[str, Any],
        knowledge_key: str | None,
        generator: torch.Generator,
    ) -> tuple[dict[str, Any], int]:
        """The payload the client sends instead of ``payload`` (default: unchanged), and how many
        tensors were changed (0 tells the run the attack found nothing to change)."""
        return payload, 0

    # ---- measuring ------------------------------------------------------------------------------
    def triggered(self, x: Tensor, fed: Federation) -> tuple[Tensor, int]:
        """Raw inputs with this attack's trigger applied, and the class it should cause (backdoor
        attacks only)."""
        raise NotImplementedError


class UpdateAttack(Attack):
    """An attack on a model update: every floating payload tensor that the client also received
    (same name and shape) is replaced by ``received + change(payload - received)``."""

    acts_on = "weights"
    Params: ClassVar[type[AttackParams]] = PayloadParams

    def change(self, update: Tensor, generator: torch.Generator) -> Tensor:
        """The update to send instead of the honest ``update`` (one tensor)."""
        raise NotImplementedError

    def tamper(
        self,
        payload: dict[str, Any],
        message: Mapping[str, Any],
        knowledge_key: str | None,
        generator: torch.Generator,
    ) -> tuple[dict[str, Any], int]:
        return tamper_update(payload, message, self.change, generator)


def tamper_update(
    payload: dict[str, Any], message: Mapping[str, Any], change: Any, generator: torch.Generator
) -> tuple[dict[str, Any], int]:
    """``payload`` with each floating tensor that ``message`` holds under the same name and shape
    replaced by ``message[k] + change(payload[k] - message[k], generator)``; the number changed."""
    out = dict(payload)
    n = 0
    for key, value in payload.items():
        ref = message.get(key)
        if (
            isinstance(value, Tensor)
            and isinstance(ref, Tensor)
            and value.is_floating_point()
            and ref.shape == value.shape
        ):
            ref = ref.to(value.device, value.dtype)
            out[key] = ref + change(value - ref, generator)
            n += 1
    return out, n


class KnowledgeAttack(Attack):
    """An attack on the strategy's knowledge entry (logits or prototypes)."""

    Params: ClassVar[type[AttackParams]] = PayloadParams

    def poison_knowledge(self, value: Tensor, generator: torch.Generator) -> Tensor:
        """The logits or prototypes to send instead of ``value``."""
        raise NotImplementedError

    def tamper(
        self,
        payload: dict[str, Any],
        message: Mapping[str, Any],
        knowledge_key: str | None,
        generator: torch.Generator,
    ) -> tuple[dict[str, Any], int]:
        if knowledge_key is None or not isinstance(payload.get(knowledge_key), Tensor):
            return payload, 0
        return {**payload, knowledge_key: self.poison_knowledge(payload[knowledge_key], generator)}, 1


ATTACKS: Registry[type[Attack]] = Registry("attack")
