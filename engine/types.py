"""The messages of a round, shared by the loop, the clock, the client turn, the executors, the
evaluation and the strategies: what is fixed about a client (:class:`ClientInfo`), one client's
turn (:class:`ClientContext`) and what it produced (:class:`ClientResult`), what a strategy may use
on the server side (:class:`Server`) and what a run keeps (:class:`Kept`).

They live on the ground floor so that nothing which only passes them around depends on the
strategy package (and through it on the model zoo)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from threading import Event
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from engine.core import training
from engine.robustness.combine import PLAIN, Combiner

if TYPE_CHECKING:
    from engine.config import ClientSpec
    from engine.data import Split
    from engine.models import FedModel, InputSpec
    from engine.strategies.base import Strategy


@dataclass(frozen=True)
class ClientInfo:
    """What is fixed about a client for a whole run."""

    id: int
    name: str
    spec: ClientSpec
    n_train: int
    n_test: int

    @property
    def arch(self) -> str:
        return self.spec.arch

    @cached_property
    def arch_key(self) -> str:
        """Canonical model spec: clients with equal keys have identical parameter shapes."""
        return self.spec.model_key


@dataclass
class ClientResult:
    """What one client's turn produced; the engine fills it."""

    client: ClientInfo
    payload: dict[str, Any]
    n_samples: int
    state: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Kept:
    """A model a run keeps when it ends (written by :mod:`engine.artifacts`): a client's model as
    the strategy evaluates it, or a model or part the federation shares.

    :param tensors: the weights (a :class:`FedModel` state dict when ``part`` is ``"model"``).
    :param spec: the architecture they load into (``None``: a part that fits any, e.g. a head).
    :param part: ``"model"`` (complete: it predicts), ``"body"``, ``"head"`` or ``"prototypes"``.
    :param rule: how a complete model predicts: ``"head"`` (its outputs) or ``"prototype"`` (the
        nearest of ``extra["prototypes"]`` in representation space, FedProto's rule).
    :param extra: tensors the rule needs beside the weights.
    """

    tensors: dict[str, Tensor]
    spec: dict[str, Any] | None = None
    part: str = "model"
    rule: str = "head"
    extra: dict[str, Tensor] = field(default_factory=dict)
    note: str = ""


@dataclass
class Server:
    """What a strategy may use on the server side. Filled by the engine."""

    clients: list[ClientInfo]
    input_spec: InputSpec
    task: str
    n_outputs: int
    rep_dim: int
    seed: int
    device: torch.device
    public: Split | None
    initial_states: Callable[[ClientInfo], dict[str, Tensor]]
    client_state: Callable[[ClientInfo], dict[str, Any]]
    build: Callable[[dict[str, Any]], FedModel]
    log: Callable[[str], None] = lambda message: None
    round: int = 0
    pooled_train: Callable[[], Split] | None = None
    reference: Callable[[Tensor], Tensor] | None = None
    """The preprocessing server-side models are scored through (a fitted affine map)."""
    combine: Combiner = PLAIN
    """How client contributions are combined (:mod:`engine.robustness.combine`): strategies call
    ``combine.mean`` / ``combine.class_means`` instead of averaging by hand, so the run's defence
    applies to them."""

    def generator(self, *path: object) -> torch.Generator:
        """A generator seeded from the run seed, the round and ``path``."""
        from engine.core.seeding import generator

        return generator(self.seed, "server", self.round, *path)


@dataclass
class ClientContext:
    """One client's turn: its live model, data, the message it received and its own state."""

    client: ClientInfo
    round: int
    model: FedModel
    state: dict[str, Any]
    received: dict[str, Any]
    x: Tensor
    y: Tensor
    public_x: Tensor | None
    task: str
    device: torch.device
    generator: torch.Generator
    strategy: Strategy
    build: Callable[[dict[str, Any]], FedModel]
    cancel: Event | None = None
    work_fraction: float = 1.0
    public_y: Tensor | None = None
    """The public set's targets: only strategies that train on a labelled public set read them
    (FedMD's transfer-learning phase)."""
    metrics: dict[str, float] = field(default_factory=dict)
    fit_stats: list[training.FitStats] = field(default_factory=list)
    scratch: dict[str, Any] = field(default_factory=dict)
    """Working memory of the strategy for this turn only (FedProx keeps its anchor here); unlike
    :attr:`state` it is neither persisted nor sent."""
    privacy: Any = None
    """This client's DP-SGD settings (:class:`engine.privacy.dpsgd.DPSettings`), or ``None``:
    :meth:`fit` on the client's own data then trains with DP-SGD."""

    @property
    def spec(self) -> ClientSpec:
        return self.client.spec

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """The task loss (cross-entropy or MSE)."""
        return training.task_loss(self.task, out, y)

    def optimizer(
        self, params: Sequence[nn.Parameter] | None = None, lr: float | None = None
    ) -> torch.optim.Optimizer:
        """A fresh optimiser of the client's kind and hyperparameters."""
        s = self.spec
        return training.make_optimizer(
            s.optimizer,
            params if params is not None else self.model.parameters(),
            lr if lr is not None else s.lr,
            s.momentum,
            s.weight_decay,
        )

    def fit(
        self,
        *,
        model: nn.Module | None = None,
        epochs: int | None = None,
        params: Sequence[nn.Parameter] | None = None,
        loss: Callable[[Tensor, Tensor], Tensor] | None = None,
        x: Tensor | None = None,
        y: Tensor | None = None,
        lr: float | None = None,
        augment: bool = True,
    ) -> training.FitStats:
        """Train on the client's data (or ``x, y``) with its optimiser and batch size.

        :param loss: ``loss(x_batch, y_batch)``; default the strategy's :meth:`Strategy.local_loss`.
        :param params: parameters to update (default all of ``model``): FedRep trains the head,
            then the body.

        Training on the client's own data runs DP-SGD when the client has privacy settings;
        training on other data (a public set) never does.
        """
        private = self.privacy if (x is None or x is self.x) else None
        model = model if model is not None else self.model
        opt = self.optimizer(params if params is not None else list(model.parameters()), lr)
        loss_fn = loss if loss is not None else (lambda xb, yb: self.strategy.local_loss(self, xb, yb))
        x = self.x if x is None else x
        y = self.y if y is None else y
        stats = training.fit(
            model,
            x,
            y,
            loss_fn,
            opt,
            epochs or self.spec.epochs,
            self.spec.batch_size,
            self.generator,
            augment=self.spec.augment if augment else None,
            cancel=self.cancel,
            work_fraction=self.work_fraction,
            privacy=private,
        )
        self.fit_stats.append(stats)
        return stats

    def tensors(self, tree: dict[str, Any]) -> dict[str, Any]:
        """``tree`` with every tensor moved to this client's device."""
        return {k: (v.to(self.device) if isinstance(v, Tensor) else v) for k, v in tree.items()}
