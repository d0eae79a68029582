"""Image augmentation for a client's training batches: random horizontal flip, random crop after
zero padding (the CIFAR recipe of He et al. 2016, arXiv:1512.03385) and additive Gaussian noise.

:func:`apply` is pure and batched: it draws everything from the ``torch.Generator`` it is given,
so the same generator state gives the same batch, whatever thread or device runs it. The trainer
calls it per training batch (never on test sets). Flip and crop need image batches
``(B, C, H, W)``; noise works on any input.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.nn import functional as F

from engine.errors import ConfigError


class AugmentConfig(BaseModel):
    """Per-client augmentation of training batches (all off by default)."""

    model_config = ConfigDict(extra="forbid")

    flip: bool = Field(False, description="images: mirror left-right with probability 1/2")
    crop: int = Field(
        0, ge=0, le=16, description="images: pad by this many pixels, then crop back at a random offset"
    )
    noise: float = Field(0.0, ge=0, le=5, description="std of additive Gaussian noise (any input)")

    @property
    def active(self) -> bool:
        """Whether :func:`apply` changes anything."""
        return self.flip or self.crop > 0 or self.noise > 0


def check(cfg: AugmentConfig, kind: str) -> None:
    """Refuse flip/crop for non-image inputs (a config check for the launcher).

    :raises ConfigError: naming the option to turn off.
    """
    if kind != "image" and (cfg.flip or cfg.crop):
        raise ConfigError(
            f"augmentation flip/crop needs image input but this dataset is {kind}; "
            f"turn them off (noise works on any input)"
        )


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def apply(x: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Augmented copy of the batch ``x``; ``x`` itself is not modified.

    :raises ValueError: flip or crop on a batch that is not ``(B, C, H, W)``.
    """
    if not cfg.active:
        return x
    if (cfg.flip or cfg.crop) and x.ndim != 4:
        raise ValueError(f"flip/crop need image batches (B, C, H, W), got shape {tuple(x.shape)}")
    b = x.shape[0]
    if cfg.flip:
        mask = _rand((b,), generator, x.device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    if cfg.crop:
        p = cfg.crop
        h, w = x.shape[-2:]
        padded = F.pad(x, (p, p, p, p))
        dy = (_rand((b,), generator, x.device) * (2 * p + 1)).long().clamp_max(2 * p)
        dx = (_rand((b,), generator, x.device) * (2 * p + 1)).long().clamp_max(2 * p)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if cfg.noise > 0:
        noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
        x = x + cfg.noise * noise.to(x.device)
    return x
