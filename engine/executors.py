"""Executors run the selected clients' turns of one round. All call :func:`engine.client.run_client`
so results do not depend on the executor.

- ``sequential``: one after the other, in client order (the default; deterministic).
- ``threads``: a small pool of Python threads (torch releases the GIL in its kernels, so it pays
  for clients whose steps are heavy; on many tiny models the threads mostly take turns at the GIL,
  and ``vectorized`` is the faster choice: docs/benchmarks.md).
- ``auto``: picks one of ``vectorized``, ``threads`` and ``sequential`` for the run's roster and
  strategy (:func:`choose`), and says which in the run's events.

Before round 1 the round loop hands every executor the run's :class:`RunPlan` (its strategy,
clients, their training steps' FLOPs and the run's thread share, :mod:`engine.threads`);
:meth:`Executor.prepare` returns how many intra-op threads the run's own thread should use.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine import threads
from engine.client import ClientEnv, ClientJob, run_client
from engine.errors import ConfigError, validation_problems
from engine.registry import Registry
from engine.strategies.base import ClientInfo, ClientResult, Strategy


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
    why = (f"its largest training step ({step_flops / 1e6:.1f} MFLOP) is too small to gain from more"
           if n < plan.share else "its share of the machine")
    plan.log(f"torch threads: {n} ({why}; {plan.share} of the {threads.process_budget()} this process may "
             f"use are this run's)")
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


@EXECUTORS.register("sequential")
class Sequential(Executor):
    description = "One client after another on this thread (deterministic, the default)."

    def map(self, jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
        return [run_client(job, env) for job in jobs]


def _run_on(n_threads: int, job: ClientJob, env: ClientEnv) -> ClientResult:
    """``run_client`` on a pool worker with ``n_threads`` intra-op threads (set on the worker's
    own thread: the count is per thread, :mod:`engine.threads`)."""
    threads.set_here(n_threads)
    return run_client(job, env)


@EXECUTORS.register("threads")
class Threads(Executor):
    description = ("A pool of Python threads; torch kernels release the GIL, so it helps heavier clients "
                   "(for many small clients of one architecture, vectorized is faster). Never more "
                   "workers than the run's share of the cores.")

    class Params(ExecutorParams):
        workers: int = Field(2, ge=1, le=64, description="threads training clients at once")

    def __init__(self, workers: int = 2, **options: Any) -> None:
        super().__init__(**options)
        self.requested = max(1, int(workers))
        self.workers = min(self.requested, threads.process_budget())
        self.per_worker = 1
        self.pool: ThreadPoolExecutor | None = None

    def prepare(self, plan: RunPlan) -> int:
        # the workers are the parallelism: at most the run's share, one torch thread each (more
        # only when the share exceeds the workers and the steps are large enough to gain)
        self.workers = min(self.requested, plan.share)
        self.per_worker = threads.run_threads(plan.largest_step(), plan.share // self.workers)
        fewer = (f" instead of {self.requested} (this run's share of the machine)"
                 if self.workers < self.requested else "")
        plan.log(f"threads executor: {self.workers} worker{'s' if self.workers > 1 else ''}{fewer}, "
                 f"{self.per_worker} torch thread{'s' if self.per_worker > 1 else ''} each")
        return 1

    def map(self, jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fedmosaic-client")
        run = partial(_run_on, self.per_worker, env=env)
        return list(self.pool.map(run, jobs))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


def batch_key(client: ClientInfo) -> tuple[Any, ...] | None:
    """Clients with equal keys can train in one batched computation (same architecture, device,
    optimiser kind, batch size and epochs); ``None`` for a client that cannot batch."""
    spec = client.spec
    if spec.augment.active or getattr(spec, "privacy", None) is not None:  # DP-SGD: engine/privacy/dpsgd.py
        return None
    return (client.arch_key, str(spec.device), spec.optimizer, spec.batch_size, spec.epochs)


def choose(plan: RunPlan) -> tuple[str, str]:
    """The executor ``auto`` runs for this plan, and why (one sentence for the run's events).

    - ``vectorized`` when the strategy trains with the default loop and at least two clients can
      train in one batch: measured 1.5-5x faster than one client at a time on digits (2 cores,
      10-1,000 clients, mlp and cnn; docs/benchmarks.md);
    - else ``threads`` when the run may use several threads and at least two clients' steps are
      large enough for threads to pay (:data:`engine.threads.THREADS_MIN_STEP_FLOPS`; on smaller
      steps the Python between kernels holds the GIL and the threads take turns);
    - else ``sequential``.
    """
    from engine.vectorized import batchable_strategy

    clients = plan.clients
    if batchable_strategy(plan.strategy):
        groups: dict[tuple[Any, ...], list[ClientInfo]] = {}
        for c in clients:
            key = batch_key(c)
            if key is not None and c.id not in plan.recurrent:
                groups.setdefault(key, []).append(c)
        batched = [g for g in groups.values() if len(g) >= 2]
        if batched:
            n = sum(len(g) for g in batched)
            archs = ", ".join(f"{len(g)} {g[0].arch}" for g in batched)
            return "vectorized", (f"{n} of {len(clients)} clients train in batched groups ({archs}); "
                                  f"batching measured 1.5-5x faster than one client at a time")
    heavy = [c for c in clients if plan.step_flops.get(c.id, 0.0) >= threads.THREADS_MIN_STEP_FLOPS]
    if plan.share >= 2 and len(heavy) >= 2:
        return "threads", (f"{len(heavy)} clients with large training steps and {plan.share} threads for "
                           f"this run: one client per thread")
    why = ("the strategy trains clients its own way" if not batchable_strategy(plan.strategy)
           else "no two clients share a batchable architecture and setup")
    if plan.share < 2:
        why += ", and this run has one thread"
    elif not heavy or len(heavy) < 2:
        why += ", and the clients' steps are too small for threads to pay"
    return "sequential", why


@EXECUTORS.register("auto")
class Auto(Executor):
    description = ("Picks vectorized, threads or sequential for the roster and strategy (by what "
                   "docs/benchmarks.md measured) and says which in the run's events.")

    class Params(ExecutorParams):
        workers: int = Field(2, ge=1, le=64, description="threads training clients at once, if it picks threads")
        min_group: int = Field(2, ge=1, le=1_000_000, description="smallest group of like clients trained as "
                                                                  "one batched computation, if it picks vectorized")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.delegate: Executor | None = None
        self.chosen = ""

    def prepare(self, plan: RunPlan) -> int:
        self.chosen, why = choose(plan)
        plan.log(f"executor auto: {self.chosen} ({why})")
        accepted = EXECUTORS.get(self.chosen).Params.model_fields
        self.delegate = make_executor(self.chosen, {k: v for k, v in self.options.items() if k in accepted})
        return self.delegate.prepare(plan)

    def map(self, jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
        if self.delegate is None:
            raise RuntimeError("executor auto: prepare(plan) must run before the first round")
        return self.delegate.map(jobs, env)

    def close(self) -> None:
        if self.delegate is not None:
            self.delegate.close()


def executor_params(name: str, options: dict[str, Any]) -> ExecutorParams:
    """The named executor's validated ``executor_options``.

    :raises ConfigError: unknown executor, unknown option (naming the valid ones) or a bad value.
    """
    cls = EXECUTORS.get(name)
    if not isinstance(options, dict):
        raise ConfigError(f"executor_options must be an object such as {{\"workers\": 2}}, not "
                          f"{type(options).__name__}")
    try:
        return cls.Params.model_validate(options)
    except ValidationError as exc:
        found = "; ".join(validation_problems(exc, empty="options", clean=True, model=cls.Params))
        raise ConfigError(f"executor '{name}' options: {found}") from None


def make_executor(name: str, options: dict[str, Any]) -> Executor:
    """Instantiate the named executor with its validated options."""
    return EXECUTORS.get(name)(**executor_params(name, options).model_dump(exclude_none=True))


from engine import ray_executor as _ray_executor  # noqa: E402,F401 - registers "ray"
from engine import vectorized as _vectorized  # noqa: E402,F401 - registers "vectorized"
