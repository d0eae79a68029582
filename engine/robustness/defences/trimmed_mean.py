"""Coordinate-wise trimmed mean — Yin et al., "Byzantine-Robust Distributed Learning: Towards
Optimal Statistical Rates", ICML 2018 (arXiv:1803.01498).

For every number, the clients' values are sorted, the ``trim`` share at each end is dropped
(``floor(trim * K)`` values, never all of them) and the rest averaged. Tolerates a ``trim`` share
of hostile clients; sample counts are ignored.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from engine.robustness.aggregate import trim_count, trimmed_mean
from engine.robustness.defences.base import DEFENCES, Combined, Defence, DefenceParams


@DEFENCES.register("trimmed_mean")
class TrimmedMean(Defence):
    title = "Trimmed mean"
    paper = "Yin et al. 2018, Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates"
    url = "https://arxiv.org/abs/1803.01498"
    description = (
        "Each number is the mean of the clients' values after the highest and lowest share "
        "are dropped; tolerates that share of hostile clients."
    )

    class Params(DefenceParams):
        trim: float = Field(
            0.2,
            gt=0,
            lt=0.5,
            description="share of the clients' values dropped at each end "
            "(at least the share of hostile clients)",
        )

    @classmethod
    def min_contributions(cls, params: Params) -> int:
        k = 3
        while trim_count(k, params.trim) < 1 and k < 1000:
            k += 1
        return k

    def combine(self, x: Tensor, weights: Tensor, reference: Tensor | None) -> Combined:
        return Combined(trimmed_mean(x, trim_count(x.shape[0], self.params.trim)))
