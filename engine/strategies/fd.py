"""FD, Federated Distillation — Jeong et al., "Communication-Efficient On-Device Machine Learning:
Federated Distillation and Augmentation under Non-IID Private Data", NeurIPS-W 2018
(arXiv:1811.11479).

Clients exchange no weights, only what their models say about each class: every client sends its
**per-class mean logits** (an ``n_classes x n_classes`` table: row ``c`` is the mean output of its
model on its training samples of class ``c``) and the number of samples behind each row. The server
merges the tables count-weighted per class. In local training each sample of class ``y`` adds a
distillation term pulling the client's output towards the global mean logit of class ``y``::

    loss = CE(f(x), y) + kd_weight * T^2 * KL(softmax(g_y / T) || softmax(f(x) / T))

Choices: the client's tables are computed after its local training, in eval mode, over its whole
training split (the paper accumulates them during training; after training they describe the model
that is sent). The global table includes the client's own contribution (the paper's variant that
subtracts it is equivalent up to a 1/K term with many clients). Classes no client reported this
round keep their previous global rows. No public data is needed; bytes per round are ``C x (C+1)``
floats each way, independent of model size. Classification only (the table is indexed by class).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from torch import Tensor

from engine.strategies._distill import (
    KnowledgeSharing,
    class_means,
    class_table_message,
    evaluate_outputs,
    kd_loss,
    keep_missing,
)
from engine.strategies.base import STRATEGIES, ClientContext, ClientInfo, ClientResult, Params

LOGITS, COUNTS = "class_logits", "class_counts"


@STRATEGIES.register("fd")
class FD(KnowledgeSharing):
    paper = (
        "Jeong et al. 2018, Communication-Efficient On-Device Machine Learning: Federated "
        "Distillation and Augmentation under Non-IID Private Data"
    )
    url = "https://arxiv.org/abs/1811.11479"
    description = (
        "Clients share per-class mean logits; each pulls its outputs on class y towards the "
        "federation's mean logit of y. Tiny messages, any architecture, no public data."
    )
    tasks = frozenset({"classification"})
    sends = "logits"
    knowledge_key = LOGITS
    deviations = (
        "Per-class logits are averaged after local training over the client's whole training split "
        "(the paper accumulates them during training), and the global table includes the client's own "
        "contribution (the paper subtracts it; the difference is a 1/K term)."
    )

    class Params(Params):
        kd_weight: float = Field(
            1.0, ge=0, le=100, description="weight of the pull towards the global per-class logits"
        )
        temperature: float = Field(
            1.0, gt=0, le=20, description="softmax temperature of the distillation term"
        )

    def configure(self, client: ClientInfo) -> dict[str, Any]:
        return class_table_message(self.state, LOGITS, COUNTS)

    @classmethod
    def private_payload(cls, params: Any, spec: Any) -> str | None:
        return (
            f"{cls.name} sends each client's per-class mean logits and class counts, computed from its "
            f"private data, which DP-SGD does not protect"
        )

    def local_loss(self, ctx: ClientContext, x: Tensor, y: Tensor) -> Tensor:
        out = ctx.model(x)
        loss = ctx.loss(out, y)
        table = ctx.received.get(LOGITS)
        if table is None or self.params.kd_weight == 0:
            return loss
        known = ctx.received[COUNTS][y] > 0
        if known.any():
            kd = kd_loss(out[known], table[y[known]], self.params.temperature)
            loss = loss + self.params.kd_weight * kd * known.float().mean()
        return loss

    def payload(self, ctx: ClientContext) -> dict[str, Any]:
        logits = evaluate_outputs(ctx.model, ctx.x)
        means, counts = class_means(logits, ctx.y, logits.shape[1])
        table = ctx.received.get(LOGITS)
        if table is not None:
            known = ctx.received[COUNTS][ctx.y] > 0
            if known.any():  # how far the trained model still is from the federation's knowledge
                ctx.metrics["kd_loss"] = float(
                    kd_loss(logits[known], table[ctx.y[known]], self.params.temperature)
                )
        return {LOGITS: means, COUNTS: counts}

    def aggregate(self, results: list[ClientResult]) -> None:
        results = [r for r in results if LOGITS in r.payload]
        if not results:
            return
        old = (self.state[LOGITS], self.state[COUNTS]) if self.state.get(LOGITS) is not None else None
        means, counts = self.server.combine.class_means(
            [r.payload[LOGITS] for r in results],
            [r.payload[COUNTS] for r in results],
            reference=old,
            who=[r.client.id for r in results],
        )
        self.state[LOGITS], self.state[COUNTS] = keep_missing(
            means, counts, self.state.get(LOGITS), self.state.get(COUNTS)
        )
