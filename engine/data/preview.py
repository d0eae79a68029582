"""What the Data page shows about a federation before a run: the natural groups of a partition
column, the split set-up would make (the same code: :func:`partition_preview`), the clients'
label histograms and how heterogeneous they are."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.seeding import numpy_rng
from engine.data import profile
from engine.data.base import Dataset
from engine.data.config import DataConfig
from engine.data.federation import Federation, client_rows, deal_rows, load_dataset, partition_params
from engine.errors import DataError


def natural_groups(data_cfg: DataConfig, root: Path) -> list[str]:
    """The client names a ``natural`` partition makes (sorted distinct values of its column, plus
    ``other`` when small values are merged), so the pages can size and name the roster.

    :raises DataError: the partition is not ``natural``, or its column is missing or has one value.
    """
    from engine.data.partitioners.natural import groups_of

    if data_cfg.partition.method != "natural":
        raise DataError(f"data.partition.method is '{data_cfg.partition.method}', not 'natural'")
    names, _ = groups_of(load_dataset(data_cfg, root), partition_params(data_cfg))
    return names


def partition_preview(
    data_cfg: DataConfig,
    n_clients: int | None,
    shares: Sequence[float | None] | None,
    seed: int,
    root: Path,
    *,
    profile_sites: bool = False,
) -> dict[str, Any]:
    """The split as data, without preprocessing, shifts or models: what the Data page plots.

    :param n_clients: roster size; ``None`` for ``natural`` (one client per value).
    :param shares: per-client data shares (``None`` or a list with ``None`` where unset).
    :param profile_sites: also look across the sites' rows: missingness per client and column, and
        values that look like a site's missing-value code (the Data page's warnings).
    :returns: JSON-able ``{"clients": [{"name", "size", "train", "validation", "test",
        "skew_points"[, "majority", "shift"]}], "histogram": clients x bins counts of training
        targets, "bins": class names (or target deciles for regression), "label_skew" (percentage
        points, :func:`engine.data.profile.label_skew`) and "label_skew_text", "heterogeneity":
        mean Jensen-Shannon in [0, 1], "missingness" and "codes" (per site:
        :mod:`engine.data.profile`), "global_test", "split_from_file", "public", "task", "input",
        "dataset", "report"}``.
    :raises DataError: the split is impossible as configured (names the fix).
    """
    data = load_dataset(data_cfg, root)
    names: list[str] | None = None
    if data_cfg.partition.method == "natural":
        names = natural_groups(data_cfg, root)
        n_clients = len(names) if n_clients is None else n_clients
    if n_clients is None:
        raise DataError("give the number of clients for the preview")
    shares = list(shares) if shares is not None else [None] * n_clients
    if len(shares) != n_clients:
        raise DataError(f"{len(shares)} shares for {n_clients} clients; give one per client")
    deal = deal_rows(data, data_cfg, n_clients, shares, seed)
    labels = data.labels
    classification = data.task == "classification"
    n_bins = data.n_outputs if classification else 10
    clients, hist = [], []
    for i, idx in enumerate(deal.parts):
        rel_train, rel_test, rel_val = client_rows(data, data_cfg, idx, seed, i)
        entry = {
            "name": names[i] if names else f"client {i}",
            "size": len(idx),
            "train": len(rel_train),
            "validation": len(rel_val),
            "test": len(rel_test),
        }
        if deal.partitioner.shifts_features and hasattr(deal.partitioner, "strength"):
            rng = numpy_rng(seed, "data", "client", i, "shift")  # the same draw build makes
            entry["shift"] = float(deal.partitioner.strength(i, n_clients, rng))
        clients.append(entry)
        hist.append(np.bincount(labels[idx[rel_train]], minlength=n_bins))
    histogram = np.stack(hist)
    if classification:
        bins = list(data.classes)
    else:
        edges = np.quantile(data.y.numpy(), np.linspace(0, 1, n_bins + 1))
        bins = [f"{lo:.3g}..{hi:.3g}" for lo, hi in itertools.pairwise(edges)]
    client_names = [c["name"] for c in clients]
    skew = profile.label_skew(histogram, bins, client_names)
    sites: dict[str, Any] = {"missingness": None, "codes": []}
    if profile_sites:
        sites = {
            "missingness": profile.missingness(data, deal.parts, client_names),
            "codes": profile.suspicious_codes(data, deal.parts, client_names),
        }
    for c, points, row in zip(clients, skew["points"], histogram, strict=True):
        c["skew_points"] = points
        if classification and row.sum():
            c["majority"] = {
                "class": bins[int(row.argmax())],
                "share": round(float(row.max() / row.sum()), 3),
            }
    return {
        "dataset": data.name,
        "task": data.task,
        "input": str(data.input_spec),
        "clients": clients,
        "histogram": histogram.tolist(),
        "bins": bins,
        "heterogeneity": heterogeneity(histogram),
        "label_skew": skew,
        "label_skew_text": profile.skew_sentence(skew, not classification),
        **sites,
        "global_test": len(deal.global_idx),
        "split_from_file": data.split is not None,
        "public": len(deal.public_idx) if deal.public_idx is not None else 0,
        "report": data.report,
    }


def label_histograms(fed: Federation) -> np.ndarray:
    """Clients x classes counts of training labels (targets binned into deciles for regression)."""
    n_classes = fed.n_outputs if fed.task == "classification" else 10
    labels = fed.data.labels
    return np.stack([np.bincount(labels[c.index], minlength=n_classes) for c in fed.clients])


def heterogeneity(hist: np.ndarray) -> float:
    """Mean Jensen-Shannon divergence (base 2, in [0, 1]) between each client's label distribution
    and the pooled one: 0 for identical distributions, 1 for disjoint ones."""
    hist = np.asarray(hist, dtype=float)
    total = hist.sum(0) / max(hist.sum(), 1)
    scores = []
    for row in hist:
        if row.sum() == 0:
            continue
        p = row / row.sum()
        m = (p + total) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_p = np.nansum(np.where(p > 0, p * np.log2(p / m), 0.0))
            kl_q = np.nansum(np.where(total > 0, total * np.log2(total / m), 0.0))
        scores.append((kl_p + kl_q) / 2)
    return float(np.mean(scores)) if scores else 0.0


def image_examples(data: Dataset, limit: int = 10, size: int = 56) -> list[tuple[str, np.ndarray]]:
    """Up to ``limit`` samples of an image dataset to look at: the first of each class (then the
    next ones) for classification, the first rows for regression; ``(caption, uint8 array)``
    pairs, ``H x W`` for one channel and ``H x W x 3`` for three (other counts show the first
    channel), scaled together from the shown samples' smallest to largest value (so a 0-16 or a
    standardised dataset is as visible as 0-1 pixels) and upscaled by whole pixels to about
    ``size`` (no smoothing: a 28-pixel digit stays sharp)."""
    if data.input_spec.kind != "image" or len(data) == 0:
        return []
    y = data.y.numpy()
    if data.task == "classification":
        firsts = np.unique(y, return_index=True)[1]
        rest = np.setdiff1d(np.arange(min(len(y), 10 * limit)), firsts)
        order = np.concatenate([firsts, rest])[:limit]  # class order
    else:
        order = np.arange(min(len(y), limit))
    x = data.x[order].numpy().astype(np.float64)
    x = np.nan_to_num(x, nan=float(np.nanmin(x)) if not np.isnan(x).all() else 0.0)
    low, high = float(x.min()), float(x.max())
    x = (x - low) / (high - low) if high > low else np.zeros_like(x)
    pixels = np.round(255 * x).astype(np.uint8)
    height = pixels.shape[2]
    factor = max(1, round(size / max(height, 1)))
    out = []
    for i, image in zip(order, pixels, strict=True):
        shown = np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0]
        shown = shown.repeat(factor, axis=0).repeat(factor, axis=1)
        label = data.classes[int(y[i])] if data.task == "classification" and data.classes else f"{y[i]:.3g}"
        out.append((str(label), shown))
    return out
