"""Datasets bundled with scikit-learn: they ship with the package, so they work offline.

- ``digits``: 1,797 8x8 grey images of handwritten digits (UCI, Alpaydin & Kaynak 1998).
- ``breast_cancer``: 569 tumours, 30 features, malignant/benign (UCI Wisconsin diagnostic).
- ``wine``: 178 wines, 13 chemical features, 3 cultivars (UCI).
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.data.base import DATASETS, Dataset, DatasetSource, as_tensor_x
from engine.data.config import DataConfig
from engine.models.base import InputSpec


@DATASETS.register("digits")
class Digits(DatasetSource):
    description = "8x8 handwritten digits, 10 classes, 1,797 images (scikit-learn, offline)."
    kind = "image"
    task = "classification"
    source = "UCI Optical Recognition of Handwritten Digits, via sklearn.datasets.load_digits"

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = as_tensor_x(bunch.images / 16.0).unsqueeze(1)
        y = torch.as_tensor(bunch.target, dtype=torch.long)
        return Dataset("digits", x, y, InputSpec("image", (1, 8, 8)), classes=[str(c) for c in range(10)])


def _tabular(name: str, bunch) -> Dataset:  # noqa: ANN001 - sklearn Bunch
    x = as_tensor_x(bunch.data)
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    return Dataset(
        name,
        x,
        y,
        InputSpec("tabular", (x.shape[1],)),
        classes=[str(c) for c in bunch.target_names],
        feature_names=[str(f) for f in bunch.feature_names],
    )


@DATASETS.register("breast_cancer")
class BreastCancer(DatasetSource):
    description = "569 breast tumours, 30 numeric features, malignant vs benign (medical tabular)."
    kind = "tabular"
    task = "classification"
    source = "UCI Breast Cancer Wisconsin (Diagnostic), via sklearn.datasets.load_breast_cancer"

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        from sklearn.datasets import load_breast_cancer

        return _tabular("breast_cancer", load_breast_cancer())


@DATASETS.register("wine")
class Wine(DatasetSource):
    description = "178 wines, 13 chemical measurements, 3 cultivars (tabular)."
    kind = "tabular"
    task = "classification"
    source = "UCI Wine, via sklearn.datasets.load_wine"

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        from sklearn.datasets import load_wine

        return _tabular("wine", load_wine())
