"""Datasets, partitioners, preprocessing and the federation builder. Importing this package
registers every dataset and partitioner module in it."""

from __future__ import annotations

import importlib
import pkgutil

from engine.data.base import DATASETS, PARTITIONERS, Dataset, DatasetSource, Partitioner
from engine.data.config import DataConfig, PartitionConfig
from engine.data.federation import ClientData, Federation, Split, build, load_dataset
from engine.data.preview import heterogeneity, label_histograms, natural_groups, partition_preview

_CORE = {"base", "config", "federation", "preprocess", "preview"}
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _CORE:
        importlib.import_module(f"{__name__}.{_module.name}")

# after the registration loop, so these modules are registered once
from engine.data.augment import AugmentConfig  # noqa: E402 -- after the registration loop
from engine.data.csv_data import inspect_csv  # noqa: E402 -- after the registration loop

__all__ = [
    "DATASETS",
    "PARTITIONERS",
    "AugmentConfig",
    "ClientData",
    "DataConfig",
    "Dataset",
    "DatasetSource",
    "Federation",
    "PartitionConfig",
    "Partitioner",
    "Split",
    "build",
    "heterogeneity",
    "inspect_csv",
    "label_histograms",
    "load_dataset",
    "natural_groups",
    "partition_preview",
]
