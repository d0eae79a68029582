"""Coordinate-wise median — Yin et al., "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018 (arXiv:1803.01498).

Every number of the result is the median of the clients' values for it. It tolerates fewer than
half of the clients being hostile; sample counts are ignored (a client cannot buy influence by
claiming data), and with strongly skewed honest clients it averages less well than the mean.
"""

from __future__ import annotations

from torch import Tensor

from engine.robustness.aggregate import coordinate_median
from engine.robustness.defences.base import DEFENCES, Combined, Defence


@DEFENCES.register("median")
class Median(Defence):
    title = "Coordinate median"
    paper = "Yin et al. 2018, Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates"
    url = "https://arxiv.org/abs/1803.01498"
    description = "Each number is the median of the clients' values; tolerates up to half hostile clients."

    @classmethod
    def min_contributions(cls, params) -> int:
        return 3

    def combine(self, x: Tensor, weights: Tensor, reference: Tensor | None) -> Combined:
        return Combined(coordinate_median(x))
