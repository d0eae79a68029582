"""The model-zoo contract, checked for every registered architecture and every input kind it claims:
shapes, parameter names, the linear head, trainability, cost figures, width slicing (HeteroFL) and
the errors a wrong config raises."""

from __future__ import annotations

from collections.abc import Iterator

import annotated_types
import pytest
import torch
from torch import nn

from engine.errors import ConfigError, UnknownNameError
from engine.models import (
    ARCHITECTURES,
    INPUT_KINDS,
    InputSpec,
    build_model,
    check_reads,
    count_params,
    flops_per_sample,
)
from engine.models.rnn import RecurrentBody

REP_DIM, N_OUT, BATCH = 16, 3, 8

SPECS = [
    InputSpec("image", (1, 8, 8)),
    InputSpec("image", (3, 16, 16)),
    InputSpec("sequence", (12, 5)),
    InputSpec("tabular", (30,)),
]

CASES = [
    pytest.param(name, spec, id=f"{name}-{spec.kind}-{'x'.join(map(str, spec.shape))}")
    for name, arch in ARCHITECTURES.items()
    for spec in SPECS
    if spec.kind in arch.kinds
]

UNREAD = [
    pytest.param(name, kind, id=f"{name}-{kind}")
    for name, arch in ARCHITECTURES.items()
    for kind in INPUT_KINDS
    if kind not in arch.kinds
]

EXAMPLE = {"image": (1, 8, 8), "sequence": (12, 5), "tabular": (30,)}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """These models are tiny: a second intra-op thread only adds contention on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(name: str, spec: InputSpec, **knobs: object) -> nn.Module:
    return build_model({"arch": name, **knobs}, spec, REP_DIM, N_OUT)


@pytest.mark.parametrize(("name", "spec"), CASES)
def test_shapes_names_and_head(name: str, spec: InputSpec) -> None:
    torch.manual_seed(0)
    model = build(name, spec)
    x = torch.randn(BATCH, *spec.shape)
    features = model.features(x)
    assert features.shape == (BATCH, REP_DIM)
    assert (features >= 0).all(), "the body ends in a ReLU"
    out = model(x)
    assert out.shape == (BATCH, N_OUT)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters()), "every parameter is used"
    assert all(k.startswith(("body.", "head.")) for k in model.state_dict())
    assert isinstance(model.head, nn.Linear)
    assert (model.head.in_features, model.head.out_features) == (REP_DIM, N_OUT)
    assert count_params(model) > 0
    assert flops_per_sample(model, spec) > 0


@pytest.mark.parametrize("name", ARCHITECTURES.names())
def test_catalog_entry_is_complete(name: str) -> None:
    arch = ARCHITECTURES.get(name)
    assert arch.kinds and set(arch.kinds) <= set(INPUT_KINDS)
    assert set(arch.how_it_reads) == set(arch.kinds)
    assert arch.description
    assert all(info.description for info in arch.Params.model_fields.values())


@pytest.mark.parametrize(("name", "spec"), CASES)
def test_a_few_sgd_steps_reduce_the_loss(name: str, spec: InputSpec) -> None:
    torch.manual_seed(0)
    model = build(name, spec)
    y = torch.arange(32) % N_OUT
    prototypes = 2 * torch.randn(N_OUT, *spec.shape)  # one pattern per class, plus noise
    x = prototypes[y] + 0.5 * torch.randn(32, *spec.shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    first = loss_fn(model(x), y).item()
    for _ in range(20):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # one learning rate for every family
        opt.step()
    assert loss_fn(model(x), y).item() < 0.8 * first


@pytest.mark.parametrize(("name", "spec"), CASES)
@pytest.mark.parametrize("width", [0.5, 0.25])
def test_narrow_model_is_a_slice_of_the_full_one(name: str, spec: InputSpec, width: float) -> None:
    full = build(name, spec).state_dict()
    narrow = build(name, spec, width=width).state_dict()
    assert narrow.keys() == full.keys()
    for key, tensor in narrow.items():
        assert tensor.dim() == full[key].dim(), key
        assert all(s <= f for s, f in zip(tensor.shape, full[key].shape, strict=True)), key
    assert any(narrow[k].shape != full[k].shape for k in full), "width changed nothing"
    assert narrow["head.weight"].shape == full["head.weight"].shape


@pytest.mark.parametrize(
    ("name", "knobs", "shape"),
    [
        ("cnn", {"depth": 4, "kernel": 5}, (1, 8, 8)),
        ("cnn", {}, (1, 28, 28)),
        ("cnn", {"kernel": 5}, (3, 32, 32)),
        ("resnet", {"depth": 2, "stages": 3}, (1, 8, 8)),
        ("resnet", {"stages": 2}, (3, 32, 32)),
        ("cnn1d", {"depth": 4}, (1, 8, 8)),
    ],
)
def test_image_sizes_from_tiny_to_cifar(name: str, knobs: dict[str, object], shape: tuple) -> None:
    model = build(name, InputSpec("image", shape), **knobs)
    assert model(torch.randn(2, *shape)).shape == (2, N_OUT)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_flops_are_added_to_the_linear_ones(cell: str) -> None:
    spec = InputSpec("sequence", (12, 5))
    model = build(cell, spec, hidden=8, layers=2, bidirectional=True)
    gates = {"lstm": 4, "gru": 3}[cell]
    recurrent = 2 * gates * 8 * ((5 + 8) + (16 + 8)) * 12 * 2  # 2 layers, 12 steps, 2 directions
    linear = 2 * 16 * REP_DIM + 2 * REP_DIM * N_OUT  # body.proj and head
    body = next(m for m in model.modules() if isinstance(m, RecurrentBody))
    assert body.recurrent_flops() == recurrent
    assert flops_per_sample(model, spec) == linear + recurrent


@pytest.mark.parametrize(("name", "kind"), UNREAD)
def test_check_reads_lists_the_readers(name: str, kind: str) -> None:
    readers = [n for n, a in ARCHITECTURES.items() if kind in a.kinds]
    with pytest.raises(ConfigError, match=f"Architectures that read {kind}: {', '.join(readers)}"):
        check_reads({"arch": name}, InputSpec(kind, EXAMPLE[kind]))  # type: ignore[arg-type]


def test_cnn_on_tabular_is_refused() -> None:
    with pytest.raises(ConfigError, match="'cnn' cannot read tabular") as err:
        build_model({"arch": "cnn"}, InputSpec("tabular", (30,)), REP_DIM, N_OUT)
    assert "mlp" in str(err.value) and "transformer" in str(err.value)


def test_unknown_architecture_lists_the_valid_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        build_model({"arch": "vgg"}, InputSpec("tabular", (30,)), REP_DIM, N_OUT)
    assert all(name in str(err.value) for name in ARCHITECTURES.names())


def below_bound_knobs() -> list[object]:
    """For every integer knob with a lower bound, a spec one below it."""
    cases = []
    for name, arch in ARCHITECTURES.items():
        for field, info in arch.Params.model_fields.items():
            for bound in info.metadata:
                if isinstance(bound, annotated_types.Ge) and info.annotation is int:
                    cases.append(pytest.param(name, field, bound.ge - 1, id=f"{name}-{field}"))
    return cases


@pytest.mark.parametrize(("name", "field", "value"), below_bound_knobs())
def test_bad_knob_is_named(name: str, field: str, value: int) -> None:
    kind = "image" if "image" in ARCHITECTURES.get(name).kinds else "tabular"
    with pytest.raises(ConfigError, match=f"model '{name}': {field}:"):
        build(name, InputSpec(kind, EXAMPLE[kind]), **{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"arch": "lstm", "hidden": 0}, "hidden"),
        ({"arch": "cnn", "hiden": 32}, "hiden"),
        ({"arch": "transformer", "d_model": 50, "heads": 4}, "d_model \\(50\\) must be a multiple"),
        ({"arch": "resnet", "stages": 5}, "stages"),
        ({"arch": "cnn", "kernel": 4}, "kernel: Value error, must be odd"),
        ({"arch": "mlp", "width": 0}, "width"),
    ],
)
def test_bad_config_examples(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(spec, InputSpec("image", (1, 8, 8)), REP_DIM, N_OUT)
