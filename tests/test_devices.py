"""Real devices: detection with and without CUDA (mocked only at torch's detection boundary), clear
errors for devices this machine lacks, the training-memory estimate, roster fit warnings, and, on
a GPU machine, the same run on cuda and cpu."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import digits_config

from engine.config import parse_config
from engine.errors import ConfigError
from engine.hardware import devices
from engine.hardware.devices import estimate_memory, memory_warnings, roster_memory
from engine.models import InputSpec

GiB = 2**30


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def fake_cuda(monkeypatch: pytest.MonkeyPatch, memory: list[int]) -> None:
    """Pretend torch sees ``len(memory)`` CUDA devices with these totals (bytes)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(memory))
    monkeypatch.setattr(
        torch.cuda,
        "get_device_properties",
        lambda i: SimpleNamespace(name=f"Fake GPU {i}", total_memory=memory[i]),
    )
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


# ---- detection ---------------------------------------------------------------------------------
def test_detect_without_cuda_offers_only_the_cpu(no_gpu):
    assert [d.name for d in devices.detect()] == ["cpu"]
    assert devices.resolve("auto") == torch.device("cpu")
    with pytest.raises(
        ValueError, match=r"device 'cuda:0' is not available on this machine; available: cpu, auto"
    ):
        devices.check_device("cuda")


def test_detect_with_cuda_lists_every_gpu_with_name_and_memory(monkeypatch):
    fake_cuda(monkeypatch, [80 * GiB, 24 * GiB])
    found = devices.detect()
    assert [(d.name, d.description, d.memory_bytes) for d in found] == [
        ("cpu", "CPU", None),
        ("cuda:0", "Fake GPU 0", 80 * GiB),
        ("cuda:1", "Fake GPU 1", 24 * GiB),
    ]
    devices.check_device("cuda:1")
    devices.check_device("cuda")
    assert devices.resolve("auto") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="available: cpu, cuda:0, cuda:1, auto"):
        devices.check_device("cuda:2")


def test_a_missing_device_is_a_config_error_before_anything_runs(no_gpu):
    with pytest.raises(
        ConfigError,
        match=r"clients\.0\.device: device 'cuda:3' is not available on this "
        r"machine; available: cpu, auto",
    ):
        parse_config(digits_config(clients=[{"name": "a", "device": "cuda:3"}]))
    parse_config(digits_config(clients=[{"name": "a", "device": "auto"}]))


# ---- memory estimate -----------------------------------------------------------------------------
MLP = {"arch": "mlp", "hidden": 32, "depth": 2}
TAB = InputSpec("tabular", (20,))


@pytest.mark.parametrize(
    ("optimizer", "momentum", "copies"),
    [("sgd", 0.0, 0), ("sgd", 0.9, 1), ("adam", 0.0, 2), ("adamw", 0.0, 2)],
)
def test_memory_estimate_of_an_mlp_matches_the_hand_count(optimizer, momentum, copies):
    # parameters: 20*32+32 + 32*16+16 + 16*3+3 = 1251 floats
    # saved for backward per sample: both ReLU outputs (32 + 16) and the logits (3)
    est = estimate_memory(
        MLP, TAB, rep_dim=16, n_out=3, batch_size=64, optimizer=optimizer, momentum=momentum
    )
    assert est.weights == est.gradients == 4 * 1251
    assert est.optimizer == copies * 4 * 1251
    assert est.activations == 64 * 4 * (32 + 16 + 3)
    assert est.batch == 4 * 64 * 20
    assert est.as_dict()["total"] == est.weights * (2 + copies) + est.activations + est.batch


def test_activations_grow_with_the_batch_and_dominate_for_convolutions():
    image = InputSpec("image", (1, 8, 8))
    small = estimate_memory({"arch": "cnn", "channels": 32}, image, 64, 10, 32, "adam")
    large = estimate_memory({"arch": "cnn", "channels": 32}, image, 64, 10, 1024, "adam")
    assert large.weights == small.weights and large.optimizer == small.optimizer
    assert large.activations > 20 * small.activations
    assert large.activations > 10 * (large.weights + large.gradients + large.optimizer)


def big_roster(device: str) -> dict:
    return digits_config(
        clients=[
            {
                "name": "big",
                "count": 3,
                "model": {"arch": "cnn", "channels": 64},
                "optimizer": "adam",
                "batch_size": 4096,
                "device": device,
            }
        ]
    )


def test_roster_that_does_not_fit_the_gpu_gets_a_warning(monkeypatch):
    fake_cuda(monkeypatch, [512 * 2**20])
    cfg = parse_config(big_roster("cuda:0"))
    need = roster_memory(cfg.roster(), InputSpec("image", (1, 8, 8)), cfg.rep_dim, 10)["cuda:0"]
    assert need["context"] > 0 and need["total"] > 512 * 2**20
    warnings = memory_warnings(cfg, InputSpec("image", (1, 8, 8)), 10)
    assert len(warnings) == 1 and "cuda:0" in warnings[0] and "512.0 MiB" in warnings[0]
    assert "lower batch_size" in warnings[0]
    # the same roster on a large GPU fits
    fake_cuda(monkeypatch, [80 * GiB])
    assert memory_warnings(cfg, InputSpec("image", (1, 8, 8)), 10) == []


def test_validate_reports_memory_warnings(monkeypatch):
    from engine.validate import validate

    fake_cuda(monkeypatch, [512 * 2**20])
    report = validate(parse_config(big_roster("cuda:0")))
    assert report.ok
    assert any(w.startswith("memory: training on cuda:0") for w in report.warnings)


def test_threads_multiply_the_peak_client_memory(no_gpu):
    cfg = parse_config(big_roster("cpu"))
    one = roster_memory(cfg.roster(), InputSpec("image", (1, 8, 8)), cfg.rep_dim, 10, workers=1)["cpu"]
    four = roster_memory(cfg.roster(), InputSpec("image", (1, 8, 8)), cfg.rep_dim, 10, workers=4)["cpu"]
    assert four["total"] - one["total"] == 3 * (one["peak_client"] + one["resident"])


# ---- GPU -------------------------------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_memory_estimate_is_close_to_the_measured_cuda_peak():
    from engine.core.training import make_optimizer
    from engine.models import build_model

    image = InputSpec("image", (1, 8, 8))
    spec, batch = {"arch": "cnn", "channels": 64}, 2048
    est = estimate_memory(spec, image, 64, 10, batch, "adam")
    device = torch.device("cuda:0")
    model = build_model(spec, image, 64, 10).to(device)
    opt = make_optimizer("adam", model.parameters(), 1e-3)
    x = torch.randn(batch, *image.shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) - x.numel() * 4
    for _ in range(2):  # the second step has Adam's state allocated
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    torch.cuda.synchronize()
    measured = torch.cuda.max_memory_allocated(device) - base
    assert 0.5 * measured < est.total < 2.0 * measured, (est.as_dict(), measured)


@pytest.mark.gpu
@needs_cuda
def test_the_same_run_on_cuda_and_cpu_means_the_same():
    from engine.core.simulation import Simulation

    def final(device: str) -> dict[str, float]:
        cfg = digits_config(rounds=8)
        cfg["clients"][0]["device"] = device
        sim = Simulation(parse_config(cfg))
        return sim.run()["final"]

    cpu, gpu = final("cpu"), final("cuda:0")
    assert set(cpu) == set(gpu)
    for key in ("global_acc_mean", "local_acc_mean", "server_acc"):
        assert abs(cpu[key] - gpu[key]) < 0.05, (key, cpu[key], gpu[key])
    assert cpu["global_acc_mean"] > 0.6  # it learnt (chance: 0.1), so the comparison means something
