"""Integration strategies. Importing this package registers every strategy module in it: adding
an algorithm is one new file here (plus its test)."""

from __future__ import annotations

import importlib
import pkgutil

from engine.strategies.base import (
    STRATEGIES,
    ClientContext,
    ClientInfo,
    ClientResult,
    Kept,
    Params,
    Server,
    Strategy,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "STRATEGIES",
    "ClientContext",
    "ClientInfo",
    "ClientResult",
    "Kept",
    "Params",
    "Server",
    "Strategy",
]
