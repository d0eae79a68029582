"""The defence contract: how a server combines the clients' contributions when some may be hostile.

A :class:`Defence` sees one matrix per combination: the contributions of the clients that
reported, one row each (a flattened model or model update, one class's logits or prototype), their
weights (sample counts) and, where the strategy has one, the reference row (the previous global
value, from which updates are measured). It returns one row. :mod:`engine.robustness.combine`
calls it for every tensor group a strategy averages, so one defence chosen in the config applies to
every strategy that averages something: model weights (FedAvg and its family, FedDF, FML, FedKD,
SCAFFOLD), per-class logits (FD), public-set logits (FedMD) and prototypes (FedProto).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from torch import Tensor

from engine.registry import Registry


class DefenceParams(BaseModel):
    """Parameters of a defence; each defence extends it."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Combined:
    """One combination's result: the row, and per contributing row what the defence did to it."""

    row: Tensor
    kept: Tensor | None = None
    """1 for rows that took part in the result, 0 for rows left out (Krum); ``None``: all did."""
    scale: Tensor | None = None
    """The factor each row's deviation was multiplied by (norm clipping); ``None``: not clipped."""


class Defence:
    """A robust (or plain) rule combining contributions.

    :cvar individual: it must see each client's contribution, so it cannot run where the server
        only sees their sum (secure aggregation).
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    """The name shown in the app."""
    paper: ClassVar[str] = ""
    url: ClassVar[str] = ""
    description: ClassVar[str] = ""
    individual: ClassVar[bool] = True
    uses_weights: ClassVar[bool] = False
    """Whether sample counts weigh the result (a median or Krum's choice ignores them)."""
    Params: ClassVar[type[DefenceParams]] = DefenceParams

    def __init__(self, params: DefenceParams) -> None:
        self.params = params

    @classmethod
    def min_contributions(cls, params: DefenceParams) -> int:
        """The fewest contributions per combination with which the rule does what it promises
        (fewer still run, degraded; the compatibility check warns)."""
        return 1

    def combine(self, x: Tensor, weights: Tensor, reference: Tensor | None) -> Combined:
        """One row from the rows of ``x`` ``(K, P)`` with ``weights`` ``(K,)`` and the optional
        ``reference`` ``(P,)``."""
        raise NotImplementedError


DEFENCES: Registry[type[Defence]] = Registry("defence")
