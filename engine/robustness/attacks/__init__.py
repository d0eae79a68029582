"""Simulated attacks of a compromised client (the roster's ``adversary``). Importing this package
registers every attack module in it: a new attack is one new file here (plus its test)."""

from __future__ import annotations

import importlib
import pkgutil

from engine.robustness.attacks.base import ATTACKS, Attack, AttackParams, AttackSetting

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ATTACKS", "Attack", "AttackParams", "AttackSetting"]
