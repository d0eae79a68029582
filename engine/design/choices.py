"""What the pages offer to choose from: datasets, partitioners, architectures, preprocessing
methods, optimisers, executors, real devices and simulated device tiers, each read from the
registry or model that defines it (never spelled out here)."""

from __future__ import annotations

import typing
from typing import Any

from engine.catalog import catalog
from engine.config import ClientSpec
from engine.data import DATASETS
from engine.data.preprocess import METHODS
from engine.executors import EXECUTORS
from engine.executors import ray as ray_executor
from engine.hardware.devices import detect
from engine.hardware.tiers import TIERS
from engine.models import ARCHITECTURES

#: The local optimisers a client can use, as :class:`~engine.config.ClientSpec` declares them.
OPTIMIZERS: tuple[str, ...] = typing.get_args(ClientSpec.model_fields["optimizer"].annotation)


def partitioners() -> dict[str, dict[str, Any]]:
    """Every partitioner by name: ``description`` and ``params`` (catalog entries)."""
    return {p["name"]: p for p in catalog()["partitioners"]}


def architectures() -> dict[str, list[str]]:
    """Every architecture with the input kinds it reads."""
    return {n: sorted(a.kinds) for n, a in ARCHITECTURES.items()}


def preprocessing_methods() -> list[str]:
    """Per-client preprocessing methods (``none``, ``standardize``...)."""
    return list(METHODS)


def executors() -> dict[str, str]:
    """Executors by name with their descriptions."""
    return {n: e.description for n, e in EXECUTORS.items()}


def executor_unavailable() -> dict[str, str]:
    """Executors that cannot run here, with what to do (Ray is an optional extra)."""
    return {} if ray_executor.available() else {"ray": ray_executor.INSTALL_HINT}


def datasets() -> list[dict[str, Any]]:
    """Every registered dataset: ``name, description, kind, task, source``."""
    return [
        {"name": n, "description": d.description, "kind": d.kind, "task": d.task, "source": d.source}
        for n, d in DATASETS.items()
    ]


def tier_names(design: dict[str, Any] | None = None) -> list[str]:
    """Device tiers of the hardware catalogue plus the design's own ``tiers``."""
    custom = [str(k) for k in ((design or {}).get("tiers") or {})]
    return list(dict.fromkeys([*TIERS.names(), *custom]))


def device_names() -> list[str]:
    """Real devices this machine offers, plus ``auto``."""
    return [d.name for d in detect()] + ["auto"]
