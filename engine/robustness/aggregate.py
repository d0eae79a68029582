"""Robust aggregation maths as pure functions over plain tensors: no strategy, no config.

Every function takes the clients' contributions stacked as rows of one matrix ``x`` of shape
``(K, P)`` (K clients, P numbers each: a flattened model update, one class's logits or prototype)
and returns one row ``(P,)`` or the rows it keeps. Flattening, per-class splitting and putting the
result back into a state dict is :mod:`engine.robustness.combine`'s job.

- :func:`coordinate_median` — Yin et al. 2018 (arXiv:1803.01498): per coordinate, the median over
  clients (the mean of the two middle values when K is even).
- :func:`trimmed_mean` — Yin et al. 2018: per coordinate, drop the ``k`` largest and ``k``
  smallest values, average the rest.
- :func:`krum_scores` / :func:`krum_select` — Blanchard et al. 2017, "Machine Learning with
  Adversaries: Byzantine Tolerant Gradient Descent" (NeurIPS): a row's score is the sum of its
  squared distances to its ``K - f - 2`` nearest other rows; Krum keeps the lowest-scoring row,
  multi-Krum the ``m`` lowest and averages them.
- :func:`clip_rows` — norm bounding (Sun et al. 2019, "Can You Really Backdoor Federated
  Learning?", arXiv:1911.07963): each row's deviation from a centre is scaled down to at most a
  given L2 norm.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(x: Tensor) -> None:
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty (clients, values) matrix, got shape {tuple(x.shape)}")


def weighted_rows_mean(x: Tensor, weights: Tensor | None = None) -> Tensor:
    """``sum_k w_k x_k / sum_k w_k`` (plain mean without weights, or when they sum to 0),
    accumulated in float64 and returned in ``x``'s dtype."""
    _check(x)
    if weights is None:
        w = torch.ones(x.shape[0], dtype=torch.float64, device=x.device)
    else:
        w = weights.to(device=x.device, dtype=torch.float64)
        if float(w.sum()) <= 0:
            w = torch.ones_like(w)
    return ((w / w.sum()) @ x.to(torch.float64)).to(x.dtype)


def coordinate_median(x: Tensor) -> Tensor:
    """Per-coordinate median over the rows (the mean of the two middle values for an even count)."""
    _check(x)
    k = x.shape[0]
    s = torch.sort(x, dim=0).values
    if k % 2:
        return s[k // 2].clone()
    return ((s[k // 2 - 1].to(torch.float64) + s[k // 2].to(torch.float64)) / 2).to(x.dtype)


def trim_count(k: int, fraction: float) -> int:
    """How many values :func:`trimmed_mean` drops at each end for ``k`` rows and a trim
    ``fraction``: ``floor(fraction * k)``, at most ``(k - 1) // 2`` so one value always remains."""
    return max(0, min(int(fraction * k + 1e-9), (k - 1) // 2))


def trimmed_mean(x: Tensor, trim: int) -> Tensor:
    """Per coordinate, the mean of the rows' values after dropping the ``trim`` largest and the
    ``trim`` smallest.

    :raises ValueError: ``trim`` would drop every value.
    """
    _check(x)
    k = x.shape[0]
    if trim < 0 or k - 2 * trim < 1:
        raise ValueError(f"cannot trim {trim} values from each end of {k}")
    s = torch.sort(x, dim=0).values
    return s[trim : k - trim].to(torch.float64).mean(0).to(x.dtype)


def pairwise_sq_distances(x: Tensor) -> Tensor:
    """``(K, K)`` squared Euclidean distances between rows, computed exactly (no matrix-product
    shortcut, whose cancellation makes near-equal rows look apart), in float64."""
    x64 = x.to(torch.float64)
    return torch.cdist(x64, x64, compute_mode="donot_use_mm_for_euclid_dist").pow(2)


def krum_neighbours(k: int, f: int) -> int:
    """How many nearest rows a Krum score sums: ``k - f - 2``, at least 1 (Krum's guarantee needs
    ``k >= 2f + 3``; with fewer rows it degrades to the nearest neighbours there are)."""
    return max(1, min(k - 1, k - f - 2))


def krum_scores(x: Tensor, f: int) -> Tensor:
    """Each row's Krum score: the sum of its squared distances to its
    :func:`krum_neighbours` nearest other rows. A single row scores 0."""
    _check(x)
    k = x.shape[0]
    if k == 1:
        return torch.zeros(1, dtype=torch.float64, device=x.device)
    d = pairwise_sq_distances(x)
    d.fill_diagonal_(float("inf"))
    nearest = torch.sort(d, dim=1).values[:, : krum_neighbours(k, f)]
    return nearest.sum(1)


def krum_select(x: Tensor, f: int, m: int = 1) -> Tensor:
    """Indices (ascending) of the ``m`` rows with the lowest Krum scores (ties: the lower index).
    ``m = 1`` is Krum, ``m > 1`` multi-Krum's selection."""
    scores = krum_scores(x, f)
    m = max(1, min(int(m), x.shape[0]))
    order = sorted(range(len(scores)), key=lambda i: (float(scores[i]), i))
    return torch.tensor(sorted(order[:m]), dtype=torch.long)


def clip_rows(x: Tensor, centre: Tensor, max_norm: float) -> tuple[Tensor, Tensor]:
    """Rows whose deviation from ``centre`` is scaled to L2 norm at most ``max_norm``:
    ``centre + (x_k - centre) * min(1, max_norm / ||x_k - centre||)``.

    :returns: the clipped rows and each row's factor (1 where nothing was clipped).
    """
    _check(x)
    dev = x.to(torch.float64) - centre.to(device=x.device, dtype=torch.float64)
    norms = dev.norm(dim=1)
    factor = torch.where(norms > max_norm, max_norm / norms.clamp_min(1e-300), torch.ones_like(norms))
    clipped = centre.to(torch.float64) + dev * factor.unsqueeze(1)
    return clipped.to(x.dtype), factor


def row_norms(x: Tensor, centre: Tensor) -> Tensor:
    """L2 norm of each row's deviation from ``centre`` (float64)."""
    return (x.to(torch.float64) - centre.to(device=x.device, dtype=torch.float64)).norm(dim=1)
