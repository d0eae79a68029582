"""Datasets, partitioners, preprocessing and the federation builder. Importing this package
registers every module of its rooms: ``datasets/`` (one file per registered dataset),
``partitioners/`` (one file per registered way of splitting rows across clients) and ``tables/``
(the user-table path: reading, inference, encoding and the ``csv`` dataset). Adding a dataset or a
partitioner is one new file in its room plus its test."""

from __future__ import annotations

import importlib
import pkgutil

from engine.data.base import DATASETS, PARTITIONERS, Dataset, DatasetSource, Partitioner
from engine.data.config import DataConfig, PartitionConfig
from engine.data.federation import ClientData, Federation, Split, build, load_dataset
from engine.data.preview import heterogeneity, label_histograms, natural_groups, partition_preview

_ROOMS = ("datasets", "partitioners", "tables")
for _room in _ROOMS:
    _package = importlib.import_module(f"{__name__}.{_room}")
    for _module in pkgutil.iter_modules(_package.__path__):
        importlib.import_module(f"{_package.__name__}.{_module.name}")

# after the registration loop, so these modules are registered once
from engine.data.augment import AugmentConfig  # noqa: E402 -- after the registration loop
from engine.data.tables.dataset import inspect_csv  # noqa: E402 -- after the registration loop

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
