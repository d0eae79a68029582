"""FedRep — Collins et al., "Exploiting Shared Representations for Personalized Federated
Learning", ICML 2021 (arXiv:2102.07078).

Like FedPer, the body is shared and the head personal, but the local update is split in two: first
``head_epochs`` of training the head with the body frozen (fit the personal classifier to the
current shared representation), then ``body_epochs`` of training the body with the head frozen.
Only the body is sent. Mixed rosters are grouped by model, as in FedPer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from pydantic import Field
from torch import nn

from engine.strategies.base import STRATEGIES, ClientContext
from engine.strategies.fedper import FedPer


@contextmanager
def frozen(params: Sequence[nn.Parameter]) -> Iterator[None]:
    """Turn off gradients of ``params`` for the block (saves their backward pass), then restore."""
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


@STRATEGIES.register("fedrep")
class FedRep(FedPer):
    paper = (
        "Collins et al. 2021, Exploiting Shared Representations for Personalized Federated Learning (ICML)"
    )
    url = "https://arxiv.org/abs/2102.07078"
    description = (
        "Share the body; each round a client first fits its personal head on the frozen body, "
        "then trains the body with the head frozen. Mixed rosters: grouped by model."
    )

    class Params(FedPer.Params):
        head_epochs: int = Field(
            2, ge=1, le=100, description="epochs training the personal head (body frozen)"
        )
        body_epochs: int | None = Field(
            None,
            ge=1,
            le=100,
            description="epochs training the shared body (head frozen); empty: the client's own epochs",
        )

    def local_update(self, ctx: ClientContext) -> None:
        """Head first on the frozen body, then the body under the fixed head."""
        head = list(ctx.model.head.parameters())
        body = list(ctx.model.body.parameters())
        with frozen(body):
            ctx.fit(params=head, epochs=self.params.head_epochs)
        with frozen(head):
            ctx.fit(params=body, epochs=self.params.body_epochs or ctx.spec.epochs)
