"""Runs that went wrong say so: a model stuck at chance, a strategy far below training alone.

Two checks, both with the likely cause in words a user can act on:

- :class:`Monitor` watches a run as it goes (the round loop feeds it each evaluated round's
  metrics) and raises a warning event once when the clients' models, or a server model, sit at
  chance in two evaluated rounds in a row: accuracy no better than always predicting the global
  test set's most common class, or R² at or below 0 (no better than predicting the mean). One
  evaluation at chance is not enough: FedDF's GRU server model under plain SGD sat at 0.100 at
  round 10 and reached 0.646 by round 20. It looks at the training loss to tell a
  diverging run (lower the learning rate) from one that learns too slowly (raise it, use Adam or
  momentum), and adds what the strategy itself says about its failure modes
  (:attr:`engine.strategies.Strategy.pitfalls`).
- :func:`below_local` turns a paired comparison with ``local`` (same split and seed; the verdict's
  mean difference in points and its interval) into the same kind of warning when the strategy is
  far below training alone.

The messages name what to change as the pages show it (Clients: optimiser, learning rate, epochs;
Data: public fraction), not config keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CHANCE_MARGIN = 0.02
"""Accuracy within this of the constant predictor's counts as chance."""
FAR_BELOW = 0.05
"""A strategy this far (5 points) or more below its paired ``local`` gets a warning."""
MIN_ROUNDS = 5
"""Rounds a run has before a model still at chance is called stuck."""
AT_CHANCE = "At chance"
"""How a :class:`Monitor` warning begins (:func:`run_warnings` finds them by it)."""


def chance_accuracy(labels: Sequence[int]) -> float:
    """Accuracy of always predicting the most common label (0 for no labels)."""
    if len(labels) == 0:
        return 0.0
    counts: dict[int, int] = {}
    for label in labels:
        counts[int(label)] = counts.get(int(label), 0) + 1
    return max(counts.values()) / len(labels)


def training_trend(losses: Sequence[float]) -> str:
    """``"diverged"`` (a non-finite or rising training loss), ``"flat"`` (it fell by under 5%
    from the first rounds to the last ones) or ``"falling"``."""
    values = [v for v in losses if v is not None]
    if any(not math.isfinite(v) for v in values):
        return "diverged"
    values = [v for v in values if math.isfinite(v)]
    if len(values) < 2:
        return "falling"
    k = max(1, len(values) // 4)
    start, end = sum(values[:k]) / k, sum(values[-k:]) / k
    if end > 1.5 * start:
        return "diverged"
    if end > 0.95 * start:
        return "flat"
    return "falling"


TREND_ADVICE = {
    "diverged": (
        "the training loss rose or became infinite: the learning rate is too high for these "
        "models; lower it (Clients: learning rate) tenfold"
    ),
    "flat": (
        "the training loss barely fell: the clients learn too slowly; raise the learning rate, "
        "switch the optimiser to Adam or give SGD momentum 0.9, or train more epochs per round "
        "(Clients page)"
    ),
    "falling": "the clients' training loss falls, so what they learn is lost in what the strategy exchanges",
}


@dataclass
class Monitor:
    """Watches one run's evaluated rounds; :meth:`round` returns warnings to record as events.

    :param task: ``classification`` or ``regression``.
    :param chance: accuracy of the constant predictor on the global test set (classification).
    :param strategy: the strategy's name, for the message.
    :param pitfalls: what the strategy says about how it fails (may be empty).
    """

    task: str
    chance: float
    strategy: str
    pitfalls: str = ""
    min_rounds: int = MIN_ROUNDS
    losses: list[float] = field(default_factory=list)
    warned: set[str] = field(default_factory=set)
    at_chance_before: set[str] = field(default_factory=set)
    """The figures at chance in the previous evaluated round."""

    def at_chance(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return value is not None  # NaN/inf figures are a failure too
        if self.task == "classification":
            return value <= self.chance + CHANCE_MARGIN
        return value <= 0.0

    def round(self, rnd: int, metrics: Mapping[str, float]) -> list[str]:
        """The warning for this round's metrics, once per run: every model figure at chance in
        this evaluated round and the one before, the likely cause from the training loss's trend,
        and the strategy's own note."""
        if "train_loss_mean" in metrics:
            self.losses.append(float(metrics["train_loss_mean"]))
        if self.warned:
            return []
        key = "acc" if self.task == "classification" else "r2"
        prefix = f"server_{key}["
        figures = [
            (label, metric)
            for label, metric in (
                ("the clients' models on the global test set", f"global_{key}_mean"),
                ("the clients' models on their own test splits", f"local_{key}_mean"),
            )
            if metric in metrics
        ]
        figures += [
            (f"the server's {name[len(prefix) : -1]} model", name)
            for name in sorted(metrics)
            if name.startswith(prefix)
        ]
        if not figures:
            return []  # not an evaluated round
        now = {metric for _, metric in figures if self.at_chance(metrics[metric])}
        stuck = [
            (label, metrics[metric])
            for label, metric in figures
            if metric in now and metric in self.at_chance_before
        ]
        self.at_chance_before = now
        if rnd < self.min_rounds or not stuck:
            return []
        self.warned.add("chance")
        what = ", ".join(f"{label} ({value:.3f})" for label, value in stuck)
        floor = (
            f"no better than always predicting the most common class ({self.chance:.3f} accuracy)"
            if self.task == "classification"
            else "no better than predicting the mean (R² 0)"
        )
        message = (
            f"{AT_CHANCE} at round {rnd} with {self.strategy}: {what}; {floor}. Likely cause: "
            f"{TREND_ADVICE[training_trend(self.losses)]}."
        )
        if self.pitfalls:
            message += f" About {self.strategy}: {self.pitfalls}"
        return [message]


def run_warnings(store: Any, run_id: str) -> list[str]:
    """The warnings a :class:`Monitor` recorded for a stored run (oldest first), for the Results
    page to show above the charts."""
    events = store.events(run_id)
    if events is None or len(events) == 0 or "message" not in events.columns:
        return []
    rows = events[events["message"].astype(str).str.startswith(AT_CHANCE)]
    return [str(m) for m in rows["message"]]


def below_local(
    strategy: str,
    difference: float,
    low: float | None = None,
    high: float | None = None,
    *,
    pitfalls: str = "",
    metric: str = "accuracy",
) -> str | None:
    """A warning when a strategy is far below its paired ``local`` run, or ``None``.

    :param difference: strategy minus ``local`` on the same split and seed (a fraction: -0.087 is
        8.7 points below), e.g. the verdict's mean paired difference.
    :param low, high: its confidence interval, when there is one: the warning needs the interval
        to lie below zero (a difference beyond noise); without one the size alone decides.
    """
    if not math.isfinite(difference) or difference > -FAR_BELOW:
        return None
    if high is not None and math.isfinite(high) and high >= 0:
        return None
    interval = (
        f" (95% CI {100 * low:+.1f} to {100 * high:+.1f})"
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high)
        else ""
    )
    message = (
        f"{strategy} is {-100 * difference:.1f} points of {metric} below training alone on the "
        f"same split{interval}: collaborating this way costs the clients."
    )
    if pitfalls:
        message += f" Likely cause: {pitfalls}"
    return message


def verdict_warning(verdict: Any) -> str | None:
    """:func:`below_local` for a paired verdict against ``local`` (an object with ``strategy``,
    ``baseline``, ``interval.mean/low/high`` as fractions or in the metric's units, and
    ``metric.label`` / ``metric.higher_is_better``), with the strategy's pitfalls; ``None`` for
    other baselines, metrics where the scale is not a share, or a small or uncertain deficit."""
    if getattr(verdict, "baseline", None) != "local":
        return None
    from engine.strategies import STRATEGIES

    name = str(verdict.strategy)
    pitfalls = STRATEGIES.get(name).pitfalls if name in STRATEGIES else ""
    interval = verdict.interval
    metric = getattr(verdict, "metric", None)
    if metric is not None and getattr(metric, "scale", 100) != 100:
        return None  # R², RMSE...: "points" would mislead; the verdict's own sentence says it
    low = interval.low if getattr(interval, "n", 0) >= 2 else None
    high = interval.high if getattr(interval, "n", 0) >= 2 else None
    return below_local(
        name, float(interval.mean), low, high, pitfalls=pitfalls, metric=getattr(metric, "label", "accuracy")
    )
