"""Aggregated figures over clients, as pure functions: mean, sample-weighted mean, spread, the
worst 10% and the best (fairness across clients)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

LOWER_IS_BETTER = ("loss", "mse", "mae")


def higher_is_better(key: str) -> bool:
    """Whether larger values of metric ``key`` are better (accuracy, R^2) or worse (loss, error)."""
    return not any(key.endswith(s) for s in LOWER_IS_BETTER)


def summarize(key: str, values: Sequence[float], weights: Sequence[float] | None = None) -> dict[str, float]:
    """``{key}_mean``, ``_wmean``, ``_std``, ``_worst10`` (mean of the worst ceil(10%) clients),
    ``_best`` over clients; NaN values are ignored."""
    v = np.asarray(values, dtype=float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float)
    keep = ~np.isnan(v)
    v, w = v[keep], w[keep]
    if len(v) == 0:
        return {}
    order = np.sort(v) if higher_is_better(key) else -np.sort(-v)
    k = max(1, math.ceil(0.1 * len(v)))
    return {
        f"{key}_mean": float(v.mean()),
        f"{key}_wmean": float((v * w).sum() / w.sum()) if w.sum() > 0 else float(v.mean()),
        f"{key}_std": float(v.std()),
        f"{key}_worst10": float(order[:k].mean()),
        f"{key}_best": float(order[-1]),
    }


def summarize_clients(per_client: Mapping[int, Mapping[str, float]], keys: Sequence[str],
                      weights: Mapping[int, float] | None = None) -> dict[str, float]:
    """:func:`summarize` for each of ``keys`` over the clients that report it."""
    out: dict[str, float] = {}
    for key in keys:
        ids = [cid for cid, m in per_client.items() if key in m]
        if not ids:
            continue
        w = [weights.get(cid, 1.0) for cid in ids] if weights else None
        out.update(summarize(key, [per_client[cid][key] for cid in ids], w))
    return out
