"""Executors run the selected clients' turns of one round (:mod:`engine.executors.base` is the
contract). Importing this package registers every executor module in it, as the strategy and
architecture registries do: adding an executor is one new file here (plus its test).

- ``sequential`` and ``threads`` (:mod:`.local`), ``vectorized`` (:mod:`.vectorized`: like clients
  trained as one batched computation), ``ray`` (:mod:`.ray`: Ray tasks), and ``auto``
  (:mod:`.auto`), which picks one of the first three for the roster and strategy.
"""

from __future__ import annotations

import importlib
import pkgutil

from engine.executors.base import (
    EXECUTORS,
    Executor,
    ExecutorParams,
    RunPlan,
    batch_key,
    executor_params,
    intra_op_threads,
    make_executor,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from engine.executors.auto import choose  # noqa: E402 - after registration, so the name is the module's

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorParams",
    "RunPlan",
    "batch_key",
    "choose",
    "executor_params",
    "intra_op_threads",
    "make_executor",
]
