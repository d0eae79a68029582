"""The verdict: does a strategy beat training alone (``local``) or pooled training
(``centralized``), by how much, how sure are we, and which clients gain.

Paired differences only: a strategy's run and its baseline's run on the same split and seed, client
by client, on the experiment's primary metric (:mod:`engine.core.metrics`), at each client's best
validation round unless asked for the final round. A difference is oriented so that positive means
the strategy is better (for an error such as RMSE, baseline minus strategy).

The interval (95% unless asked otherwise):

- two or more seeds: a t-interval over seeds of the per-seed mean difference over clients (each
  seed is one independent replicate of the whole experiment: split, initialisation, order);
- one seed: a t-interval over clients of their paired differences. It says how consistent the
  difference is across clients on this one split, not how it would move with another seed (that
  needs seeds), and the page says so. A percentile bootstrap over clients is not used: with the
  two to ten clients of a typical federation it is too narrow (it cannot see beyond the few values
  it resamples), while the t-interval widens honestly with few clients.
- one seed and one client: no interval.

The maths are pure functions over plain values (:func:`t_interval`, :func:`paired_verdict`,
:func:`overfitting`), usable without a database (a strategy advisor runs its own simulations and
passes their per-client figures); :func:`engine.reporting.pairing.verdicts_for` reads stored runs
through :class:`engine.tracking.storage.Store` and pairs them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.metrics import METRICS, Metric, run_primary

BASELINES = ("local", "centralized")
"""Strategies every other strategy is compared with, when a run of them is paired."""
BASELINE_WORDS = {"local": "training alone", "centralized": "pooled training (centralized)"}


# ---- intervals -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided confidence interval (``low``/``high`` NaN when ``n < 2``)."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95

    @property
    def defined(self) -> bool:
        return self.n >= 2 and math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of zero (a difference beyond noise)."""
        return self.defined and (self.low > 0 or self.high < 0)


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Student-t interval for the mean of ``values`` (NaNs dropped): ``mean +- t * sd / sqrt(n)``
    with ``n - 1`` degrees of freedom (``sd`` with ``ddof=1``)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    mean = float(v.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, level)
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, level)


# ---- the paired verdict -------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientGain:
    """One client's paired difference (positive: the strategy is better for it)."""

    client_id: int
    name: str
    per_seed: tuple[float, ...]
    interval: Interval

    @property
    def mean(self) -> float:
        return self.interval.mean


@dataclass(frozen=True)
class Verdict:
    """A strategy against a baseline on one metric."""

    strategy: str
    baseline: str
    metric: Metric
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    """Mean over clients of the paired differences, per seed."""
    interval: Interval
    over: str
    """What the interval is over: ``seeds``, ``clients`` or ``none``."""
    clients: tuple[ClientGain, ...]
    best_round: bool = True
    """Whether the figures are those at each client's best validation round (else the final round)."""
    pairs: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """``(strategy run id, baseline run id)`` per seed, when built from stored runs."""

    @property
    def gainers(self) -> int:
        return sum(1 for c in self.clients if c.mean > 0)

    @property
    def losers(self) -> int:
        return sum(1 for c in self.clients if c.mean < 0)

    @property
    def outcome(self) -> str:
        """``better``, ``worse``, ``noise`` (the interval holds zero) or ``unknown`` (no interval)."""
        if not self.interval.defined:
            return "unknown"
        if not self.interval.excludes_zero:
            return "noise"
        return "better" if self.interval.mean > 0 else "worse"

    @property
    def sentence(self) -> str:
        """The verdict in one plain sentence."""
        m = self.metric
        against = BASELINE_WORDS.get(self.baseline, self.baseline)
        size = m.diff_text(self.interval.mean, signed=False)
        ci = (
            f"{100 * self.interval.level:.0f}% CI {_num(m, self.interval.low)} to "
            f"{_num(m, self.interval.high)}"
            if self.interval.defined
            else ""
        )
        n_seeds = len(self.seeds)
        over = f"over {n_seeds} seed{'s' if n_seeds != 1 else ''}"
        who = f"{self.gainers} of {len(self.clients)} client{'s' if len(self.clients) != 1 else ''} gain"
        label = m.label
        if self.outcome == "better":
            return f"{self.strategy} beats {against} by {size} of {label} ({ci}) {over}; {who}."
        if self.outcome == "worse":
            return f"{self.strategy} falls behind {against} by {size} of {label} ({ci}) {over}; {who}."
        if self.outcome == "noise":
            return (
                f"No difference beyond noise between {self.strategy} and {against}: "
                f"{m.diff_text(self.interval.mean)} of {label} ({ci}) {over}; {who}."
            )
        return (
            f"{self.strategy} against {against}: {m.diff_text(self.interval.mean)} of {label} on one seed "
            f"and one client: too little to judge; run more seeds."
        )

    @property
    def interval_note(self) -> str:
        """What the interval is, in words (shown beside it)."""
        level = f"{100 * self.interval.level:.0f}%"
        if self.over == "seeds":
            return (
                f"{level} t-interval over {len(self.seeds)} seeds of the mean paired difference over "
                f"clients (same split and seed for both runs)."
            )
        if self.over == "clients":
            return (
                f"One seed: the {level} interval is a t-interval over the {len(self.clients)} clients' "
                f"paired differences. It shows how consistent the difference is across clients, not how "
                f"it would move with another seed; launch 3 or more seeds to judge that."
            )
        return "One seed and one client: no interval can be computed."

    def as_dict(self) -> dict[str, Any]:
        """Plain values (exports, JSON)."""
        return {
            "strategy": self.strategy,
            "baseline": self.baseline,
            "metric": self.metric.key,
            "seeds": list(self.seeds),
            "per_seed": list(self.per_seed),
            "mean": self.interval.mean,
            "low": self.interval.low,
            "high": self.interval.high,
            "level": self.interval.level,
            "over": self.over,
            "outcome": self.outcome,
            "gainers": self.gainers,
            "losers": self.losers,
            "clients": len(self.clients),
            "best_round": self.best_round,
            "sentence": self.sentence,
            "per_client": {c.name: c.mean for c in self.clients},
        }


def _num(metric: Metric, value: float) -> str:
    v = value * metric.scale
    return f"{v:.1f}" if metric.scale == 100 else f"{v:.3f}"


def paired_verdict(
    strategy_figures: Mapping[int, Mapping[int, float]],
    baseline_figures: Mapping[int, Mapping[int, float]],
    metric: Metric | str,
    *,
    strategy: str,
    baseline: str = "local",
    names: Mapping[int, str] | None = None,
    level: float = 0.95,
    best_round: bool = True,
    pairs: Sequence[tuple[str, str]] = (),
) -> Verdict:
    """Compare a strategy with a baseline from their per-client figures.

    :param strategy_figures: ``{seed: {client_id: value}}`` of the strategy's runs.
    :param baseline_figures: the same for the baseline, on the same splits (same seeds).
    :param metric: the metric (or its key) the values are.
    :raises ValueError: no seed with figures of both.
    """
    metric = METRICS[metric] if isinstance(metric, str) else metric
    sign = 1.0 if metric.higher_is_better else -1.0
    seeds = sorted(s for s in strategy_figures if s in baseline_figures)
    diffs: dict[int, dict[int, float]] = {}
    for seed in seeds:
        a, b = strategy_figures[seed], baseline_figures[seed]
        d = {
            cid: sign * (float(a[cid]) - float(b[cid]))
            for cid in a
            if cid in b and _finite(a[cid]) and _finite(b[cid])
        }
        if d:
            diffs[seed] = d
    if not diffs:
        raise ValueError(f"no seed has figures of both {strategy} and {baseline}")
    seeds = sorted(diffs)
    per_seed = tuple(float(np.mean(list(diffs[s].values()))) for s in seeds)
    ids = sorted(set().union(*[set(d) for d in diffs.values()]))
    names = names or {}
    clients = tuple(
        ClientGain(
            cid,
            str(names.get(cid, f"client {cid}")),
            tuple(diffs[s][cid] for s in seeds if cid in diffs[s]),
            t_interval([diffs[s][cid] for s in seeds if cid in diffs[s]], level),
        )
        for cid in ids
    )
    if len(seeds) >= 2:
        interval, over = t_interval(per_seed, level), "seeds"
    elif len(clients) >= 2:
        interval, over = t_interval([c.mean for c in clients], level), "clients"
    else:
        interval, over = t_interval(per_seed, level), "none"
    return Verdict(
        strategy, baseline, metric, tuple(seeds), per_seed, interval, over, clients, best_round, tuple(pairs)
    )


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# ---- overfitting --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Overfitting:
    """Held-out loss rising while the training loss falls."""

    low_round: int
    low: float
    last_round: int
    last: float
    train_then: float
    train_last: float

    @property
    def message(self) -> str:
        return (
            f"Overfitting: the held-out loss rose from {self.low:.3g} (round {self.low_round}) to "
            f"{self.last:.3g} (round {self.last_round}) while the training loss fell from "
            f"{self.train_then:.3g} to {self.train_last:.3g}. The figures shown are those at each "
            f"client's best validation round; fewer rounds, a lower learning rate or more data would help."
        )


def overfitting(
    rounds: Sequence[int], train_loss: Sequence[float], heldout_loss: Sequence[float], *, rise: float = 0.1
) -> Overfitting | None:
    """Flag overfitting: after its lowest point, the held-out loss ends at least ``rise`` (10%)
    higher, the lowest point is not in the last evaluated round, and the training loss fell
    between the two rounds. ``None`` when the curves do not show it (or are too short)."""
    points = [
        (int(r), float(t), float(h))
        for r, t, h in zip(rounds, train_loss, heldout_loss, strict=True)
        if _finite(t) and _finite(h)
    ]
    if len(points) < 3:
        return None
    low_i = min(range(len(points)), key=lambda i: points[i][2])
    r_low, t_low, h_low = points[low_i]
    r_last, t_last, h_last = points[-1]
    if low_i == len(points) - 1 or h_last < h_low * (1 + rise) + 1e-12 or t_last >= t_low:
        return None
    return Overfitting(r_low, h_low, r_last, h_last, t_low, t_last)


__all__ = [
    "BASELINES",
    "ClientGain",
    "Interval",
    "Overfitting",
    "Verdict",
    "overfitting",
    "paired_verdict",
    "run_primary",
    "t_interval",
]
