"""Image models that hold their own (issue 15, item 1): the FedAvg CNN preset is the reference
libraries' FedAvgCNN layer for layer and learns as fast on 28x28 digits with their optimiser
settings; the zoo's CNN keeps a feature map proportionate to its input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.images import ReferenceFedAvgCNN, digits28
from engine.core import training
from engine.models import InputSpec, build_model
from engine.models.cnn import FLAT_MAX

MNIST = InputSpec("image", (1, 28, 28))


def shapes(model: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in model.parameters()]


@pytest.mark.parametrize(("spec", "dim"), [(MNIST, 1024), (InputSpec("image", (3, 32, 32)), 1600)])
def test_fedavg_cnn_preset_has_the_reference_layer_shapes(spec: InputSpec, dim: int) -> None:
    preset = build_model({"arch": "fedavg_cnn"}, spec, rep_dim=512, n_out=10)
    reference = ReferenceFedAvgCNN(spec.shape[0], 10, dim)
    assert shapes(preset) == shapes(reference)
    assert [type(m) for m in preset.body] == [
        nn.Conv2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Conv2d,
        nn.ReLU,
        nn.MaxPool2d,
        nn.Flatten,
        nn.Linear,
        nn.ReLU,
    ]
    assert all(m.padding == (0, 0) for m in preset.body if isinstance(m, nn.Conv2d))


def test_fedavg_cnn_pads_blocks_too_small_for_its_kernel() -> None:
    model = build_model({"arch": "fedavg_cnn"}, InputSpec("image", (1, 8, 8)), rep_dim=16, n_out=3)
    convs = [m for m in model.body if isinstance(m, nn.Conv2d)]
    assert [c.padding for c in convs] == [(0, 0), (2, 2)]  # 8 -> 4 -> pool 2; a 2x2 map is padded
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize(("side", "kept"), [(8, 2), (28, 7), (32, 8), (64, FLAT_MAX)])
@pytest.mark.parametrize("arch", ["cnn", "resnet"])
def test_conv_models_keep_a_map_proportionate_to_their_input(arch: str, side: int, kept: int) -> None:
    """Two halvings leave side/4 (the cnn's two pooling blocks, the resnet's two strided stages);
    it reaches the linear layer whole up to FLAT_MAX, no global average pool."""
    model = build_model({"arch": arch, "channels": 8}, InputSpec("image", (1, side, side)), 16, 3)
    linear = next(m for m in model.body if isinstance(m, nn.Linear))
    channels = (
        16 if arch == "cnn" else 32
    )  # the cnn's two blocks double once, the resnet's three stages twice
    assert linear.in_features == channels * kept * kept
    pooled = [m for m in model.body if isinstance(m, nn.AdaptiveAvgPool2d)]
    assert bool(pooled) == (side // 4 > FLAT_MAX)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "gru", "fedavg_cnn"])
def test_image_models_he_initialise_the_layers_feeding_a_relu(arch: str) -> None:
    """On images: weights ~ N(0, 2 / fan_in) and zero biases where a ReLU follows; the head keeps
    torch's default (uniform, bound 1 / sqrt(fan_in): a sixth of the variance)."""
    torch.manual_seed(0)
    model = build_model({"arch": arch}, InputSpec("image", (1, 20, 20)), rep_dim=256, n_out=10)
    fed = [m for m in model.body.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert fed
    for layer in fed:
        fan_in = layer.weight[0].numel()
        assert layer.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.15), layer
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    head_fan_in = model.head.weight.shape[1]
    assert model.head.weight.std().item() == pytest.approx((1 / (3 * head_fan_in)) ** 0.5, rel=0.15)


def test_tabular_models_keep_torch_default_initialisation() -> None:
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "hidden": 256}, InputSpec("tabular", (400,)), rep_dim=256, n_out=3)
    for layer in (m for m in model.body.modules() if isinstance(m, nn.Linear)):
        fan_in = layer.weight.shape[1]
        assert layer.weight.std().item() == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.15)
        assert layer.bias.abs().max() > 0


def accuracy_curve(model: nn.Module, fit_one_epoch, x_test, y_test) -> list[float]:
    curve: list[float] = []

    def step_hook(step: int) -> None:
        if step % 20 == 0:
            with torch.no_grad():
                curve.append(float((model(x_test).argmax(1) == y_test).float().mean()))

    fit_one_epoch(step_hook)
    return curve


@pytest.mark.slow
def test_fedavg_cnn_preset_zoo_cnn_and_resnet_learn_as_fast_as_the_hand_written_reference() -> None:
    """The reference libraries' settings on a fixed task: 1,400 digits upscaled to 28x28, SGD lr
    0.005 without momentum, batch 10, one epoch (140 steps), the same seed for every model's
    initialisation and batch order. The zoo's models are trained by the engine's own loop
    (``engine.core.training.fit``), the reference by a hand-written one; test accuracy every 20 steps.

    Measured when written (seed 0): reference 0.16, 0.20, 0.19, 0.20, 0.28, 0.35, 0.30; the
    preset at rep_dim 512 0.38, 0.43, 0.60, 0.72, 0.83, 0.69, 0.77, the zoo's cnn at
    rep_dim 64 0.29, 0.58, 0.63, 0.78, 0.75, 0.63, 0.80 and the resnet 0.62, 0.73, 0.86, 0.90,
    0.94, 0.93, 0.94 (with a global average pool it stayed at 0.09-0.44, erratic) (their
    layers feeding a ReLU are He-initialised, the reference keeps torch's default). With torch's
    default the preset's curve was the reference's exactly; the zoo's cnn of before, which pooled
    every map to 2x2, stayed at chance for 280 steps of this setup."""
    x, y = digits28()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:1400], order[1400:]
    xt, yt = x[train], y[train]

    def hand_loop(model: nn.Module, hook) -> None:
        opt = torch.optim.SGD(model.parameters(), lr=0.005)
        perm = torch.randperm(len(yt), generator=torch.Generator().manual_seed(1))
        for step, start in enumerate(range(0, len(yt), 10), 1):
            idx = perm[start : start + 10]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
            hook(step)

    def engine_loop(model: nn.Module, hook) -> None:
        opt = torch.optim.SGD(model.parameters(), lr=0.005)
        steps = [0]

        def loss(xb, yb):
            if steps[0]:
                hook(steps[0])
            steps[0] += 1
            return nn.functional.cross_entropy(model(xb), yb)

        training.fit(model, xt, yt, loss, opt, 1, 10, torch.Generator().manual_seed(1))
        hook(steps[0])

    torch.manual_seed(0)
    reference = ReferenceFedAvgCNN()
    ref_curve = accuracy_curve(reference, lambda hook: hand_loop(reference, hook), x[test], y[test])
    assert len(ref_curve) == 7 and ref_curve[-1] >= 0.2, f"the reference did not learn here: {ref_curve}"
    for spec, rep_dim in (({"arch": "fedavg_cnn"}, 512), ({"arch": "cnn"}, 64), ({"arch": "resnet"}, 64)):
        torch.manual_seed(0)
        model = build_model(spec, MNIST, rep_dim=rep_dim, n_out=10)
        curve = accuracy_curve(model, lambda hook, m=model: engine_loop(m, hook), x[test], y[test])
        for threshold in (0.15, 0.2, ref_curve[-1]):
            ref_at = next(i for i, a in enumerate(ref_curve) if a >= threshold)
            at = next((i for i, a in enumerate(curve) if a >= threshold), len(curve))
            assert at <= ref_at, (spec, threshold, curve, ref_curve)
        assert curve[-1] >= ref_curve[-1] + 0.1, (spec, curve, ref_curve)
