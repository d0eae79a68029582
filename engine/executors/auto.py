"""The ``auto`` executor: picks one of ``vectorized``, ``threads`` and ``sequential`` for the run's
roster and strategy (:func:`choose`), and says which in the run's events."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engine import threads
from engine.core.client import ClientEnv, ClientJob
from engine.executors.base import EXECUTORS, Executor, ExecutorParams, RunPlan, batch_key, make_executor
from engine.executors.vectorized import batchable_strategy
from engine.types import ClientInfo, ClientResult


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
            return "vectorized", (
                f"{n} of {len(clients)} clients train in batched groups ({archs}); "
                f"batching measured 1.5-5x faster than one client at a time"
            )
    heavy = [c for c in clients if plan.step_flops.get(c.id, 0.0) >= threads.THREADS_MIN_STEP_FLOPS]
    if plan.share >= 2 and len(heavy) >= 2:
        return "threads", (
            f"{len(heavy)} clients with large training steps and {plan.share} threads for "
            f"this run: one client per thread"
        )
    why = (
        "the strategy trains clients its own way"
        if not batchable_strategy(plan.strategy)
        else "no two clients share a batchable architecture and setup"
    )
    if plan.share < 2:
        why += ", and this run has one thread"
    elif not heavy or len(heavy) < 2:
        why += ", and the clients' steps are too small for threads to pay"
    return "sequential", why


@EXECUTORS.register("auto")
class Auto(Executor):
    description = (
        "Picks vectorized, threads or sequential for the roster and strategy (by what "
        "docs/benchmarks.md measured) and says which in the run's events."
    )

    class Params(ExecutorParams):
        workers: int = Field(
            2, ge=1, le=64, description="threads training clients at once, if it picks threads"
        )
        min_group: int = Field(
            2,
            ge=1,
            le=1_000_000,
            description="smallest group of like clients trained as "
            "one batched computation, if it picks vectorized",
        )

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
