"""Norm clipping (norm bounding) — Sun et al., "Can You Really Backdoor Federated Learning?",
2019 (arXiv:1911.07963).

Each client's update (its contribution minus the current global value) is scaled down to an L2
norm of at most ``max_norm`` before the usual sample-weighted average, so no client can move the
result further than that: it blunts scaled (model-replacement) updates and boosted backdoors, not
small poisoned ones. Without a ``max_norm`` the bound is the median of the round's update norms
(adaptive: honest updates shrink as training converges). Where no global value exists yet (the
first round's prototypes, FedMD's public-set logits) deviations are measured from the
coordinate-wise median.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from engine.robustness.aggregate import clip_rows, coordinate_median, row_norms, weighted_rows_mean
from engine.robustness.defences.base import DEFENCES, Combined, Defence, DefenceParams


@DEFENCES.register("norm_clip")
class NormClip(Defence):
    title = "Norm clipping"
    paper = "Sun et al. 2019, Can You Really Backdoor Federated Learning?"
    url = "https://arxiv.org/abs/1911.07963"
    description = (
        "Scales every client's update down to a maximum length before averaging (by default the "
        "round's median length), so no single client can move the result far."
    )
    uses_weights = True

    class Params(DefenceParams):
        max_norm: float | None = Field(
            None,
            gt=0,
            le=1e9,
            description="largest update length (L2 norm) kept; empty: the median "
            "of the round's update lengths",
        )

    def combine(self, x: Tensor, weights: Tensor, reference: Tensor | None) -> Combined:
        centre = reference if reference is not None else coordinate_median(x)
        bound = self.params.max_norm
        if bound is None:
            bound = float(row_norms(x, centre).median())
        clipped, factor = clip_rows(x, centre, bound)
        return Combined(weighted_rows_mean(clipped, weights), scale=factor)
