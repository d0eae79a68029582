"""Executors run the selected clients' turns of one round. All call :func:`engine.client.run_client`
so results do not depend on the executor.

- ``sequential``: one after the other, in client order (the default; deterministic).
- ``threads``: a small pool of Python threads (torch releases the GIL in its kernels, so it pays
  for clients whose steps are heavy; on many tiny models the threads mostly take turns at the GIL,
  and ``vectorized`` is the faster choice: docs/benchmarks.md).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.client import ClientEnv, ClientJob, run_client
from engine.errors import ConfigError, validation_problems
from engine.registry import Registry
from engine.strategies.base import ClientResult


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


@EXECUTORS.register("threads")
class Threads(Executor):
    description = ("A pool of Python threads; torch kernels release the GIL, so it helps heavier clients "
                   "(for many small clients of one architecture, vectorized is faster).")

    class Params(ExecutorParams):
        workers: int = Field(2, ge=1, le=64, description="threads training clients at once")

    def __init__(self, workers: int = 2, **options: Any) -> None:
        super().__init__(**options)
        self.pool = ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="fedmosaic-client")

    def map(self, jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
        # One torch thread per worker: the workers are the parallelism (torch's intra-op pool is
        # process-wide, so it is narrowed for the round and restored after).
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return list(self.pool.map(partial(run_client, env=env), jobs))
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


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
