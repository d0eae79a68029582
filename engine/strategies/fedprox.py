"""FedProx — Li et al., "Federated Optimization in Heterogeneous Networks", MLSys 2020
(arXiv:1812.06127).

FedAvg plus a proximal term in every client's objective,

    h_k(w) = F_k(w) + mu / 2 * ||w - w^t||^2,

which keeps a client's local model near the global model ``w^t`` it started the round from, so
clients with skewed data or many local steps drift less. ``mu = 0`` is exactly FedAvg (the term is
skipped, not multiplied by zero). Aggregation is FedAvg's sample-weighted mean.

The anchor ``w^t`` is what the client held when local training began: the global model it just
received, or, for a late joiner that cold-starts, its own fresh initialisation (pulling a cold
starter towards a model it never loaded would make it a warm start in disguise).
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from engine.strategies.base import STRATEGIES, ClientContext
from engine.strategies.fedavg import FedAvg


@STRATEGIES.register("fedprox")
class FedProx(FedAvg):
    paper = "Li et al. 2020, Federated Optimization in Heterogeneous Networks (MLSys)"
    url = "https://arxiv.org/abs/1812.06127"
    family = "parameter sharing"
    description = (
        "FedAvg with a proximal term mu/2·||w − w_global||² that keeps each client near the "
        "global model; helps with skewed data. Needs one architecture."
    )

    class Params(FedAvg.Params):
        mu: float = Field(
            0.01,
            ge=0,
            le=100,
            description="weight of the proximal term (0 = plain FedAvg; 0.001-1 is typical)",
        )

    def local_update(self, ctx: ClientContext) -> None:
        """Remember the starting point of the shared parameters, then train as FedAvg does."""
        if self.params.mu > 0:
            ctx.scratch["anchor"] = {
                name: p.detach().clone() for name, p in ctx.model.named_parameters() if name in ctx.received
            }
        super().local_update(ctx)

    def local_loss(self, ctx: ClientContext, x: Tensor, y: Tensor) -> Tensor:
        """The task loss plus ``mu / 2`` times the squared distance to the round's anchor."""
        loss = super().local_loss(ctx, x, y)
        anchor = ctx.scratch.get("anchor")
        if not anchor:
            return loss
        drift = sum(
            (p - anchor[name]).pow(2).sum() for name, p in ctx.model.named_parameters() if name in anchor
        )
        return loss + self.params.mu / 2 * drift
