"""Image data FedMosaic can make offline for the image benchmarks and tests, and the reference
model they are compared against.

- :func:`digits28`: scikit-learn's 1,797 8x8 handwritten digits upscaled (bilinear) to 28x28, the
  size of MNIST, which cannot be downloaded here. Same digits, MNIST's input shape: models and
  optimiser settings sized for MNIST see the spatial maps they would see on it.
- :func:`write_pixel_csv`: those images as a pixel CSV (``label, px0..px783`` plus any extra
  columns), the way a user uploads images to the app (``data.image_shape: [1, 28, 28]``).
- :class:`ReferenceFedAvgCNN`: the FedAvg CNN written out by hand the way PFLlib's and HtFLlib's
  ``FedAvgCNN`` are (two 5x5 convolutions of 32 and 64 channels without padding, each followed by
  ReLU and 2x2 max-pooling, a 1024 -> 512 fully connected layer with ReLU, a 512 -> classes
  output layer; torch's default initialisation), to check the zoo's preset against.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def digits28(size: int = 28) -> tuple[Tensor, Tensor]:
    """The digits as ``(N, 1, size, size)`` float32 images in [0, 1] and ``(N,)`` int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return x, torch.as_tensor(bunch.target, dtype=torch.long)


def write_pixel_csv(path: Path, x: Tensor, y: Tensor, extra: dict[str, list] | None = None) -> Path:
    """Write images as ``label, <extra columns>, px0, px1, ...`` (pixels rounded to 3 decimals)."""
    extra = extra or {}
    flat = x.reshape(len(x), -1).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", *extra, *(f"px{i}" for i in range(flat.shape[1]))])
        for i in range(len(flat)):
            writer.writerow([int(y[i]), *(extra[k][i] for k in extra), *np.round(flat[i], 3).tolist()])
    return path


class ReferenceFedAvgCNN(nn.Module):
    """FedAvg CNN as the reference libraries write it (``dim`` = flattened map: 1024 for 28x28)."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, dim: int = 1024) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 32, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.fc1 = nn.Sequential(nn.Linear(dim, 512), nn.ReLU())
        self.fc = nn.Linear(512, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """The representation the output layer reads (fc1's 512 outputs): the body of the body/head
        split that FedPer, FedRep, FedProto and FedKD use."""
        return self.fc1(torch.flatten(self.conv2(self.conv1(x)), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))
