"""Sign flipping — the compromised client sends its honest update reversed (and optionally
lengthened): ``-scale * update``, pushing the federation uphill on its own loss. Used as a
Byzantine attack by Li et al., "RSA: Byzantine-Robust Stochastic Aggregation Methods for
Distributed Learning from Heterogeneous Datasets", AAAI 2019 (arXiv:1811.03761).
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from engine.robustness.attacks.base import ATTACKS, PayloadParams, UpdateAttack


@ATTACKS.register("sign_flip")
class SignFlip(UpdateAttack):
    title = "Sign flipping"
    paper = (
        "Li et al. 2019, RSA: Byzantine-Robust Stochastic Aggregation Methods for Distributed Learning "
        "from Heterogeneous Datasets (AAAI)"
    )
    url = "https://arxiv.org/abs/1811.03761"
    description = "Sends its model update reversed (times a factor), pulling the federation the wrong way."

    class Params(PayloadParams):
        scale: float = Field(
            1.0, gt=0, le=1e6, description="length of the reversed update relative to the honest one"
        )

    def change(self, update: Tensor, generator) -> Tensor:  # noqa: ANN001
        return -self.params.scale * update
