"""Scaled update (model replacement) — Bagdasaryan et al., "How To Backdoor Federated Learning",
AISTATS 2020 (arXiv:1807.00459).

The compromised client multiplies its update by ``boost`` before sending it, so that after the
server's average its model dominates (with ``boost`` about the number of clients per round, the
average is replaced by the attacker's model). On honest data this alone destabilises training; with
a backdoor (the backdoor attack's own ``boost``) it plants the trigger in one round.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from engine.robustness.attacks.base import ATTACKS, PayloadParams, UpdateAttack


@ATTACKS.register("scaled_update")
class ScaledUpdate(UpdateAttack):
    title = "Scaled update (model replacement)"
    paper = "Bagdasaryan et al. 2020, How To Backdoor Federated Learning (AISTATS)"
    url = "https://arxiv.org/abs/1807.00459"
    description = "Sends its model update multiplied by a large factor, so it outweighs every honest client."

    class Params(PayloadParams):
        boost: float = Field(
            10.0,
            gt=0,
            le=1e6,
            description="factor the update is multiplied by "
            "(about the number of clients per round replaces the average)",
        )

    def change(self, update: Tensor, generator) -> Tensor:  # noqa: ANN001
        return self.params.boost * update
