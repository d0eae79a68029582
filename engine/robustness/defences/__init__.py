"""Robust aggregation rules (defences). Importing this package registers every defence module in
it: a new defence is one new file here (plus its test)."""

from __future__ import annotations

import importlib
import pkgutil

from engine.robustness.defences.base import DEFENCES, Combined, Defence, DefenceParams

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DEFENCES", "Combined", "Defence", "DefenceParams"]
