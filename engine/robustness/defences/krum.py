"""Krum and multi-Krum — Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant
Gradient Descent", NeurIPS 2017.

Each client's contribution is scored by the sum of its squared distances to its ``K - f - 2``
nearest others (``f`` = hostile clients to tolerate): hostile contributions far from the honest
crowd score high. Krum keeps the single lowest-scoring contribution; multi-Krum averages the ``m``
lowest (weighted by sample counts), which keeps more of the honest clients' information. The
guarantee needs ``K >= 2f + 3`` contributions; with fewer the score uses the neighbours there are.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from engine.robustness.aggregate import krum_select, weighted_rows_mean
from engine.robustness.defences.base import DEFENCES, Combined, Defence, DefenceParams


class KrumParams(DefenceParams):
    attackers: int = Field(1, ge=0, le=1000, description="hostile clients per round it must tolerate (f)")


@DEFENCES.register("krum")
class Krum(Defence):
    title = "Krum"
    paper = "Blanchard et al. 2017, Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent"
    url = "https://papers.nips.cc/paper/6617-machine-learning-with-adversaries-byzantine-tolerant-gradient-descent"
    description = (
        "Keeps the one contribution closest to its nearest neighbours; hostile outliers are never "
        "chosen, but the result is a single client's."
    )

    Params = KrumParams

    @classmethod
    def min_contributions(cls, params: KrumParams) -> int:
        return 2 * params.attackers + 3

    def keep(self, k: int) -> int:
        return 1

    def combine(self, x: Tensor, weights: Tensor, reference: Tensor | None) -> Combined:
        chosen = krum_select(x, self.params.attackers, self.keep(x.shape[0]))
        kept = torch.zeros(x.shape[0])
        kept[chosen] = 1.0
        return Combined(weighted_rows_mean(x[chosen], weights[chosen]), kept=kept)


@DEFENCES.register("multi_krum")
class MultiKrum(Krum):
    title = "Multi-Krum"
    description = (
        "Averages the contributions with the best Krum scores (all but the tolerated number of "
        "hostile clients, or a number you choose)."
    )
    uses_weights = True

    class Params(KrumParams):
        keep: int | None = Field(
            None,
            ge=1,
            le=10_000,
            description="contributions averaged (m); empty: all but the tolerated attackers",
        )

    def keep(self, k: int) -> int:
        m = self.params.keep if self.params.keep is not None else k - self.params.attackers
        return max(1, min(k, m))
