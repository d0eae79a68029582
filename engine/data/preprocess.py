"""A client's preprocessing: fill missing values, blank one-hot categories its statistics never saw,
then a per-feature affine map ``(x - center) / scale``.

The scaling methods: ``standardize`` (mean, std), ``minmax`` (min, range), ``robust`` (median,
inter-quartile range), ``none``. Statistics are per feature (the last axis for tabular and
sequence inputs, the channel axis for images) and come from :mod:`engine.data.stats` - the
federation's aggregate, the client's own training split, or (labelled) the whole file, as
``data.statistics`` says; scaling uses the present values only, so a mostly-missing column is not
squeezed by its own imputed values. A fitted transform is a few small tensors: cheap to store and
to apply to the global test and public sets at evaluation time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from engine.data.stats import SOURCE_TEXT, SOURCES, Site, Stats, aggregate, broadcast_shape, feature_view

if TYPE_CHECKING:
    from engine.data.base import Dataset

__all__ = ["METHODS", "SOURCES", "SOURCE_TEXT", "Affine", "Fitted", "fit", "fit_clients"]

Method = Literal["none", "standardize", "minmax", "robust"]
METHODS: tuple[str, ...] = ("none", "standardize", "minmax", "robust")
#: Quantiles each method needs from the statistics.
QUANTILES: dict[str, tuple[float, ...]] = {"robust": (0.25, 0.5, 0.75)}


@dataclass
class Affine:
    """Missing values (NaN) replaced by ``fill``, features multiplied by ``keep`` (0 blanks an
    unseen one-hot category), then ``(x - center) / scale``; each part optional, broadcast over a
    batch. All ``None``: the identity."""

    center: Tensor | None = None
    scale: Tensor | None = None
    fill: Tensor | None = None
    keep: Tensor | None = None

    @property
    def is_identity(self) -> bool:
        return self.center is None and self.fill is None and self.keep is None

    def __call__(self, x: Tensor) -> Tensor:
        if self.fill is not None:
            x = torch.where(torch.isnan(x), self.fill.to(x.device, x.dtype), x)
        if self.keep is not None:
            x = x * self.keep.to(x.device, x.dtype)
        if self.center is None or self.scale is None:
            return x
        return (x - self.center.to(x.device, x.dtype)) / self.scale.to(x.device, x.dtype)


def fit(method: str, stats: Stats, kind: str) -> Affine:
    """The transform of scaling ``method`` with ``stats`` (from :func:`engine.data.stats.aggregate`)
    for inputs of ``kind`` (tabular, sequence or image)."""
    if method not in METHODS:
        raise ValueError(f"unknown preprocessing '{method}'; valid: {', '.join(METHODS)}")
    shape = broadcast_shape(kind, len(stats.mean))

    def shaped(t: Tensor) -> Tensor:
        return t.to(torch.float32).reshape(shape)

    fill = shaped(stats.fill) if stats.fill is not None else None
    keep = (
        shaped(stats.seen.to(torch.float32))
        if stats.seen is not None and not bool(stats.seen.all())
        else None
    )
    if method == "none":
        return Affine(fill=fill, keep=keep)
    if method == "standardize":
        center, scale = stats.mean, stats.std
    elif method == "minmax":
        center, scale = stats.low, stats.high - stats.low
    else:
        center, scale = stats.quantile(0.5), stats.quantile(0.75) - stats.quantile(0.25)
    present = stats.count > 0
    center = torch.where(present, center, torch.zeros_like(center))
    scale = torch.where(present & torch.isfinite(scale) & (scale > 1e-8), scale, torch.ones_like(scale))
    if stats.seen is not None:  # a blanked category stays 0 after scaling
        center = torch.where(stats.seen, center, torch.zeros_like(center))
    return Affine(shaped(center), shaped(scale), fill, keep)


@dataclass
class Fitted:
    """Every client's transform, the server models' (``reference``), and where their statistics
    came from (``provenance``, for the run manifest)."""

    transforms: list[Affine]
    reference: Affine
    provenance: dict[str, Any] = field(default_factory=dict)


def fit_clients(methods: list[str], train_x: list[Tensor], data: Dataset, source: str) -> Fitted:
    """Fit each client's preprocessing ``methods[i]`` with statistics from ``source``.

    :param train_x: each client's raw training features (missing values NaN).
    :param data: the whole dataset: its feature schema, and its rows for ``centralized`` statistics.
    :param source: ``federated`` (one aggregate of every client's training split), ``client`` (each
        client's own split) or ``centralized`` (the whole file, test rows included).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown statistics source '{source}'; valid: {', '.join(SOURCES)}")
    kind = data.input_spec.kind
    schema = data.features
    impute = None
    if schema is not None:
        impute = torch.ones(len(schema), dtype=torch.bool)
    else:
        missing = torch.isnan(feature_view(data.x, kind)).any(0)
        impute = missing if bool(missing.any()) else None
    quantiles = sorted({q for m in methods for q in QUANTILES.get(m, ())})
    sites = [Site(feature_view(x, kind)) for x in train_x]
    if source == "centralized":
        shared = aggregate([Site(feature_view(data.x, kind))], schema, impute=impute, quantiles=quantiles)
    else:
        shared = aggregate(sites, schema, impute=impute, quantiles=quantiles)
    own = source == "client"
    cache: dict[tuple[str, int], Affine] = {}
    transforms = []
    for i, method in enumerate(methods):
        stats = (
            aggregate([sites[i]], schema, impute=impute, quantiles=QUANTILES.get(method, ()))
            if own
            else shared
        )
        # keyed by whose statistics, never by id(stats): a freed client's Stats leaves its id to the
        # next one, which then got the previous client's transform (now and then, by memory layout)
        key = (method, i if own else -1)
        if key not in cache:  # clients with the same statistics and method share one transform
            cache[key] = fit(method, stats, kind)
        transforms.append(cache[key])
    common = Counter(methods).most_common(1)[0][0] if methods else "none"
    reference = fit(common, shared, kind)
    used = ", ".join(f"{m} x{n}" for m, n in Counter(methods).items())
    where = SOURCE_TEXT[source]
    provenance = {
        "statistics": source,
        "schema": "column names, types, category lists and orders: read from the file (the federation's "
        "shared agreement)"
        if schema is not None
        else "the dataset's own",
        "imputation": where if impute is not None else "none needed (no missing values)",
        "scaling": f"{where} (methods: {used})",
        "categories": (
            f"one slot per category of the schema; a category absent from the statistics' rows "
            f"({'each client' if source == 'client' else source}) is blanked"
            if schema is not None and any(f.kind == "onehot" for f in schema)
            else "no categorical columns"
        ),
        "server models": SOURCE_TEXT["centralized" if source == "centralized" else "federated"]
        + f" (method: {common})",
    }
    return Fitted(transforms, reference, provenance)
