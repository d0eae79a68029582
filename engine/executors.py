"""Executors run the selected clients' turns of one round. All call :func:`engine.client.run_client`
so results do not depend on the executor.

- ``sequential``: one after the other, in client order (the default; deterministic).
- ``threads``: a small pool of Python threads (torch releases the GIL in its kernels).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from engine.client import ClientJob
from engine.registry import Registry
from engine.strategies.base import ClientResult

Work = Callable[[ClientJob], ClientResult]


class Executor:
    """Maps the client work over one round's jobs, returning results in job order."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def map(self, work: Work, jobs: list[ClientJob]) -> list[ClientResult]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers."""


EXECUTORS: Registry[type[Executor]] = Registry("executor")


@EXECUTORS.register("sequential")
class Sequential(Executor):
    description = "One client after another on this thread (deterministic, the default)."

    def map(self, work: Work, jobs: list[ClientJob]) -> list[ClientResult]:
        return [work(job) for job in jobs]


@EXECUTORS.register("threads")
class Threads(Executor):
    description = "A pool of Python threads; torch kernels release the GIL."

    def __init__(self, workers: int = 2, **options: Any) -> None:
        super().__init__(**options)
        self.pool = ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="fedmosaic-client")

    def map(self, work: Work, jobs: list[ClientJob]) -> list[ClientResult]:
        return list(self.pool.map(work, jobs))

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def make_executor(name: str, options: dict[str, Any]) -> Executor:
    """Instantiate the named executor."""
    return EXECUTORS.get(name)(**options)
