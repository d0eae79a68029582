"""DP-SGD on a client (Abadi et al. 2016, "Deep Learning with Differential Privacy", CCS,
arXiv:1607.00133): per-record gradients, each clipped to a norm, summed, Gaussian noise added.

:func:`fit_private` replaces :func:`engine.core.training.fit`'s loop for a client with ``privacy`` set:

- **Poisson sampling.** Each step draws its batch by including every record independently with
  probability ``q = batch_size / n`` (Opacus's ``poisson_sampling=True``), so batch sizes vary and
  a batch may be empty. The accountants assume exactly this; the shuffled fixed-size batches of
  the ordinary loop (each record once per epoch) are *not* Poisson sampling and would make the
  reported epsilon wrong. ``ceil(n / batch_size)`` steps make an epoch, as in the ordinary loop.
- **Per-record gradients** with ``torch.func``: ``vmap(grad(loss of one record))`` over the batch,
  through the strategy's own loss (FedProx's and SCAFFOLD's terms, FedProto's pull included), for
  every architecture of the zoo; LSTMs and GRUs run step by step in plain operations for it
  (:mod:`engine.privacy.recurrent`: torch's fused kernels do not batch). A model ``vmap`` still
  cannot trace falls back to one backward pass per record: the same numbers, slower.
- **Clip, sum, noise, normalise**: ``g_i * min(1, C / ||g_i||)`` over all trained parameters
  together, summed, plus ``N(0, (sigma C)^2)`` per coordinate, divided by the *expected* batch size
  ``q n`` (so the noise scale does not depend on the batch actually drawn). The client's own
  optimiser then steps (momentum or Adam on privatised gradients is post-processing).

The noise comes from the client's seeded generator so that runs reproduce; a deployment would
draw it from a cryptographically secure source. Only training on the client's own data is
privatised; strategies that also train on a public set do so without noise, and strategies whose
upload is computed from the private data itself (prototypes, per-class logits) are refused before
launch (:func:`engine.privacy.checks.strategy_problem`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from threading import Event

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from engine.core.training import FitStats
from engine.errors import CancelledError
from engine.privacy.recurrent import unrolled


@dataclass(frozen=True)
class DPSettings:
    """What one client's DP-SGD needs in its turn (resolved before the run: the noise multiplier
    is calibrated when only a target epsilon was given)."""

    clip_norm: float
    noise_multiplier: float

    def sample_rate(self, n: int, batch_size: int) -> float:
        """Poisson sampling rate for ``n`` records and a nominal batch size."""
        return min(1.0, batch_size / n) if n > 0 else 0.0


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Steps that make one epoch (``ceil(n / batch_size)``, as the ordinary loop)."""
    return math.ceil(n / batch_size) if n > 0 else 0


# ---- layers that cannot be privatised ----------------------------------------------------------
SUGGESTIONS = {
    "BatchNorm": "use group norm (nn.GroupNorm) or layer norm instead",
    "SyncBatchNorm": "use group norm (nn.GroupNorm) or layer norm instead",
    "InstanceNorm": "set track_running_stats=False, or use group norm",
}


def unprivatisable(model: nn.Module) -> list[str]:
    """Layers of ``model`` that DP-SGD cannot privatise, each with why and what to use instead
    (empty when every layer can be privatised).

    - Batch norm normalises each record with statistics of the whole batch, so one record's
      gradient depends on the others (clipping no longer bounds a record's influence), and its
      running statistics are computed from the data without noise and shipped with the model.
    - Instance norm with running statistics leaks the same way (without them it is per record).
    - Any other layer whose buffers change during a training forward pass (checked by
      :func:`changes_buffers`) keeps statistics of the data that no noise protects.
    """
    found: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            kind = "SyncBatchNorm" if isinstance(module, nn.SyncBatchNorm) else "BatchNorm"
            found.append(
                f"{name or 'the model'} ({type(module).__name__}) mixes the records of a batch and "
                f"keeps unprotected running statistics: {SUGGESTIONS[kind]}"
            )
        elif isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats:
            found.append(
                f"{name} ({type(module).__name__}) keeps unprotected running statistics: "
                f"{SUGGESTIONS['InstanceNorm']}"
            )
    return found


def changes_buffers(model: nn.Module, sample: Tensor) -> list[str]:
    """Names of floating buffers a training-mode forward pass on ``sample`` changes (statistics
    kept from the data; restored afterwards)."""
    buffers = {n: b for n, b in model.named_buffers() if b.is_floating_point()}
    if not buffers:
        return []
    before = {n: b.detach().clone() for n, b in buffers.items()}
    was = model.training
    model.train()
    try:
        with torch.no_grad():
            model(sample)
    finally:
        model.train(was)
    changed = [n for n, b in buffers.items() if not torch.equal(b, before[n])]
    with torch.no_grad():
        for n, b in buffers.items():
            b.copy_(before[n])
    return changed


# ---- per-record gradients ------------------------------------------------------------------------
class _LossOf(nn.Module):
    """``forward(x, y) = loss_fn(x, y)`` with ``model`` as a submodule, so that
    ``functional_call`` swaps the model's parameters for the whole call: the strategy's loss
    reads them through the live module as usual."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.loss_fn(x, y)


def per_sample_grads(
    model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], xb: Tensor, yb: Tensor, names: list[str]
) -> tuple[dict[str, Tensor], Tensor]:
    """Gradient of ``loss_fn`` on each record alone (a batch of one) with respect to the named
    parameters of ``model`` (``{name: (B, *shape)}``) and each record's loss ``(B,)``. ``vmap``
    over the records, or one backward pass per record for models ``vmap`` cannot trace
    (remembered on the module)."""
    live = dict(model.named_parameters())
    params = {n: live[n].detach() for n in names}
    if len(yb) == 0:
        return {n: p.new_zeros((0, *p.shape)) for n, p in params.items()}, xb.new_zeros(0)
    if not model.__dict__.get("_fm_dp_loop"):
        wrapper = _LossOf(model, loss_fn)

        def one(p: dict[str, Tensor], x1: Tensor, y1: Tensor) -> Tensor:
            return functional_call(
                wrapper,
                {f"model.{n}": t for n, t in p.items()},
                (x1.unsqueeze(0), y1.unsqueeze(0)),
                strict=False,
            )

        try:
            # LSTM/GRU step by step in plain operations: their fused kernels do not batch
            with warnings.catch_warnings(), unrolled(model):
                warnings.simplefilter("ignore")  # vmap's "performance drop" notes
                grads, losses = vmap(grad_and_value(one), in_dims=(None, 0, 0), randomness="different")(
                    params, xb, yb
                )
                return grads, losses.detach()
        except (RuntimeError, NotImplementedError, ValueError):
            model.__dict__["_fm_dp_loop"] = True
    out = {n: torch.empty((len(yb), *p.shape), dtype=p.dtype, device=p.device) for n, p in params.items()}
    losses = torch.empty(len(yb), device=xb.device)
    tensors = [live[n] for n in names]
    for i in range(len(yb)):
        loss = loss_fn(xb[i : i + 1], yb[i : i + 1])
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        losses[i] = loss.detach()
        for n, g in zip(names, grads, strict=True):
            out[n][i] = 0.0 if g is None else g
    return out, losses


def clip(grads: dict[str, Tensor], clip_norm: float) -> tuple[dict[str, Tensor], Tensor]:
    """Per-record gradients scaled to an L2 norm of at most ``clip_norm`` over all parameters
    together (Opacus's flat clipping: ``factor = min(1, C / (||g_i|| + 1e-6))``); returns the
    clipped gradients and the norms before clipping."""
    first = next(iter(grads.values()))
    b = first.shape[0]
    if b == 0:
        return grads, first.new_zeros(0)
    norms = torch.stack([g.reshape(b, -1).norm(2, dim=1) for g in grads.values()], dim=1).norm(2, dim=1)
    factor = (clip_norm / (norms + 1e-6)).clamp(max=1.0)
    return {n: g * factor.view(-1, *([1] * (g.dim() - 1))) for n, g in grads.items()}, norms


def privatise(
    grads: dict[str, Tensor], settings: DPSettings, expected_batch: float, generator: torch.Generator
) -> tuple[dict[str, Tensor], Tensor]:
    """The DP-SGD gradient: clipped per-record gradients summed, Gaussian noise of std
    ``noise_multiplier x clip_norm`` added, divided by ``expected_batch``; and the norms before
    clipping."""
    clipped, norms = clip(grads, settings.clip_norm)
    std = settings.noise_multiplier * settings.clip_norm
    out = {}
    for n, g in clipped.items():
        total = g.sum(0)
        noise = torch.normal(0.0, std, total.shape, generator=generator, dtype=total.dtype)
        out[n] = (total + noise.to(total.device)) / expected_batch
    return out, norms


def poisson_batch(n: int, rate: float, generator: torch.Generator) -> Tensor:
    """Indices of a Poisson-sampled batch: each of ``n`` records with probability ``rate``."""
    return torch.nonzero(torch.rand(n, generator=generator) < rate).flatten()


def fit_private(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    settings: DPSettings,
    *,
    augment=None,
    cancel: Event | None = None,
    work_fraction: float = 1.0,
) -> FitStats:
    """Train ``model`` with DP-SGD for ``epochs`` of ``ceil(n / batch_size)`` Poisson-sampled steps
    each (``work_fraction``: only that share of the steps, for a straggler's partial work).

    The parameters updated are those of ``optimizer`` (FedRep trains the head, then the body).
    """
    from engine.data import augment as augmentation

    n = len(y)
    stats = FitStats()
    if n == 0 or epochs <= 0:
        return stats
    per_epoch = steps_per_epoch(n, batch_size)
    total = epochs * per_epoch
    if work_fraction < 1:
        total = max(1, math.ceil(total * work_fraction))
    rate = settings.sample_rate(n, batch_size)
    expected = rate * n
    trained = {id(p) for group in optimizer.param_groups for p in group["params"] if p.requires_grad}
    names = [name for name, p in model.named_parameters() if id(p) in trained]
    live = dict(model.named_parameters())
    model.train()
    loss_sum, clipped = 0.0, 0
    for _ in range(total):
        if cancel is not None and cancel.is_set():
            raise CancelledError("cancelled")
        idx = poisson_batch(n, rate, generator).to(x.device)
        xb, yb = x[idx], y[idx]
        if augment is not None and augment.active and len(idx):
            xb = augmentation.apply(xb, augment, generator)
        grads, losses = per_sample_grads(model, loss_fn, xb, yb, names)
        noisy, norms = privatise(grads, settings, expected, generator)
        for name, g in noisy.items():
            live[name].grad = g
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_sum += float(losses.sum())
        clipped += int((norms > settings.clip_norm).sum())
        stats.steps += 1
        stats.samples += len(idx)
    stats.loss = loss_sum / stats.samples if stats.samples else float("nan")
    stats.clipped = clipped / stats.samples if stats.samples else 0.0
    stats.private_steps = stats.steps  # every step of this loop is a DP step
    return stats
