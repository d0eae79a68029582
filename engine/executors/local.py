"""The ``sequential`` and ``threads`` executors: :func:`engine.core.client.run_client` per job, one
after the other in client order (the default; deterministic) or on a small pool of Python threads
(torch releases the GIL in its kernels, so it pays for clients whose steps are heavy; on many tiny
models the threads mostly take turns at the GIL, and ``vectorized`` is the faster choice:
docs/benchmarks.md)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from pydantic import Field

from engine import threads
from engine.core.client import ClientEnv, ClientJob, run_client
from engine.executors.base import EXECUTORS, Executor, ExecutorParams, RunPlan
from engine.types import ClientResult


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
    description = (
        "A pool of Python threads; torch kernels release the GIL, so it helps heavier clients "
        "(for many small clients of one architecture, vectorized is faster). Never more "
        "workers than the run's share of the cores."
    )

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
        fewer = (
            f" instead of {self.requested} (this run's share of the machine)"
            if self.workers < self.requested
            else ""
        )
        plan.log(
            f"threads executor: {self.workers} worker{'s' if self.workers > 1 else ''}{fewer}, "
            f"{self.per_worker} torch thread{'s' if self.per_worker > 1 else ''} each"
        )
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
