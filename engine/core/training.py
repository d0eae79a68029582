"""Local training and evaluation: the only place that loops over mini-batches.

Shuffling and augmentation draw from an explicit ``torch.Generator`` (derived from the run seed,
the client and the round), never from torch's global RNG, so a client's work is the same
whichever executor or thread runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from threading import Event
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.core.optimizers import OPTIMIZERS
from engine.core.scores import scores, scores_many
from engine.data import augment as augmentation
from engine.errors import CancelledError

if TYPE_CHECKING:
    from engine.privacy.dpsgd import DPSettings

LossFn = Callable[[Tensor, Tensor], Tensor]


def task_loss(task: str, out: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy for classification, squared error for regression (first output): the batch
    mean, or one value per sample with ``reduction="none"``."""
    if task == "classification":
        return F.cross_entropy(out, y, reduction=reduction)
    return F.mse_loss(out[:, 0], y, reduction=reduction)


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """A fresh optimiser of the client's kind (state is not carried across rounds)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}'")
    return OPTIMIZERS[name].make(params, lr, momentum, weight_decay)


@dataclass
class FitStats:
    """What one call of :func:`fit` did."""

    loss: float = 0.0
    steps: int = 0
    samples: int = 0
    private_steps: int = 0
    """Steps taken with DP-SGD (:mod:`engine.privacy.dpsgd`): the privacy accountant counts them."""
    clipped: float = 0.0
    """DP-SGD: share of the sampled records whose gradient was clipped."""


def fit(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    *,
    augment: augmentation.AugmentConfig | None = None,
    cancel: Event | None = None,
    work_fraction: float = 1.0,
    privacy: DPSettings | None = None,
) -> FitStats:
    """Train ``model`` for ``epochs`` over ``(x, y)`` in shuffled mini-batches.

    :param loss_fn: ``loss_fn(x_batch, y_batch)`` runs the forward pass and returns the loss
        (strategies add their terms there).
    :param work_fraction: stop after this share of the steps (a straggler's partial work).
    :param cancel: checked between batches; when set, :class:`CancelledError` is raised.
    :param privacy: train with DP-SGD instead (Poisson-sampled batches, clipped per-record
        gradients, Gaussian noise: :func:`engine.privacy.dpsgd.fit_private`).
    :returns: mean loss over the steps taken.
    """
    if privacy is not None:
        from engine.privacy.dpsgd import fit_private

        return fit_private(
            model,
            x,
            y,
            loss_fn,
            optimizer,
            epochs,
            batch_size,
            generator,
            privacy,
            augment=augment,
            cancel=cancel,
            work_fraction=work_fraction,
        )
    n = len(y)
    stats = FitStats()
    if n == 0 or epochs <= 0:
        return stats
    steps_per_epoch = math.ceil(n / batch_size)
    budget = max(1, math.ceil(epochs * steps_per_epoch * work_fraction)) if work_fraction < 1 else None
    model.train()
    total = torch.zeros((), device=x.device)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(x.device, non_blocking=True)
        for start in range(0, n, batch_size):
            if cancel is not None and cancel.is_set():
                raise CancelledError("cancelled")
            idx = order[start : start + batch_size]
            xb, yb = x[idx], y[idx]
            if augment is not None and augment.active:
                xb = augmentation.apply(xb, augment, generator)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(xb, yb)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            stats.steps += 1
            stats.samples += len(idx)
            if budget is not None and stats.steps >= budget:
                stats.loss = float(total) / stats.steps
                return stats
    stats.loss = float(total) / max(stats.steps, 1)
    return stats


@torch.no_grad()
def predict(forward: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 2048) -> Tensor:
    """Outputs of ``forward`` over ``x`` in chunks (eval mode is the caller's business)."""
    if len(x) <= batch_size:
        return forward(x)
    return torch.cat([forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def metrics(task: str, out: Tensor, y: Tensor, target_std: float = 1.0) -> dict[str, float]:
    """The task metrics of one split (:func:`engine.core.scores.scores`: accuracy, balanced accuracy,
    macro F1, AUC and loss; or R^2, RMSE, MAE, MSE in data units and loss in standard units);
    empty dict for an empty split."""
    return scores(task, out, y, target_std)


def metrics_many(
    task: str, outs: list[Tensor], ys: list[Tensor], target_std: float = 1.0
) -> list[dict[str, float]]:
    """:func:`metrics` for many (output, target) pairs at once (:func:`engine.core.scores.scores_many`)."""
    return scores_many(task, outs, ys, target_std)
