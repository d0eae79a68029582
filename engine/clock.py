"""Simulated system heterogeneity on a virtual clock (placeholder: every client always available,
no simulated time). The hardware module replaces this with device tiers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.strategies.base import ClientInfo, ClientResult


@dataclass
class ClientPlan:
    """What the clock decided for one selected client before it trains."""

    dropped: bool = False
    work_fraction: float = 1.0
    reason: str = ""


@dataclass
class RoundTiming:
    """The clock's verdict on a finished round."""

    kept: list[ClientResult]
    round_metrics: dict[str, float] = field(default_factory=dict)
    client_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)


class VirtualClock:
    """The virtual clock interface the round loop calls."""

    def __init__(self, config: Any, clients: list[ClientInfo], flops: dict[int, int]) -> None:
        self.config = config
        self.clients = clients
        self.flops = flops
        self.elapsed = 0.0

    def online(self, rnd: int, candidates: list[ClientInfo], rng: np.random.Generator) -> list[ClientInfo]:
        """The candidates that are online this round."""
        return candidates

    def plan(self, rnd: int, selected: list[ClientInfo], down_bytes: dict[int, int],
             rng: np.random.Generator) -> dict[int, ClientPlan]:
        """Per selected client: dropped before finishing, or how much of its work it will do."""
        return {c.id: ClientPlan() for c in selected}

    def settle(self, rnd: int, results: list[ClientResult], plans: dict[int, ClientPlan],
               up_bytes: dict[int, int], down_bytes: dict[int, int]) -> RoundTiming:
        """Which results the server accepts, and the simulated times."""
        return RoundTiming(kept=results)

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.elapsed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.elapsed = float(state.get("elapsed", 0.0))
