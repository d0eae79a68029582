"""FedGH, federated global prediction header — Yi et al., "FedGH: Heterogeneous Federated Learning
with Generalized Global Header", ACM MM 2023 (arXiv:2305.13137).

Every model here is a body (any architecture) ending in a representation of width ``rep_dim`` and a
linear head ``rep_dim -> outputs``, so one head fits all. Each round a client replaces its head
with the **global head** it receives, trains its whole model on its data, and sends up its
per-class **prototypes** (mean representation of its training samples of each class, after
training) with the number of samples behind each. The server trains the global head on those
prototypes as labelled samples (one sample per client and class: cross-entropy, ``server_epochs``
full-batch steps of SGD with ``server_lr`` and momentum 0.9), and sends it back next round.

Clients are evaluated with their own body and the current global head (the model they would use
after receiving it), the paper's setting. The global head alone is not a complete model, so there
is no server model. Classification only. Bytes per round: ``C x (rep_dim + 1)`` floats up per
client, the head (``rep_dim x C + C``) down.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from engine.core.state import select_keys
from engine.strategies._distill import class_means, evaluate_outputs, reported_prototypes
from engine.strategies.base import STRATEGIES, ClientContext, ClientInfo, ClientResult, Kept, Params, Strategy

PROTOS, COUNTS = "prototypes", "proto_counts"


def train_head(
    head: dict[str, Tensor], protos: Tensor, labels: Tensor, *, epochs: int, lr: float, device: torch.device
) -> tuple[dict[str, Tensor], float]:
    """Train a linear head (``head.weight``, ``head.bias``) on prototype/label pairs with
    cross-entropy (full batch, SGD with momentum 0.9). Returns the new head and the final loss."""
    layer = nn.Linear(protos.shape[1], head["head.weight"].shape[0]).to(device)
    layer.load_state_dict({"weight": head["head.weight"], "bias": head["head.bias"]})
    x, y = protos.to(device), labels.to(device)
    opt = torch.optim.SGD(layer.parameters(), lr=lr, momentum=0.9)
    for _ in range(epochs):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(layer(x), y).backward()
        opt.step()
    with torch.no_grad():
        loss = float(F.cross_entropy(layer(x), y))
    return {
        "head.weight": layer.weight.detach().cpu().clone(),
        "head.bias": layer.bias.detach().cpu().clone(),
    }, loss


@STRATEGIES.register("fedgh")
class FedGH(Strategy):
    paper = "Yi et al. 2023, FedGH: Heterogeneous Federated Learning with Generalized Global Header"
    url = "https://arxiv.org/abs/2305.13137"
    family = "knowledge distillation"
    description = (
        "Clients send class prototypes; the server trains one global head on them and every "
        "client uses it on top of its own body. Any architecture."
    )
    same_architecture = False
    tasks = frozenset({"classification"})
    shared = ("head.",)
    sends = "prototypes"
    knowledge_key = PROTOS
    no_defence = (
        "fedgh trains its global head on every client's prototypes instead of averaging them, so "
        "no robust average applies; fedproto averages prototypes and can use one"
    )

    class Params(Params):
        server_epochs: int = Field(
            50,
            ge=1,
            le=10_000,
            description="full-batch steps training the global head on the prototypes per round",
        )
        server_lr: float = Field(0.1, gt=0, le=10, description="learning rate of the global head's SGD")

    def init(self) -> None:
        self.state["head"] = select_keys(self.server.initial_states(self.server.clients[0]), self.shared)

    def configure(self, client: ClientInfo) -> dict[str, Any]:
        return self.state["head"]

    @classmethod
    def private_payload(cls, params: Any, spec: Any) -> str | None:
        return (
            f"{cls.name} sends each client's per-class mean representations (prototypes), computed "
            f"from its private data, which DP-SGD does not protect"
        )

    def payload(self, ctx: ClientContext) -> dict[str, Any]:
        feats = evaluate_outputs(ctx.model, ctx.x, fn="features")
        means, counts = class_means(feats, ctx.y, ctx.model.n_out)
        return {PROTOS: means, COUNTS: counts}

    def aggregate(self, results: list[ClientResult]) -> None:
        reported = reported_prototypes(results, PROTOS, COUNTS)
        if reported is None:
            return
        self.state["head"], loss = train_head(
            self.state["head"],
            *reported,
            epochs=self.params.server_epochs,
            lr=self.params.server_lr,
            device=self.server.device,
        )
        self.state["head_loss"] = loss

    def server_models(self) -> dict[str, dict[str, Tensor]]:
        return {}

    def kept_federation(self) -> dict[str, Kept]:
        """The global head (it fits on any client's body)."""
        return {"all": Kept(self.state["head"], part="head")}
