"""``shapes``: synthetic images of simple shapes drawn in several visual domains, for feature-shift
(domain) heterogeneity that works offline - a small cousin of Digits-Five / Office-Caltech, the
benchmarks FedBN (Li et al. 2021, arXiv:2102.07623) uses.

Six classes (circle, square, triangle, cross, ring, bar) are drawn at random position, size and
orientation. Each domain has its own style: contrast and background level, stroke thickness, a
rotation offset, blur, pixel noise and, with 3 channels, a colour tint. ``options.shift`` scales
how far the domains' styles are from a neutral style (0: every domain looks the same, 1: very
different). ``Dataset.columns["domain"]`` names each sample's domain, so a ``natural`` partition on
``domain`` gives one client per domain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.data.base import DATASETS, Dataset, DatasetSource, as_tensor_x
from engine.data.config import DataConfig
from engine.errors import ConfigError, validation_problems
from engine.models.base import InputSpec

CLASSES = ["circle", "square", "triangle", "cross", "ring", "bar"]


class ShapesOptions(BaseModel):
    """``data.options`` of the shapes dataset."""

    model_config = ConfigDict(extra="forbid")

    domains: int = Field(4, ge=1, le=20, description="number of visual domains (natural clients)")
    per_class: int = Field(100, ge=2, le=5000, description="images per class and domain")
    size: int = Field(16, ge=8, le=64, description="image height and width in pixels")
    channels: Literal[1, 3] = Field(1, description="1 (grey) or 3 (colour)")
    shift: float = Field(0.7, ge=0, le=1, description="how different the domains look (0: identical)")
    seed: int = Field(0, ge=0, description="seed of the generated images (independent of the run seed)")


def options(cfg: DataConfig) -> ShapesOptions:
    """Validated ``data.options``.

    :raises ConfigError: naming the bad option.
    """
    try:
        return ShapesOptions(**cfg.options)
    except ValidationError as exc:
        raise ConfigError(f"data.options (shapes): {'; '.join(validation_problems(exc))}") from None


def draw(
    labels: np.ndarray, size: int, thickness: np.ndarray, angle: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Masks ``(N, size, size)`` in [0, 1] of the shapes ``labels`` (indices into CLASSES)."""
    n = len(labels)
    grid = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    cx, cy = rng.uniform(-0.25, 0.25, n), rng.uniform(-0.25, 0.25, n)
    r = rng.uniform(0.45, 0.7, n)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    r3, t3 = r[:, None, None], thickness[:, None, None]
    dist = np.sqrt(u**2 + v**2)
    masks = {
        0: dist < r3,
        1: np.maximum(np.abs(u), np.abs(v)) < r3 * 0.8,
        2: (v < r3 * 0.6) & (np.abs(u) < (v + r3) * 0.55),
        3: ((np.abs(u) < t3) & (np.abs(v) < r3)) | ((np.abs(v) < t3) & (np.abs(u) < r3)),
        4: (dist < r3) & (dist > r3 - 1.6 * t3),
        5: (np.abs(u) < r3) & (np.abs(v) < t3),
    }
    out = np.zeros((n, size, size), dtype=np.float32)
    for c, mask in masks.items():
        sel = labels == c
        out[sel] = mask[sel]
    return out


def _blur(img: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Mix each image with its 3x3 box blur by ``amount`` in [0, 1]."""
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge")
    box = sum(padded[:, i : i + img.shape[1], j : j + img.shape[2]] for i in range(3) for j in range(3)) / 9
    a = amount[:, None, None]
    return (1 - a) * img + a * box


@DATASETS.register("shapes")
class Shapes(DatasetSource):
    Options = ShapesOptions
    description = (
        "Synthetic shape images (6 classes) in several visual domains with controllable feature "
        "shift; column 'domain' for a natural partition (offline)."
    )
    kind = "image"
    task = "classification"
    source = "generated (FedMosaic), options: domains, per_class, size, channels, shift, seed"

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        opt = options(cfg)
        rng = np.random.default_rng(opt.seed)
        images, labels, domains = [], [], []
        for d in range(opt.domains):
            style = np.random.default_rng(rng.integers(2**63))
            s = opt.shift
            fg = 1.0 - s * style.uniform(0.0, 0.6)
            bg = s * style.uniform(0.0, 0.4)
            thick = 0.12 + s * style.uniform(-0.05, 0.1)
            rot = s * style.uniform(-np.pi / 4, np.pi / 4)
            blur = s * style.uniform(0, 1)
            noise = 0.03 + s * style.uniform(0, 0.15)
            tint = 1 - s * style.uniform(0, 0.8, 3)
            y = np.repeat(np.arange(len(CLASSES)), opt.per_class)
            n = len(y)
            angle = rot + rng.uniform(-0.3, 0.3, n) + np.where(y == 5, rng.uniform(0, np.pi, n), 0.0)
            mask = draw(y, opt.size, np.full(n, thick) * rng.uniform(0.8, 1.2, n), angle, rng)
            mask = _blur(mask, np.full(n, blur))
            img = bg + (fg - bg) * mask + rng.normal(0, noise, mask.shape)
            img = np.clip(img, 0, 1)[:, None]
            if opt.channels == 3:
                img = img * tint[None, :, None, None]
            images.append(img.astype(np.float32))
            labels.append(y)
            domains.append(np.full(n, f"domain {d}"))
        x = np.concatenate(images)
        spec = InputSpec("image", (opt.channels, opt.size, opt.size))
        y = torch.as_tensor(np.concatenate(labels), dtype=torch.long)
        return Dataset(
            "shapes",
            as_tensor_x(x),
            y,
            spec,
            classes=list(CLASSES),
            columns={"domain": np.concatenate(domains)},
            report={"domains": opt.domains, "shift": opt.shift},
        )
