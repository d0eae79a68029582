"""Preprocessing statistics as a federation can compute them: from what each site shares (counts,
sums, sums of squares, extremes, answers to "how many of your values are <= t?"), never its rows.

A :class:`Site` wraps one client's raw training features and answers those questions; it is the
only object that touches rows. :func:`aggregate` plays the server: it sums the sites' summaries and
runs the counting protocol for the quantiles it needs (median imputation, robust scaling), and
returns :class:`Stats` - per-feature means, spreads, extremes, quantiles, imputation values and
which one-hot categories were seen. Where the statistics come from is a choice
(:data:`SOURCES`, ``data.statistics``):

- ``federated`` (default): one aggregate over every client's training split. Each client's
  preprocessing sees the others only through these sums and counts.
- ``client``: each client aggregates its own site alone (nothing leaves it). A column constant or
  missing at one site then scales very differently there than elsewhere.
- ``centralized``: the whole file as one site, test rows included - what pooling the raw data
  would give; not possible in a real federation, offered only as a labelled reference.

Quantiles are exact: the server bisects on the pooled count of values <= t over float64 values
(ordered as integers, so at most 64 questions) until the interval holds a single representable
value - the pooled order statistic - and interpolates as :func:`torch.quantile` does.

The feature schema (:class:`Feature`: which file column a feature comes from, its kind and how it
is imputed) is the federation's agreement on the data, read from the file's header and types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

Source = Literal["federated", "client", "centralized"]
SOURCES: tuple[str, ...] = ("federated", "client", "centralized")
#: What each source means, in the words the Data page and the run manifest use.
SOURCE_TEXT: dict[str, str] = {
    "federated": "federated aggregate of the clients' training splits (counts, sums, sums of squares, "
    "extremes and counting queries the sites share; never rows)",
    "client": "each client's own training split alone",
    "centralized": "centralized statistics of the whole file, test rows included: not possible in a real "
    "federation",
}

Kind = Literal["numeric", "binary", "code", "onehot"]
Impute = Literal["mean", "median", "most_frequent", "zero"]


@dataclass(frozen=True)
class Feature:
    """One model input feature of a table: the file ``column`` it comes from, its ``kind``
    (``numeric``; ``binary`` 0/1; ``code``: an ordinal category code; ``onehot``: one slot of a
    categorical column) and how a missing value is filled."""

    name: str
    column: str
    kind: Kind = "numeric"
    impute: Impute = "median"
    levels: tuple[str, ...] = ()
    """An ordinal code's categories in code order (what a saved model needs to encode new rows)."""


def feature_view(x: Tensor, kind: str) -> Tensor:
    """``x`` as ``(values, features)``: features are the last axis for tabular and sequence inputs,
    the channel axis for images."""
    if kind == "image":  # (N, C, H, W)
        c = x.shape[1]
        return x.transpose(0, 1).reshape(c, -1).T
    return x.reshape(-1, x.shape[-1])


def broadcast_shape(kind: str, n_features: int) -> tuple[int, ...]:
    """Shape of per-feature statistics that broadcasts over a batch of ``kind`` inputs."""
    if kind == "image":
        return (n_features, 1, 1)
    if kind == "sequence":
        return (1, n_features)
    return (n_features,)


@dataclass
class Summary:
    """Per-feature aggregates one site shares; sites' summaries add up to the federation's."""

    rows: int
    count: Tensor  # present (non-missing) values
    total: Tensor  # sum of present values (float64)
    squares: Tensor  # sum of squared present values (float64)
    low: Tensor  # smallest present value (+inf where none)
    high: Tensor  # largest present value (-inf where none)

    def __add__(self, other: Summary) -> Summary:
        return Summary(
            self.rows + other.rows,
            self.count + other.count,
            self.total + other.total,
            self.squares + other.squares,
            torch.minimum(self.low, other.low),
            torch.maximum(self.high, other.high),
        )


class Site:
    """One site's raw training features ``(values, features)`` (missing values are NaN); answers
    aggregate questions about them and never hands out a row."""

    def __init__(self, values: Tensor) -> None:
        self._x = values.detach().to(torch.float64)
        self._sorted: Tensor | None = None
        self._subset: tuple[Tensor, Tensor] | None = None

    @property
    def n_features(self) -> int:
        return self._x.shape[1]

    def summary(self) -> Summary:
        """Counts, sums, sums of squares and extremes of the present values, per feature."""
        x = self._x
        present = ~torch.isnan(x)
        zero = torch.where(present, x, torch.zeros((), dtype=x.dtype))
        inf = torch.tensor(float("inf"), dtype=x.dtype)
        return Summary(
            len(x),
            present.sum(0),
            zero.sum(0),
            (zero * zero).sum(0),
            torch.where(present, x, inf).amin(0) if len(x) else torch.full((x.shape[1],), inf),
            torch.where(present, x, -inf).amax(0) if len(x) else torch.full((x.shape[1],), -inf),
        )

    def _columns(self, features: Tensor) -> Tensor:
        """The site's values of ``features`` sorted per feature, missing ones as +inf: ``(F', n)``."""
        if self._sorted is None:
            x = self._x.T.contiguous()
            self._sorted = torch.sort(torch.where(torch.isnan(x), float("inf"), x), dim=1).values
        if (
            self._subset is None or self._subset[0] is not features
        ):  # the same features, question after question
            whole = len(features) == len(self._sorted) and bool(
                (features == torch.arange(len(features))).all()
            )
            self._subset = (features, self._sorted if whole else self._sorted[features])
        return self._subset[1]

    def count_at_most(self, features: Tensor, thresholds: Tensor) -> Tensor:
        """How many present values of each feature are ``<= threshold`` (one count per feature)."""
        cols = self._columns(features)
        if cols.shape[1] == 0:
            return torch.zeros(len(features), dtype=torch.long)
        return torch.searchsorted(cols, thresholds[:, None].to(cols.dtype), right=True)[:, 0]

    def value_counts(self, feature: int) -> dict[float, int]:
        """Counts of each distinct present value of one feature (for the most frequent value)."""
        col = self._x[:, feature]
        values, counts = torch.unique(col[~torch.isnan(col)], return_counts=True)
        return {float(v): int(c) for v, c in zip(values.tolist(), counts.tolist(), strict=True)}


@dataclass
class Stats:
    """Per-feature statistics of the present values (float64), as the server computes them."""

    count: Tensor
    mean: Tensor
    std: Tensor
    low: Tensor
    high: Tensor
    quantiles: dict[float, Tensor] = field(default_factory=dict)  # q -> values (NaN where not computed)
    fill: Tensor | None = None  # imputation value per feature (None: no feature needs one)
    seen: Tensor | None = None  # per feature: False for one-hot slots no training row had
    sites: int = 1

    def quantile(self, q: float) -> Tensor:
        return self.quantiles[q]


def _keys(x: Tensor) -> Tensor:
    """float64 values as int64 keys in the same order (so bisection ends on adjacent floats)."""
    bits = x.to(torch.float64).view(torch.int64)
    return torch.where(bits < 0, -(bits & 0x7FFFFFFFFFFFFFFF), bits)


def _floats(keys: Tensor) -> Tensor:
    bits = torch.where(keys < 0, (-keys) | torch.iinfo(torch.int64).min, keys)
    return bits.view(torch.float64)


def _order_statistic(
    sites: Sequence[Site], features: Tensor, rank: Tensor, low: Tensor, high: Tensor
) -> Tensor:
    """The ``rank``-th smallest (0-based) pooled present value of each feature, found by bisection
    on the pooled count of values ``<= t``: the sites answer counts, nothing else."""
    lo = _keys(low) - 1  # count(<= lo) = 0 <= rank
    hi = _keys(high)  # count(<= hi) = every value > rank
    for _ in range(66):
        open_ = lo + 1 < hi
        if not bool(open_.any()):
            break
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # floor((lo + hi) / 2) without overflow
        below = sum(s.count_at_most(features, _floats(mid)) for s in sites)
        enough = below >= rank + 1
        hi = torch.where(open_ & enough, mid, hi)
        lo = torch.where(open_ & ~enough, mid, lo)
    return _floats(hi)


def pooled_quantiles(
    sites: Sequence[Site], features: Tensor, count: Tensor, low: Tensor, high: Tensor, q: float
) -> Tensor:
    """The ``q``-quantile of each feature's pooled present values with linear interpolation (as
    :func:`torch.quantile`), computed from counting queries; NaN where a feature has no value."""
    n = count[features].to(torch.float64)
    out = torch.full((len(features),), float("nan"), dtype=torch.float64)
    ok = n > 0
    if not bool(ok.any()):
        return out
    f, n = features[ok], n[ok]
    pos = q * (n - 1)
    k = torch.floor(pos)
    frac = pos - k
    lo_v = _order_statistic(sites, f, k.long(), low[f], high[f])
    hi_v = _order_statistic(sites, f, torch.minimum(k + 1, n - 1).long(), low[f], high[f])
    out[ok] = lo_v + frac * (hi_v - lo_v)
    return out


def _most_frequent(sites: Sequence[Site], feature: int) -> float:
    counts: dict[float, int] = {}
    for s in sites:
        for v, c in s.value_counts(feature).items():
            counts[v] = counts.get(v, 0) + c
    if not counts:
        return 0.0
    return min(counts, key=lambda v: (-counts[v], v))  # ties: the smallest value, as pandas' mode


def aggregate(
    sites: Sequence[Site],
    schema: Sequence[Feature] | None,
    *,
    impute: Tensor | None = None,
    quantiles: Sequence[float] = (),
) -> Stats:
    """The server's statistics from the sites' shared aggregates.

    :param schema: one :class:`Feature` per feature (``None``: all numeric, median imputation).
    :param impute: per feature, whether it can be missing anywhere (so needs an imputation value);
        ``None``: no feature needs one.
    :param quantiles: extra quantiles to compute for every feature (robust scaling).
    """
    total = sites[0].summary()
    for s in sites[1:]:
        total = total + s.summary()
    n = total.count.to(torch.float64)
    safe = n.clamp_min(1)
    mean = torch.where(n > 0, total.total / safe, torch.zeros_like(n))
    var = torch.where(n > 0, total.squares / safe - mean * mean, torch.zeros_like(n)).clamp_min(0)
    stats = Stats(total.count, mean, var.sqrt(), total.low, total.high, sites=len(sites))
    every = torch.arange(len(n))
    for q in quantiles:
        stats.quantiles[q] = pooled_quantiles(sites, every, total.count, total.low, total.high, q)
    if schema is not None:
        onehot = torch.tensor([f.kind == "onehot" for f in schema], dtype=torch.bool)
        stats.seen = ~onehot | (total.total > 0)
    if impute is not None and bool(impute.any()):
        stats.fill = _fill_values(sites, schema, impute, stats, total)
    return stats


def _fill_values(
    sites: Sequence[Site], schema: Sequence[Feature] | None, impute: Tensor, stats: Stats, total: Summary
) -> Tensor:
    """Imputation value per feature (0 where not needed or nothing was present): the median, mean or
    most frequent value; for a one-hot column, its most frequent category's slot."""
    n_features = len(stats.mean)
    schema = list(schema) if schema is not None else [Feature(str(j), str(j)) for j in range(n_features)]
    fill = torch.zeros(n_features, dtype=torch.float64)
    need = [j for j in torch.nonzero(impute).flatten().tolist() if schema[j].impute != "zero"]
    medians = [j for j in need if schema[j].kind == "numeric" and schema[j].impute == "median"]
    if medians:
        idx = torch.tensor(medians)
        values = (
            stats.quantiles[0.5][idx]
            if 0.5 in stats.quantiles
            else pooled_quantiles(sites, idx, stats.count, stats.low, stats.high, 0.5)
        )
        fill[idx] = torch.nan_to_num(values, nan=0.0)
    blocks: dict[str, list[int]] = {}
    for j in need:
        f = schema[j]
        if f.kind == "onehot":
            blocks.setdefault(f.column, []).append(j)
        elif stats.count[j] == 0 or f.kind == "numeric" and f.impute == "median":
            continue
        elif f.kind == "numeric" and f.impute == "mean":
            fill[j] = stats.mean[j]
        elif f.kind == "binary":
            fill[j] = 1.0 if float(stats.mean[j]) > 0.5 else 0.0
        else:  # the most frequent value of a number or an ordinal code
            fill[j] = _most_frequent(sites, j)
    for slots in blocks.values():  # a missing category is NaN in every slot of its column
        ones = total.total[slots]
        if bool((ones > 0).any()):
            fill[slots[int(torch.argmax(ones))]] = 1.0  # ties: the first slot (sorted categories)
    return fill
