"""Computing the metrics of :mod:`engine.core.metrics` from model outputs, for many splits at once:
one set of array operations over their concatenation (AUC by ranks within segments, two sorts),
tested against scikit-learn; the trivial predictor's reference figures; and the aggregates over
clients recorded per round (:func:`summarize_clients`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from engine.core.metrics import higher_is_better


def _segments(sizes: Sequence[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes)


def _per(seg: np.ndarray, values: np.ndarray, k: int, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(seg, weights=values, minlength=k) / n


AUC_CELLS = 2_000_000
"""Padded score cells (splits x longest split x classes) ranked per call: bounds the AUC's memory."""


def auc_by_segment(sizes: Sequence[int], scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC of every column of ``scores`` (rows: the concatenated splits of ``sizes``) within
    each split (Mann-Whitney: the chance a positive outscores a negative, ties counting half);
    ``(splits, columns)``, NaN where a split has no positive or no negative. Each split is ranked
    on its own (padded to the longest, in chunks of :data:`AUC_CELLS`): one sort call ranks every
    split and column at once."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(positive), -1)
    positive = np.asarray(positive, dtype=bool).reshape(scores.shape)
    sizes = np.asarray(sizes, dtype=np.int64)
    k, c = len(sizes), scores.shape[1]
    out = np.full((k, c), np.nan)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    i = 0
    while i < k:
        longest, j = 0, i
        while j < k and (j == i or max(longest, sizes[j]) * (j - i + 1) * c <= AUC_CELLS):
            longest = max(longest, int(sizes[j]))
            j += 1
        out[i:j] = _auc_block(sizes[i:j], starts[i:j], longest, scores, positive)
        i = j
    return out


def _auc_block(
    sizes: np.ndarray, starts: np.ndarray, m: int, scores: np.ndarray, positive: np.ndarray
) -> np.ndarray:
    k, c = len(sizes), scores.shape[1]
    if m == 0:
        return np.full((k, c), np.nan)
    seg = np.repeat(np.arange(k), sizes)
    rows = (
        np.concatenate([np.arange(s, s + n) for s, n in zip(starts, sizes, strict=True)])
        if k
        else np.arange(0)
    )
    at = np.arange(len(rows)) - np.repeat(np.r_[0, np.cumsum(sizes)[:-1]], sizes)
    grid = np.full((k, m, c), np.inf)  # padding sorts last and is never positive
    grid[seg, at] = scores[rows]
    pos = np.zeros((k, m, c), dtype=bool)
    pos[seg, at] = positive[rows]
    order = np.argsort(grid, axis=1)
    ranked = np.take_along_axis(grid, order, axis=1)
    pos = np.take_along_axis(pos, order, axis=1)
    # a run of tied scores shares the mean of its positions: (first + last) / 2, 1-based
    index = np.arange(m).reshape(1, m, 1)
    starts_run = np.ones((k, m, c), dtype=bool)
    starts_run[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    first = np.maximum.accumulate(np.where(starts_run, index, 0), axis=1)
    ends_run = np.ones((k, m, c), dtype=bool)
    ends_run[:, :-1] = starts_run[:, 1:]
    last = np.minimum.accumulate(np.where(ends_run, index, m - 1)[:, ::-1], axis=1)[:, ::-1]
    mean_rank = (first + last) / 2 + 1
    rank_sum = (mean_rank * pos).sum(axis=1)
    n_pos = pos.sum(axis=1).astype(float)
    n_neg = sizes.reshape(k, 1) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _log_softmax(out: np.ndarray) -> np.ndarray:
    shifted = out - out.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _classification(out: np.ndarray, y: np.ndarray, seg: np.ndarray, k: int) -> dict[str, np.ndarray]:
    n_cls = out.shape[1]
    n = np.bincount(seg, minlength=k).astype(float)
    pred = out.argmax(1)
    correct = (pred == y).astype(float)
    logp = _log_softmax(out.astype(np.float64))
    loss = -logp[np.arange(len(y)), y]
    cells = k * n_cls
    support = np.bincount(seg * n_cls + y, minlength=cells).reshape(k, n_cls).astype(float)
    predicted = np.bincount(seg * n_cls + pred, minlength=cells).reshape(k, n_cls).astype(float)
    hits = np.bincount(seg * n_cls + y, weights=correct, minlength=cells).reshape(k, n_cls)
    present = support > 0
    used = present | (predicted > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(present, hits / support, 0.0)
        bacc = recall.sum(1) / present.sum(1)
        f1_class = np.where(used, 2 * hits / (support + predicted), 0.0)
        f1 = f1_class.sum(1) / used.sum(1)
    sizes = n.astype(np.int64)
    if n_cls == 2:
        auc = auc_by_segment(sizes, out[:, 1].astype(np.float64) - out[:, 0], y == 1)[:, 0]
    else:
        per_class = auc_by_segment(sizes, logp, y[:, None] == np.arange(n_cls)[None, :])
        with np.errstate(invalid="ignore"):
            counted = (~np.isnan(per_class)).sum(1)
            auc = np.where(counted > 0, np.nansum(per_class, 1) / np.maximum(counted, 1), np.nan)
    return {
        "acc": _per(seg, correct, k, n),
        "bacc": bacc,
        "f1": f1,
        "auc": auc,
        "loss": _per(seg, loss, k, n),
    }


def _regression(
    out: np.ndarray, y: np.ndarray, seg: np.ndarray, k: int, target_std: float
) -> dict[str, np.ndarray]:
    n = np.bincount(seg, minlength=k).astype(float)
    pred = out[:, 0].astype(np.float64)
    y = y.astype(np.float64)
    err = pred - y
    mse = _per(seg, err**2, k, n)
    ybar = _per(seg, y, k, n)
    var = _per(seg, (y - ybar[seg]) ** 2, k, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(var > 0, 1.0 - mse / var, 0.0)
    return {
        "r2": r2,
        "rmse": np.sqrt(mse) * target_std,
        "mae": _per(seg, np.abs(err), k, n) * target_std,
        "mse": mse * target_std**2,
        "loss": mse,
    }


def _numpy(t: Tensor | np.ndarray) -> np.ndarray:
    return t.detach().to("cpu").numpy() if isinstance(t, Tensor) else np.asarray(t)


def scores_many(
    task: str, outs: Sequence[Tensor], ys: Sequence[Tensor], target_std: float = 1.0
) -> list[dict[str, float]]:
    """The task metrics of many (outputs, targets) pairs at once (one set of array operations
    over their concatenation, however many pairs); ``{}`` for an empty pair. Regression targets
    are in standard units; ``target_std`` converts errors back to data units."""
    sizes = [len(y) for y in ys]
    k = len(ys)
    if k == 0 or sum(sizes) == 0:
        return [{} for _ in ys]
    out = np.concatenate([_numpy(o) for o in outs])
    y = np.concatenate([_numpy(t) for t in ys])
    seg = _segments(sizes)
    if task == "classification":
        columns = _classification(out, y.astype(np.int64), seg, k)
    else:
        columns = _regression(out, y, seg, k, target_std)
    return [
        {name: float(values[i]) for name, values in columns.items()} if sizes[i] else {} for i in range(k)
    ]


def scores(task: str, out: Tensor, y: Tensor, target_std: float = 1.0) -> dict[str, float]:
    """:func:`scores_many` for one pair."""
    return scores_many(task, [out], [y], target_std)[0]


def constant_outputs(task: str, train_y: Tensor | np.ndarray, n_outputs: int, n: int) -> Tensor:
    """Outputs of the predictor that ignores its input (the reference): the training labels' log
    frequencies (so its guess is the majority class and its loss the labels' entropy), or the
    training mean (regression, in the units ``train_y`` is in)."""
    train_y = _numpy(train_y)
    if task == "classification":
        counts = np.bincount(train_y.astype(np.int64), minlength=n_outputs).astype(float)
        prior = (counts + 1e-3) / (counts.sum() + 1e-3 * n_outputs)
        row = torch.as_tensor(np.log(prior), dtype=torch.float32)
    else:
        row = torch.full((n_outputs,), float(train_y.mean()) if len(train_y) else 0.0)
    return row.expand(n, n_outputs)


def reference_scores(
    task: str, train_ys: Sequence[Tensor], test_ys: Sequence[Tensor], n_outputs: int, target_std: float = 1.0
) -> list[dict[str, float]]:
    """The reference's metrics on each test split, fitted on the matching training labels."""
    outs = [constant_outputs(task, tr, n_outputs, len(te)) for tr, te in zip(train_ys, test_ys, strict=True)]
    return scores_many(task, outs, list(test_ys), target_std)


# ---- aggregates over clients (their key suffixes: engine.core.metrics.STATS) ----------------------
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


def summarize_clients(
    per_client: Mapping[int, Mapping[str, float]],
    keys: Sequence[str],
    weights: Mapping[int, float] | None = None,
) -> dict[str, float]:
    """:func:`summarize` for each of ``keys`` over the clients that report it."""
    out: dict[str, float] = {}
    for key in keys:
        ids = [cid for cid, m in per_client.items() if key in m]
        if not ids:
            continue
        w = [weights.get(cid, 1.0) for cid in ids] if weights else None
        out.update(summarize(key, [per_client[cid][key] for cid in ids], w))
    return out
