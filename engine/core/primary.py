"""The experiment's primary (headline) metric: the config's ``primary_metric`` resolved for the
task, ``auto`` by the rule below, with the reason the pages show."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.core.metrics import METRICS, TASK_METRICS, Metric, by_name

IMBALANCE_THRESHOLD = 0.7
"""``auto`` picks balanced accuracy when some client's majority class exceeds this share."""

DEFAULT_REGRESSION = "r2"
"""``auto``'s regression metric: R^2 is scale-free (clients whose targets have different spreads
count alike in a mean over clients) and its mean-predictor reference is 0, so the headline reads
on its own; RMSE in data units is shown beside it."""


@dataclass(frozen=True)
class Primary:
    """The experiment's resolved primary metric and why it was chosen."""

    metric: Metric
    reason: str

    @property
    def key(self) -> str:
        return self.metric.key


def choose_primary(
    setting: str,
    task: str,
    class_counts: Sequence[Sequence[float]] | None = None,
    names: Sequence[str] | None = None,
) -> Primary:
    """Resolve the config's ``primary_metric`` (``auto`` or a metric name) for a task.

    ``auto``: balanced accuracy when any client's majority class exceeds
    :data:`IMBALANCE_THRESHOLD` of its training labels (``class_counts``: clients x classes),
    accuracy otherwise; R^2 for regression (:data:`DEFAULT_REGRESSION`).

    :raises ValueError: a metric of the other task (e.g. ``auc`` for regression).
    """
    if setting not in ("auto", None, ""):
        metric = by_name(setting)
        if metric.task not in (task, "any"):
            raise ValueError(
                f"primary metric '{setting}' is for {metric.task}, but this dataset is a "
                f"{task} task; choose one of "
                f"{', '.join(METRICS[k].name for k in TASK_METRICS[task] if k != 'loss')}"
            )
        return Primary(metric, "chosen in the experiment")
    if task == "regression":
        return Primary(METRICS[DEFAULT_REGRESSION], "regression: R² by default")
    worst, who = 0.0, None
    for i, row in enumerate(class_counts or []):
        row = np.asarray(row, dtype=float)
        if row.sum() > 0 and row.max() / row.sum() > worst:
            worst, who = float(row.max() / row.sum()), i
    if worst > IMBALANCE_THRESHOLD:
        name = names[who] if names is not None and who is not None else f"client {who}"
        return Primary(
            METRICS["bacc"],
            f"{name}'s training data is {100 * worst:.0f}% one class (over "
            f"{100 * IMBALANCE_THRESHOLD:.0f}%): accuracy would reward always "
            f"guessing it",
        )
    return Primary(METRICS["acc"], f"no client's majority class exceeds {100 * IMBALANCE_THRESHOLD:.0f}%")
