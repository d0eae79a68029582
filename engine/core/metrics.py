"""Every figure FedMosaic reports, defined once: the task metrics computed from a model's outputs,
the reference a trivial predictor reaches, the experiment's primary (headline) metric, the metric
keys a run records. The aggregates over clients (mean, spread, worst 10%, best) are computed in
:mod:`engine.core.scores`.

Task metrics (``key``: what the key suffix is in the database):

- classification: ``acc`` accuracy; ``bacc`` balanced accuracy (mean recall over the classes
  present in the targets); ``f1`` macro F1 (over the classes present in targets or predictions);
  ``auc`` ROC AUC (binary: of the positive-class score; more classes: one-vs-rest, the mean over
  the classes present, each scored by its softmax probability; undefined (NaN) with fewer than two
  classes present); ``loss`` cross-entropy.
- regression: ``r2`` coefficient of determination (against the split's own mean); ``rmse`` and
  ``mae`` root mean squared and mean absolute error, in the target's own units; ``mse`` (data
  units squared); ``loss`` the squared error in standard units (what training minimises).

The reference (``ref_`` keys) is what a predictor that ignores the input reaches: the majority
class of the training labels (classification; its accuracy is the majority share, its balanced
accuracy 1/K, its AUC 0.5) or the training mean (regression; R^2 at most 0). Per client it is
fitted on the client's training split; globally on the pooled training labels.

Record keys: ``<scope>_<metric>`` per client and round, scope ``local`` (the client's model on its
own test split), ``global`` (on the global test set), ``val`` (on its validation split: early
stopping); ``best_local_<metric>``/``best_global_<metric>`` and ``best_round``: the figures at the
client's best validation round (the kept weights); ``server_<metric>`` (a server-side model on the
global test set), ``server_val_<metric>``, ``best_server_<metric>``. Round keys add the aggregate
over clients: ``local_bacc_mean``, ``best_local_bacc_worst10``...

The primary metric (:func:`engine.core.primary.choose_primary`) is the headline of every chart,
table, export and report; its headline key is :func:`headline_key`: the clients' own-test figure,
mean over clients, at each client's best validation round (``best_local_<metric>_mean``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


# ---- the metrics ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One task metric."""

    key: str
    """Suffix in record keys (``local_<key>``)."""
    name: str
    """Value of the config's ``primary_metric`` that selects it."""
    label: str
    """Name in words, for sentences and axis titles."""
    task: str
    higher_is_better: bool
    scale: float = 1.0
    """Differences are shown multiplied by this (100: in points)."""
    unit: str = ""
    """Unit of a shown difference (``points``, ``data units``)."""
    description: str = ""

    def diff_text(self, value: float, signed: bool = True) -> str:
        """A difference of this metric as shown to people: ``+2.4 points``, ``-0.031``."""
        v = value * self.scale
        digits = 1 if self.scale == 100 else 3
        text = f"{v:+.{digits}f}" if signed else f"{abs(v):.{digits}f}"
        return f"{text} {self.unit}".strip()

    def value_text(self, value: float | None) -> str:
        """A value of this metric: ``0.812``; ``—`` when missing."""
        if value is None or not math.isfinite(value):
            return "—"
        return f"{value:.3f}" if abs(value) < 1e4 else f"{value:,.0f}"


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric(
            "acc",
            "accuracy",
            "accuracy",
            "classification",
            True,
            100,
            "points",
            "share of samples whose predicted class is right",
        ),
        Metric(
            "bacc",
            "balanced_accuracy",
            "balanced accuracy",
            "classification",
            True,
            100,
            "points",
            "mean over classes of the share of that class predicted right (a majority-class guess scores "
            "1/K)",
        ),
        Metric(
            "f1",
            "macro_f1",
            "macro F1",
            "classification",
            True,
            100,
            "points",
            "mean over classes of the harmonic mean of precision and recall",
        ),
        Metric(
            "auc",
            "auc",
            "AUC",
            "classification",
            True,
            100,
            "points",
            "area under the ROC curve (one-vs-rest mean over classes when there are more than two)",
        ),
        Metric(
            "r2",
            "r2",
            "R²",
            "regression",
            True,
            1,
            "",
            "share of the target's variance explained (0: no better than the mean, 1: perfect)",
        ),
        Metric(
            "rmse",
            "rmse",
            "RMSE",
            "regression",
            False,
            1,
            "data units",
            "root mean squared error, in the target's units",
        ),
        Metric(
            "mae",
            "mae",
            "MAE",
            "regression",
            False,
            1,
            "data units",
            "mean absolute error, in the target's units",
        ),
        Metric("mse", "mse", "MSE", "regression", False, 1, "data units²", "mean squared error"),
        Metric(
            "loss",
            "loss",
            "loss",
            "any",
            False,
            1,
            "",
            "the training objective (cross-entropy or squared error)",
        ),
    )
}
"""Every task metric by key."""

TASK_METRICS = {
    "classification": ("acc", "bacc", "f1", "auc", "loss"),
    "regression": ("r2", "rmse", "mae", "mse", "loss"),
}
"""Metrics computed for each task, in display order."""

PRIMARY_CHOICES = ("auto", "accuracy", "balanced_accuracy", "macro_f1", "auc", "r2", "rmse", "mae")
"""Values of the config's ``primary_metric``."""

SCOPES = ("local", "global", "val")
"""Per-client evaluation scopes."""
HEADLINE_SCOPE = "local"
"""The headline is each client's model on its own test split: defined for every strategy
(``local`` has no shared model), and the figure the paired verdict compares client by client."""


def by_name(name: str) -> Metric:
    """The metric a ``primary_metric`` value (or a key) names.

    :raises KeyError: unknown name.
    """
    for m in METRICS.values():
        if name in (m.name, m.key):
            return m
    raise KeyError(name)


def headline_key(metric: str | Metric, best: bool = True) -> str:
    """The round key of the headline figure for ``metric``: the clients' own-test figure, mean
    over clients, at their best validation rounds (``best=False``: the round's own figure)."""
    key = metric.key if isinstance(metric, Metric) else metric
    return f"{'best_' if best else ''}{HEADLINE_SCOPE}_{key}_mean"


def client_key(metric: str | Metric, best: bool = True, scope: str = HEADLINE_SCOPE) -> str:
    """The per-client record key of ``metric`` (``best_local_bacc``)."""
    key = metric.key if isinstance(metric, Metric) else metric
    return f"{'best_' if best else ''}{scope}_{key}"


def run_primary(run: Mapping[str, Any] | None, keys: set[str] | None = None) -> Metric:
    """The primary metric of a stored run: the one its summary or manifest names, else the
    config's choice, else (runs recorded before primary metrics existed) accuracy or R^2 by
    which its recorded keys hold."""
    run = run or {}
    for source in (run.get("summary"), run.get("manifest")):
        if isinstance(source, Mapping) and isinstance(source.get("primary_metric"), str):
            try:
                return by_name(source["primary_metric"])
            except KeyError:
                pass
    config = run.get("config")
    setting = config.get("primary_metric") if isinstance(config, Mapping) else None
    if isinstance(setting, str) and setting != "auto":
        try:
            return by_name(setting)
        except KeyError:
            pass
    keys = (
        keys
        if keys is not None
        else set((run.get("summary") or {}) if isinstance(run.get("summary"), Mapping) else ())
    )
    if any("_r2" in k for k in keys):
        return METRICS["r2"]
    return METRICS["acc"]


def headline(
    figures: Mapping[str, Any] | None, metric: Metric | None = None
) -> tuple[str | None, float | None]:
    """The headline figure among a run's figures (its summary, or one round's metrics): the
    primary metric on the clients' own test data, mean over clients, at their best validation
    rounds; else that round's own figure; else (runs recorded before validation splits) the
    server model's or the global test set's. ``(key, value)``, or ``(None, None)``."""
    figures = figures or {}
    metric = metric or run_primary({"summary": figures}, set(figures))
    for key in headline_keys(metric):
        value = figures.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return key, float(value)
    return None, None


def headline_keys(metric: Metric, best_first: bool = True) -> tuple[str, ...]:
    """Where a headline figure of ``metric`` is looked for, in order (the one order every page,
    export, report and the CLI use): the clients' own-test mean at their best validation rounds,
    that round's own figure (``best_first=False``: the round's own figure first, for curves over
    rounds), the server model's, the global test set's."""
    best, own = headline_key(metric), headline_key(metric, best=False)
    m = metric.key if isinstance(metric, Metric) else metric
    rest = (f"server_{m}", f"global_{m}_mean")
    return (best, own) + rest if best_first else (own, best) + rest


def summary_keys(metric: Metric, task: str | None = None) -> tuple[str, ...]:
    """Record keys a summary table shows first, headline first: the primary metric at the best
    validation rounds and in the final round, its worst 10% and spread over clients, the trivial
    predictor, then the task's other metrics, the server model's, and the costs."""
    task = task or metric.task
    others = [k for k in TASK_METRICS.get(task, ()) if k not in (metric.key, "loss")]
    m = metric.key
    return (
        headline_key(m),
        headline_key(m, best=False),
        f"best_local_{m}_worst10",
        f"best_local_{m}_std",
        f"ref_local_{m}_mean",
        f"best_global_{m}_mean",
        f"best_server_{m}",
        "best_round_mean",
        *(headline_key(k) for k in others),
        f"server_{m}",
        "sim_time_s",
        "cum_bytes_up",
        "cum_bytes_down",
        "cum_wall_s",
    )


def shared_primary(runs: Sequence[Mapping[str, Any]]) -> Metric:
    """The primary metric for a page of several runs: the most common among them (the first
    run's on a tie)."""
    found = [run_primary(r) for r in runs] or [METRICS["acc"]]
    counts: dict[str, int] = {}
    for m in found:
        counts[m.key] = counts.get(m.key, 0) + 1
    best = max(counts.values())
    return next(m for m in found if counts[m.key] == best)


def base_metric(key: str) -> Metric | None:
    """The task metric a record key measures (``best_local_bacc_worst10`` -> balanced accuracy)."""
    core = key.split("[", 1)[0]
    parts = core.split("_")
    if len(parts) > 1 and parts[-1] in STATS:
        parts = parts[:-1]
    while parts and parts[0] in ("best", "ref", "local", "global", "val", "server", "train"):
        if parts[0] == "train" and len(parts) > 1:
            return METRICS["loss"] if parts[1:] == ["loss"] else None
        parts = parts[1:]
    return METRICS.get("_".join(parts))


def reference_key(key: str) -> str | None:
    """The round key of the trivial predictor matching a record key: own-test figures
    (``local_``/``best_local_``/``val_``) -> ``ref_local_<m>_mean``; global-test and server figures
    -> ``ref_global_<m>``; ``None`` for keys that are no task metric or a spread."""
    metric = base_metric(key)
    if metric is None or key.endswith(("_std", "_best")) or key.startswith("ref_"):
        return None
    core = key.removeprefix("best_")
    if core.startswith(("local_", "val_")):
        return f"ref_local_{metric.key}_mean"
    if core.startswith(("global_", "server_")):
        return f"ref_global_{metric.key}"
    return None


STATS = ("mean", "wmean", "std", "worst10", "best")
"""Aggregates over clients recorded per round (:func:`engine.core.scores.summarize`)."""

LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse")


def higher_is_better(key: str) -> bool:
    """Whether larger values of record key ``key`` are better (accuracy, R^2) or worse (loss,
    error, spread over clients)."""
    if key.endswith("_std"):
        return False
    metric = base_metric(key)
    if metric is not None:
        return metric.higher_is_better
    return not any(key.endswith(s) for s in LOWER_IS_BETTER)


def record_keys(task: str) -> tuple[str, ...]:
    """Per-client keys aggregated over clients each round (``<key>_mean`` etc.)."""
    names = TASK_METRICS.get(task, TASK_METRICS["classification"])
    return (
        *(f"{scope}_{m}" for scope in SCOPES for m in names),
        *(f"best_{scope}_{m}" for scope in ("local", "global") for m in names),
        "best_round",
        "train_loss",
    )
