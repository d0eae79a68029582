"""Image augmentation: pure, batched, deterministic from the generator."""

from __future__ import annotations

import pytest
import torch

from engine.data.augment import AugmentConfig, apply, check
from engine.errors import ConfigError


def batch() -> torch.Tensor:
    return torch.arange(4 * 2 * 6 * 6, dtype=torch.float32).reshape(4, 2, 6, 6)


def test_off_is_identity():
    x = batch()
    assert apply(x, AugmentConfig(), torch.Generator().manual_seed(0)) is x


def test_deterministic_given_the_generator_and_input_untouched():
    x = batch()
    before = x.clone()
    cfg = AugmentConfig(flip=True, crop=2, noise=0.1)
    a = apply(x, cfg, torch.Generator().manual_seed(5))
    b = apply(x, cfg, torch.Generator().manual_seed(5))
    c = apply(x, cfg, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(x, before) and a.shape == x.shape


def test_flip_mirrors_some_samples():
    x = batch().repeat(8, 1, 1, 1)
    out = apply(x, AugmentConfig(flip=True), torch.Generator().manual_seed(0))
    flipped = [torch.equal(o, s.flip(-1)) for o, s in zip(out, x, strict=True)]
    kept = [torch.equal(o, s) for o, s in zip(out, x, strict=True)]
    assert any(flipped) and any(kept) and all(f or k for f, k in zip(flipped, kept, strict=True))


def test_crop_shifts_within_padding():
    x = torch.ones(16, 1, 5, 5)
    out = apply(x, AugmentConfig(crop=1), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and set(out.unique().tolist()) <= {0.0, 1.0}
    assert (out.sum(dim=(1, 2, 3)) >= 16).all()  # at most one row and one column padded in
    assert (out == 0).any()


def test_noise_on_any_input_and_flip_needs_images():
    x = torch.zeros(3, 7)
    out = apply(x, AugmentConfig(noise=1.0), torch.Generator().manual_seed(0))
    assert out.std() > 0.5
    with pytest.raises(ValueError, match="image batches"):
        apply(x, AugmentConfig(flip=True), torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="needs image input"):
        check(AugmentConfig(crop=2), "tabular")
    check(AugmentConfig(noise=0.1), "tabular")
