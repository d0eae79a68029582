"""Shared machinery of the knowledge-sharing strategies (FedMD, FedDF, FD, FedProto, FML, FedKD,
FedGH, FedTGP). Registers nothing.

The maths are pure functions over tensors, testable on their own:

- :func:`kd_loss` — the distillation term: Hinton et al.'s temperature-scaled KL for
  classification (``T^2 * KL(softmax(t/T) || softmax(s/T))``), mean squared error of the outputs
  for regression.
- :func:`class_means` / :func:`merge_class_means` — per-class means of logits or features with
  their sample counts, and their count-weighted merge (FD, FedProto, FedGH).
- :func:`distill` — Adam steps pulling a model's outputs on unlabelled inputs towards teacher
  outputs, optionally with a cosine schedule and early stopping on a labelled validation set
  (FedDF's server-side ensemble distillation).

:class:`KnowledgeSharing` is the base of strategies whose messages are not model weights: nothing
is loaded into a client's model on receipt and each client is evaluated with its own model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor, nn

from engine.errors import CompatibilityError, ConfigError
from engine.models import FedModel, InputSpec, arch_params
from engine.strategies.base import ClientContext, ClientInfo, Params, Strategy


# ---- the maths ---------------------------------------------------------------------------------
def kd_loss(
    student: Tensor,
    teacher: Tensor,
    temperature: float = 1.0,
    task: str = "classification",
    reduction: str = "mean",
) -> Tensor:
    """Distillation loss of ``student`` outputs towards ``teacher`` outputs: the batch mean, or
    one value per sample with ``reduction="none"``.

    Classification: ``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` (the ``T^2`` keeps
    gradient sizes comparable across temperatures). Regression: mean squared error of the outputs.
    The teacher receives no gradient.
    """
    teacher = teacher.detach()
    if task != "classification":
        per = (student - teacher).pow(2).reshape(len(student), -1).mean(1)
    else:
        t = float(temperature)
        per = (
            F.kl_div(
                F.log_softmax(student / t, dim=1),
                F.log_softmax(teacher / t, dim=1),
                reduction="none",
                log_target=True,
            ).sum(1)
            * t
            * t
        )
    return per if reduction == "none" else per.mean()


def class_means(values: Tensor, y: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """Per-class means of ``values`` (N, D) under labels ``y`` (N,).

    :returns: ``means`` (n_classes, D), zero rows for absent classes, and ``counts``
        (n_classes,) as floats.
    """
    counts = torch.bincount(y, minlength=n_classes).to(values.dtype)
    sums = torch.zeros(n_classes, values.shape[1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, y, values)
    return sums / counts.clamp(min=1).unsqueeze(1), counts


def merge_class_means(means: list[Tensor], counts: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Count-weighted merge of several clients' per-class means: class ``c`` becomes
    ``sum_k n_kc m_kc / sum_k n_kc``; classes nobody holds stay zero with count 0."""
    total = torch.stack(counts).sum(0)
    weighted = sum(m * n.unsqueeze(1) for m, n in zip(means, counts, strict=True))
    return weighted / total.clamp(min=1).unsqueeze(1), total


def reported_prototypes(results: list[Any], protos_key: str, counts_key: str) -> tuple[Tensor, Tensor] | None:
    """Every prototype the clients reported this round with its class label (classes a client
    did not see are left out), or ``None`` when nobody reported one."""
    protos, labels = [], []
    for r in results:
        if protos_key not in r.payload:
            continue
        present = torch.nonzero(r.payload[counts_key] > 0).flatten()
        protos.append(r.payload[protos_key][present])
        labels.append(present)
    if not protos:
        return None
    return torch.cat(protos), torch.cat(labels)


def keep_missing(
    new: Tensor, new_counts: Tensor, old: Tensor | None, old_counts: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Classes that no client reported this round keep their previous global value (partial
    participation must not erase what the federation knows)."""
    if old is None or old_counts is None:
        return new, new_counts
    missing = new_counts <= 0
    return (
        torch.where(missing.unsqueeze(1), old.to(new.device), new),
        torch.where(missing, old_counts.to(new.device), new_counts),
    )


@torch.no_grad()
def evaluate_outputs(
    model: nn.Module, x: Tensor, fn: str = "forward", batch_size: int | None = None
) -> Tensor:
    """``model(x)`` (or ``model.features(x)`` with ``fn="features"``) in eval mode without
    gradients, in chunks (default: sized from the model's activations,
    :func:`engine.flops.rows_per_call`); the model's train/eval mode is restored afterwards."""
    from engine.flops import rows_per_call

    batch_size = batch_size or rows_per_call(model, x.shape[1:])
    was_training = model.training
    model.eval()
    forward = model if fn == "forward" else getattr(model, fn)
    try:
        if len(x) == 0:
            return forward(x[:1])[:0]
        return torch.cat([forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


@dataclass
class Distilled:
    """What :func:`distill` did: the distillation loss (to the teacher, over all of ``x``) of the
    starting model and of the model kept, steps taken, the step whose weights were kept (0: the
    starting model) and, with a validation set, the kept model's validation score and the
    starting model's."""

    before: float
    after: float
    steps: int = 0
    best_step: int = 0
    val_before: float | None = None
    val_after: float | None = None


def validation_score(model: nn.Module, x: Tensor, y: Tensor, task: str) -> tuple[float, float]:
    """``(-cross-entropy, accuracy)`` for classification, ``(-MSE, -MSE)`` for regression: higher
    is better, compared as a tuple. The loss comes first: on validation sets of a few dozen
    samples accuracy moves in steps of several points and stops distillation on noise."""
    out = evaluate_outputs(model, x)
    if task == "classification":
        return -float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())
    mse = float(F.mse_loss(out[:, 0], y))
    return -mse, -mse


def distill(
    model: nn.Module,
    x: Tensor,
    teacher: Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    temperature: float,
    task: str,
    generator: torch.Generator,
    cosine: bool = False,
    validation: tuple[Tensor, Tensor] | None = None,
    eval_every: int = 10,
    patience: int | None = None,
) -> Distilled:
    """Train ``model`` for up to ``steps`` Adam steps so its outputs on ``x`` match ``teacher``
    (random mini-batches drawn with ``generator``).

    :param cosine: anneal the learning rate from ``lr`` to 0 over ``steps`` (cosine).
    :param validation: labelled ``(x, y)``: the model is scored on it at the start and every
        ``eval_every`` steps, the best-scoring weights (the starting ones included) are kept, and
        training stops after ``patience`` steps without improvement (early stopping). Without it
        the model after the last step is kept.
    """
    before = float(kd_loss(evaluate_outputs(model, x), teacher, temperature, task))
    if steps <= 0 or len(x) == 0:
        return Distilled(before, before)
    score = (lambda: validation_score(model, *validation, task)) if validation is not None else None
    best = score() if score is not None else None
    val_before = best[0] if best is not None else None
    best_state, best_step = copy.deepcopy(model.state_dict()), 0
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if cosine else None
    model.train()
    n, taken = len(x), 0
    for step in range(1, steps + 1):
        idx = torch.randint(n, (min(batch_size, n),), generator=generator).to(x.device)
        opt.zero_grad(set_to_none=True)
        kd_loss(model(x[idx]), teacher[idx], temperature, task).backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        taken = step
        if score is not None and (step % eval_every == 0 or step == steps):
            current = score()
            if current > best:
                best, best_state, best_step = current, copy.deepcopy(model.state_dict()), step
            elif patience is not None and step - best_step >= patience:
                break
    if score is not None:
        model.load_state_dict(best_state)
    else:
        best_step = taken
    after = float(kd_loss(evaluate_outputs(model, x), teacher, temperature, task))
    return Distilled(before, after, taken, best_step, val_before, best[0] if best is not None else None)


# ---- shared model specs ------------------------------------------------------------------------------
def normalize_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A model spec with every knob filled in (the form clients' specs take), so equal models
    compare equal. :raises ConfigError: unknown architecture or knob."""
    arch, params = arch_params(spec)
    return {"arch": arch.name, **params.model_dump()}


def check_spec_reads(spec: dict[str, Any], input_spec: InputSpec, strategy: str) -> None:
    """Refuse a shared model that cannot read the dataset, saying what to change."""
    arch, _ = arch_params(spec)
    if input_spec.kind not in arch.kinds:
        raise CompatibilityError(
            f"{strategy}: shared_model '{arch.name}' cannot read {input_spec.kind} input ({input_spec}); "
            f"set strategy.shared_model to an architecture that reads {input_spec.kind}, "
            f'e.g. {{"arch": "mlp", "hidden": 64}}'
        )


class SharedModelParams(Params):
    """Parameters of strategies that train a small shared model next to each private model."""

    shared_model: dict[str, Any] = Field(
        {"arch": "mlp", "hidden": 64},
        validate_default=True,
        description='the small model every client shares and the server averages, e.g. {"arch": "mlp", '
        '"hidden": 64}; it must read the dataset',
    )

    @field_validator("shared_model", mode="before")
    @classmethod
    def _spec(cls, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = {"arch": value}
        if not isinstance(value, dict) or "arch" not in value:
            raise ValueError('needs "arch", e.g. {"arch": "mlp", "hidden": 64}')
        try:
            return normalize_spec(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


def aux_model(ctx: ClientContext, spec: dict[str, Any]) -> FedModel:
    """A module for an auxiliary model spec on this client's device that is never the client's own
    live model (the per-thread template is shared when the specs are equal, so copy it then)."""
    model = ctx.build(spec)
    return copy.deepcopy(model) if model is ctx.model else model


def detached(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A detached copy of a state dict (safe to keep after the module is reused)."""
    return {k: v.detach().clone() for k, v in state.items()}


# ---- the base strategy ----------------------------------------------------------------------------------
class KnowledgeSharing(Strategy):
    """Base of strategies that exchange knowledge (outputs, prototypes, a side model) instead of
    the clients' own weights: models of any architecture take part, a message is never loaded into
    a client's model as weights, and each client is evaluated with its own (personalised) model."""

    family = "knowledge distillation"
    same_architecture = False

    def init(self) -> None:
        """Nothing is known before round 1."""

    def configure(self, client: ClientInfo) -> dict[str, Any]:
        return {}

    def aggregate(self, results: list[Any]) -> None:
        """Subclasses combine what the clients sent."""

    def receive(self, ctx: ClientContext) -> None:
        """Messages are read where they are used (``local_update``/``local_loss``)."""

    def payload(self, ctx: ClientContext) -> dict[str, Any]:
        return {}

    def eval_state(self, client: ClientInfo, state: dict[str, Any]) -> dict[str, Tensor]:
        """The client's own model as it stands."""
        return state["model"]

    def server_models(self) -> dict[str, dict[str, Tensor]]:
        return {}


def class_table_message(state: dict[str, Any], means_key: str, counts_key: str) -> dict[str, Tensor]:
    """``{means_key: (C, D), counts_key: (C,)}`` from server state, or ``{}`` before the first
    aggregation (the engine counts these tensors as bytes down)."""
    if state.get(means_key) is None:
        return {}
    return {means_key: state[means_key], counts_key: state[counts_key]}
