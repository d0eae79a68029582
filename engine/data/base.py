"""A loaded dataset, the dataset and partitioner registries, and the split helpers they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor

from engine.data.config import DataConfig
from engine.data.stats import Feature
from engine.models.base import InputSpec
from engine.registry import Registry

Task = Literal["classification", "regression"]


@dataclass
class Dataset:
    """Features and targets of a whole dataset, before any split.

    :param x: float32 ``(N, *input_spec.shape)``.
    :param y: int64 class indices ``(N,)`` for classification, float32 ``(N,)`` for regression.
    :param columns: side columns not used as features (site, city, device id), by name, for the
        ``natural`` partition.
    :param report: what loading inferred or repaired (missing counts, flagged columns), shown to users.
    :param features: the schema of a table's features (file column, kind, imputation), one per
        feature (the last axis of ``x``); ``None`` for datasets without missing values or columns.
        Missing values are NaN in ``x`` and filled by each client's preprocessing.
    :param split: per sample ``"train"``, ``"test"`` or ``"validation"`` when the file says
        (``data.split_column``), else ``None``.
    """

    name: str
    x: Tensor
    y: Tensor
    input_spec: InputSpec
    task: Task = "classification"
    classes: list[str] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    feature_names: list[str] | None = None
    report: dict[str, Any] = field(default_factory=dict)
    features: list[Feature] | None = None
    split: np.ndarray | None = None
    rows: np.ndarray | None = None
    """A table's sample positions in the file (0-based data rows; rows without a target are
    dropped, so they can differ from the sample index); ``None`` for built-in datasets."""

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} samples but {len(self.y)} targets")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_outputs(self) -> int:
        """Width of the model's head: number of classes, or 1 for regression."""
        return len(self.classes) if self.task == "classification" else 1

    @property
    def labels(self) -> np.ndarray:
        """Targets as numpy; what label-skew partitioners split on (binned for regression)."""
        y = self.y.numpy()
        if self.task == "classification":
            return y
        edges = np.quantile(y, np.linspace(0, 1, 11)[1:-1])
        return np.digitize(y, edges)


class DatasetSource(ABC):
    """A registered dataset. ``load`` returns a :class:`Dataset`; ``kind``/``task`` describe it."""

    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[str]
    task: ClassVar[str]
    source: ClassVar[str] = ""
    #: pydantic model of this dataset's ``data.options`` (None: it takes none), for the catalog.
    Options: ClassVar[type[BaseModel] | None] = None

    @classmethod
    @abstractmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        """Load the whole dataset. ``root`` is the data directory for downloads and caches.

        :raises DataError: with what to change.
        """


class PartitionParams(BaseModel):
    """Parameters common to every partitioner."""

    model_config = ConfigDict(extra="forbid")


class Partitioner(ABC):
    """A registered way of splitting sample indices across clients."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[PartitionParams]] = PartitionParams

    def __init__(self, params: PartitionParams) -> None:
        self.params = params

    @abstractmethod
    def split(
        self,
        data: Dataset,
        index: np.ndarray,
        n_clients: int,
        rng: np.random.Generator,
        shares: list[float | None],
    ) -> list[np.ndarray]:
        """Split ``index`` (positions into ``data``) into ``n_clients`` disjoint arrays covering it.

        :param shares: per-client requested data share (``None`` where unset), for partitioners
            that honour it.
        :raises DataError: when the split is impossible (names the parameter to change).
        """

    #: True for partitioners whose :meth:`transform_client` changes features (``feature``).
    shifts_features: ClassVar[bool] = False

    def transform_client(self, i: int, n_clients: int, x: Tensor, rng: np.random.Generator) -> Tensor:
        """Client ``i``'s view of its own samples ``x`` (train and local test together, raw feature
        space, before preprocessing): identity by default; ``feature`` shifts it. ``rng`` is derived
        from the run seed and ``i``, so the shift is deterministic. The global test and public sets
        are never shifted."""
        return x


DATASETS: Registry[type[DatasetSource]] = Registry("dataset")
PARTITIONERS: Registry[type[Partitioner]] = Registry("partitioner")


def stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(keep, held_out)`` with ``fraction`` of each label held out (at least one of a
    label with >= 2 samples when ``fraction > 0``)."""
    n = len(labels)
    if fraction <= 0 or n == 0:
        return np.arange(n), np.arange(0)
    if not stratify:
        perm = rng.permutation(n)
        k = int(round(n * fraction))
        return np.sort(perm[k:]), np.sort(perm[:k])
    held = []
    for value in np.unique(labels):
        pos = np.flatnonzero(labels == value)
        pos = rng.permutation(pos)
        k = int(round(len(pos) * fraction))
        if k == 0 and len(pos) >= 2 and rng.random() < len(pos) * fraction:
            k = 1
        held.append(pos[:k])
    held_out = np.sort(np.concatenate(held)) if held else np.arange(0)
    mask = np.ones(n, dtype=bool)
    mask[held_out] = False
    return np.flatnonzero(mask), held_out


def as_tensor_x(x: np.ndarray) -> Tensor:
    """float32 tensor from any numeric array."""
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
