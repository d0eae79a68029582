"""Heterogeneous model zoo. Importing this package registers every architecture module in it."""

from __future__ import annotations

import importlib
import pkgutil

from engine.models.base import (
    ARCHITECTURES,
    INPUT_KINDS,
    Architecture,
    ArchParams,
    FedModel,
    InputSpec,
    ModelFactory,
    arch_params,
    build_model,
    check_reads,
    count_params,
    flops_per_sample,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "ARCHITECTURES",
    "INPUT_KINDS",
    "Architecture",
    "ArchParams",
    "FedModel",
    "InputSpec",
    "ModelFactory",
    "arch_params",
    "build_model",
    "check_reads",
    "count_params",
    "flops_per_sample",
]
