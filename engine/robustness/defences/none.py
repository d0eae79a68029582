"""No defence: the strategy's own sample-weighted average (FedAvg's rule, McMahan et al. 2017)."""

from __future__ import annotations

from torch import Tensor

from engine.robustness.aggregate import weighted_rows_mean
from engine.robustness.defences.base import DEFENCES, Combined, Defence


@DEFENCES.register("none")
class NoDefence(Defence):
    title = "None (plain average)"
    description = (
        "The strategy's own average, weighted by sample counts; one hostile client can move it anywhere."
    )
    individual = False
    uses_weights = True

    def combine(self, x: Tensor, weights: Tensor, reference: Tensor | None) -> Combined:
        return Combined(weighted_rows_mean(x, weights))
