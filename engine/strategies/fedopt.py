"""Server optimisers: FedAdam, FedYogi and FedAvgM — Reddi et al., "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295); server momentum (FedAvgM) after Hsu, Qi & Brown,
"Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification",
2019 (arXiv:1909.06335).

Clients train exactly as in FedAvg. The server treats the change of the averaged model,
``delta = mean_S(w_i) - x`` (the "pseudo-gradient", pointing downhill), as a gradient and feeds it
to an optimiser of its own (Algorithm 2 of Reddi et al., no bias correction):

- FedAvgM: ``m = beta * m + delta``;                         ``x += eta * m``
- FedAdam: ``m = b1 * m + (1 - b1) * delta``; ``v = b2 * v + (1 - b2) * delta^2``;
  ``x += eta * m / (sqrt(v) + tau)``
- FedYogi: as FedAdam but ``v = v - (1 - b2) * delta^2 * sign(v - delta^2)`` (``v`` grows more
  slowly, so the step shrinks less abruptly).

``v`` starts at ``tau^2``, ``m`` at zero. The moments live in ``self.state["optimizer"]``, so
checkpoints carry them and a resumed run continues with the same server momentum.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from engine.strategies.base import STRATEGIES
from engine.strategies.fedavg import FedAvg


class ServerOptimizer(FedAvg):
    """FedAvg whose server applies an optimiser step along ``avg - old`` (not registered)."""

    paper = "Reddi et al. 2021, Adaptive Federated Optimization (ICLR)"
    url = "https://arxiv.org/abs/2003.00295"
    family = "parameter sharing"

    class Params(FedAvg.Params):
        server_lr: float = Field(1.0, gt=0, le=10, description="server learning rate eta")

    def server_update(self, group: str, old: dict[str, Tensor], avg: dict[str, Tensor]) -> dict[str, Tensor]:
        """One server optimiser step per floating tensor; integer tensors take the average."""
        states: dict[str, dict[str, Tensor]] = self.state.setdefault("optimizer", {}).setdefault(group, {})
        new: dict[str, Tensor] = {}
        for key, value in avg.items():
            if not value.is_floating_point():
                new[key] = value
                continue
            x = old[key].to(torch.float32)
            delta = value.to(torch.float32) - x
            slot = states.get(key)
            if slot is None:
                slot = states[key] = self.init_slot(delta)
            new[key] = (x + self.step(slot, delta)).to(value.dtype)
        return new

    def init_slot(self, like: Tensor) -> dict[str, Tensor]:
        """Fresh optimiser state for one tensor."""
        return {"m": torch.zeros_like(like)}

    def step(self, slot: dict[str, Tensor], delta: Tensor) -> Tensor:
        """Update ``slot`` in place from the pseudo-gradient; return the change to apply."""
        raise NotImplementedError


@STRATEGIES.register("fedavgm")
class FedAvgM(ServerOptimizer):
    paper = (
        "Hsu et al. 2019, Measuring the Effects of Non-Identical Data Distribution for Federated "
        "Visual Classification; as a server optimiser in Reddi et al. 2021"
    )
    url = "https://arxiv.org/abs/1909.06335"
    description = (
        "FedAvg with momentum on the server: consecutive rounds' average changes accumulate, "
        "smoothing skewed rounds. Needs one architecture."
    )

    class Params(ServerOptimizer.Params):
        momentum: float = Field(
            0.9, ge=0, lt=1, description="server momentum beta (0 = FedAvg with a server lr)"
        )

    def step(self, slot: dict[str, Tensor], delta: Tensor) -> Tensor:
        slot["m"].mul_(self.params.momentum).add_(delta)
        return self.params.server_lr * slot["m"]


class Adaptive(ServerOptimizer):
    """Shared by FedAdam and FedYogi: first and second moments of the pseudo-gradient."""

    class Params(ServerOptimizer.Params):
        server_lr: float = Field(
            0.03, gt=0, le=10, description="server learning rate eta (per-coordinate step is about eta)"
        )
        beta1: float = Field(0.9, ge=0, lt=1, description="decay of the first moment (momentum)")
        beta2: float = Field(0.99, ge=0, lt=1, description="decay of the second moment")
        tau: float = Field(
            1e-3, gt=0, le=1, description="adaptivity: added to sqrt(v); larger = closer to FedAvgM"
        )

    def init_slot(self, like: Tensor) -> dict[str, Tensor]:
        return {"m": torch.zeros_like(like), "v": torch.full_like(like, self.params.tau**2)}

    def second_moment(self, v: Tensor, g2: Tensor) -> None:
        """Update ``v`` in place from the squared pseudo-gradient."""
        raise NotImplementedError

    def step(self, slot: dict[str, Tensor], delta: Tensor) -> Tensor:
        p = self.params
        slot["m"].mul_(p.beta1).add_(delta, alpha=1 - p.beta1)
        self.second_moment(slot["v"], delta * delta)
        return p.server_lr * slot["m"] / (slot["v"].sqrt() + p.tau)


@STRATEGIES.register("fedadam")
class FedAdam(Adaptive):
    description = (
        "FedAvg whose server takes Adam steps along the average client change: per-parameter "
        "step sizes, robust to badly scaled updates. Needs one architecture."
    )

    def second_moment(self, v: Tensor, g2: Tensor) -> None:
        v.mul_(self.params.beta2).add_(g2, alpha=1 - self.params.beta2)


@STRATEGIES.register("fedyogi")
class FedYogi(Adaptive):
    description = (
        "FedAdam with Yogi's additive second-moment update, which shrinks the step less "
        "abruptly when updates grow. Needs one architecture."
    )

    def second_moment(self, v: Tensor, g2: Tensor) -> None:
        v.sub_((1 - self.params.beta2) * g2 * torch.sign(v - g2))
