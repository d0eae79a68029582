"""The executor contract: :class:`Executor` maps one round's client turns (:class:`ClientJob`) to
their :class:`ClientResult` in job order; every executor calls :func:`engine.core.client.run_client` (or
reproduces it exactly), so results do not depend on the executor.

Before round 1 the round loop hands every executor the run's :class:`RunPlan` (its strategy,
clients, their training steps' FLOPs and the run's thread share, :mod:`engine.threads`);
:meth:`Executor.prepare` returns how many intra-op threads the run's own thread should use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine import threads
from engine.core.client import ClientEnv, ClientJob
from engine.errors import ConfigError, validation_problems
from engine.registry import Registry
from engine.types import ClientInfo, ClientResult

if TYPE_CHECKING:
    from engine.strategies.base import Strategy


@dataclass
class RunPlan:
    """What an executor knows about a run before its first round."""

    strategy: Strategy
    clients: list[ClientInfo]
    step_flops: dict[int, float]
    """Forward FLOPs of one training step per client id (one sample's forward x batch size)."""
    share: int
    """Threads this run may use (:func:`engine.threads.share`)."""
    log: Callable[[str], None] = field(default=lambda message: None)
    recurrent: frozenset[int] = frozenset()
    """Ids of clients whose models have recurrent kernels (``vmap`` cannot batch them)."""

    def largest_step(self) -> float:
        """The largest training step of any client (forward FLOPs)."""
        return max(self.step_flops.values(), default=0.0)


def intra_op_threads(plan: RunPlan, step_flops: float) -> int:
    """The run's share, or one thread when ``step_flops`` (the largest step the executor computes
    at once) is too small to gain from more; says which in the run's events."""
    n = threads.run_threads(step_flops, plan.share)
    why = (
        f"its largest training step ({step_flops / 1e6:.1f} MFLOP) is too small to gain from more"
        if n < plan.share
        else "its share of the machine"
    )
    plan.log(
        f"torch threads: {n} ({why}; {plan.share} of the {threads.process_budget()} this process may "
        f"use are this run's)"
    )
    return n


class ExecutorParams(BaseModel):
    """``executor_options`` of an executor that takes none; each executor extends it."""

    model_config = ConfigDict(extra="forbid")


class Executor:
    """Maps the client work over one round's jobs, returning results in job order."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: the executor's ``executor_options`` (unknown names are refused, naming the valid ones)
    Params: ClassVar[type[ExecutorParams]] = ExecutorParams

    def __init__(self, **options: Any) -> None:
        self.options = options

    def prepare(self, plan: RunPlan) -> int:
        """Adapt to the run before round 1; return the intra-op threads of the run's thread
        (default: the run's share, or one for steps too small to gain from more)."""
        return intra_op_threads(plan, plan.largest_step())

    def map(self, jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
        """Run every job's turn; results in job order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers."""


EXECUTORS: Registry[type[Executor]] = Registry("executor")


def batch_key(client: ClientInfo) -> tuple[Any, ...] | None:
    """Clients with equal keys can train in one batched computation (same architecture, device,
    optimiser kind, batch size and epochs); ``None`` for a client that cannot batch."""
    spec = client.spec
    if spec.augment.active or getattr(spec, "privacy", None) is not None:  # DP-SGD: engine/privacy/dpsgd.py
        return None
    return (client.arch_key, str(spec.device), spec.optimizer, spec.batch_size, spec.epochs)


def executor_params(name: str, options: dict[str, Any]) -> ExecutorParams:
    """The named executor's validated ``executor_options``.

    :raises ConfigError: unknown executor, unknown option (naming the valid ones) or a bad value.
    """
    cls = EXECUTORS.get(name)
    if not isinstance(options, dict):
        raise ConfigError(
            f'executor_options must be an object such as {{"workers": 2}}, not {type(options).__name__}'
        )
    try:
        return cls.Params.model_validate(options)
    except ValidationError as exc:
        found = "; ".join(validation_problems(exc, empty="options", clean=True, model=cls.Params))
        raise ConfigError(f"executor '{name}' options: {found}") from None


def make_executor(name: str, options: dict[str, Any]) -> Executor:
    """Instantiate the named executor with its validated options."""
    return EXECUTORS.get(name)(**executor_params(name, options).model_dump(exclude_none=True))
