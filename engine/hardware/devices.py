"""Real compute devices: what this machine has, checking a client's ``device`` against it, and
estimating whether a roster's training fits in a device's memory before launch.

Training memory follows the usual accounting (e.g. Rajbhandari et al. 2020, "ZeRO: Memory
Optimizations Toward Training Trillion Parameter Models", arXiv:1910.02054, section 3): weights +
gradients + optimiser state (SGD with momentum: one copy of the weights, Adam/AdamW: two) +
activations kept for the backward pass, which grow linearly with the batch size. Activations are
measured, not guessed: a forward pass of the real model records every tensor autograd saves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch

from engine.core.optimizers import OPTIMIZERS
from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.config import ClientSpec, ExperimentConfig
    from engine.models import InputSpec


@dataclass(frozen=True)
class DeviceInfo:
    """One device this machine offers."""

    name: str
    description: str
    memory_bytes: int | None = None


def detect() -> list[DeviceInfo]:
    """Every device torch can use here: ``cpu``, each ``cuda:N`` with its name and memory, ``mps``."""
    found = [DeviceInfo("cpu", "CPU")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append(DeviceInfo(f"cuda:{i}", props.name, int(props.total_memory)))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append(DeviceInfo("mps", "Apple Metal (MPS)"))
    return found


def check_device(value: str) -> None:
    """Raise ``ValueError`` (reported as a config error) unless ``value`` exists here."""
    if value == "auto":
        return
    names = [d.name for d in detect()]
    if value == "cuda":
        value = "cuda:0"
    if value not in names:
        raise ValueError(
            f"device '{value}' is not available on this machine; available: {', '.join(names + ['auto'])}"
        )


def resolve(value: str) -> torch.device:
    """The torch device for a client's ``device`` setting (``auto``: first GPU, else CPU)."""
    if value == "auto":
        devices = detect()
        gpu = next((d for d in devices if d.name != "cpu"), None)
        return torch.device(gpu.name if gpu else "cpu")
    if value == "cuda":
        value = "cuda:0"
    try:
        return torch.device(value)
    except RuntimeError as exc:
        raise ConfigError(f"device '{value}': {exc}") from None


# ---- memory ------------------------------------------------------------------------------------
FLOAT_BYTES = 4
CUDA_CONTEXT_BYTES = 400 * 2**20
"""What a CUDA context takes on the GPU before any tensor (typically 300-500 MiB)."""

FIT_SHARE = 0.9
"""Warn when an estimate exceeds this share of a device's memory."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one client's training needs on its device (float32)."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    batch: int

    @property
    def total(self) -> int:
        """Everything above together."""
        return self.weights + self.gradients + self.optimizer + self.activations + self.batch

    def as_dict(self) -> dict[str, int]:
        """The breakdown plus ``total``."""
        return {**asdict(self), "total": self.total}


def optimizer_copies(optimizer: str, momentum: float = 0.0) -> int:
    """Copies of the weights an optimiser keeps: SGD 0 (1 with momentum), Adam/AdamW 2."""
    return OPTIMIZERS[optimizer].copies(momentum)


@lru_cache(maxsize=256)
def _activation_profile(
    spec_json: str, kind: str, shape: tuple[int, ...], rep_dim: int, n_out: int
) -> tuple[int, int, int]:
    """``(trainable parameters, fixed bytes, bytes per sample)`` of the tensors autograd saves for
    the backward pass, measured at batch sizes 2 and 4 on the CPU."""
    from engine.models import InputSpec, build_model, count_params

    spec = InputSpec(kind, shape)  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):
        model = build_model(json.loads(spec_json), spec, rep_dim, n_out)
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def saved_bytes(batch: int) -> int:
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in params:
                seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
            return t

        x = torch.zeros((batch, *shape))
        params.add(x.untyped_storage().data_ptr())  # the input batch is counted on its own
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        seen[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()
        return sum(seen.values())

    small, large = saved_bytes(2), saved_bytes(4)
    per_sample = max(0, (large - small) // 2)
    fixed = max(0, small - 2 * per_sample)
    return count_params(model), fixed, per_sample


def estimate_memory(
    model_spec: dict[str, Any],
    input_spec: InputSpec,
    rep_dim: int,
    n_out: int,
    batch_size: int,
    optimizer: str,
    momentum: float = 0.0,
) -> MemoryEstimate:
    """Training memory of one client's model on its device, broken down.

    :param model_spec: ``{"arch": ..., **knobs}`` as in a client spec.
    :param optimizer: ``sgd``, ``adam`` or ``adamw`` (``momentum`` > 0 adds SGD's buffer).
    """
    params, fixed, per_sample = _activation_profile(
        json.dumps(model_spec, sort_keys=True), input_spec.kind, tuple(input_spec.shape), rep_dim, n_out
    )
    weights = FLOAT_BYTES * params
    return MemoryEstimate(
        weights=weights,
        gradients=weights,
        optimizer=weights * optimizer_copies(optimizer, momentum),
        activations=fixed + per_sample * batch_size,
        batch=FLOAT_BYTES * batch_size * input_spec.numel,
    )


def _capacity(device: torch.device, found: dict[str, DeviceInfo]) -> int | None:
    if device.type == "cpu":
        try:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        except (ValueError, OSError, AttributeError):
            return None
    name = f"cuda:{device.index or 0}" if device.type == "cuda" else device.type
    info = found.get(name)
    return info.memory_bytes if info is not None else None


def roster_memory(
    roster: Sequence[ClientSpec],
    input_spec: InputSpec,
    rep_dim: int,
    n_out: int,
    *,
    samples_per_client: int = 0,
    workers: int = 1,
) -> dict[str, dict[str, int]]:
    """Peak memory the run needs on each real device, by device name.

    Per device: one cached module per distinct model spec (``resident``), plus the largest
    client's gradients, optimiser state, activations, batch and data (``peak_client``) times the
    clients training at once (``workers``), plus a CUDA context on GPUs. The CPU also holds every
    client's state between rounds (weights, twice: current and initial).
    """
    out: dict[str, dict[str, int]] = {}
    specs: dict[str, set[str]] = {}
    per_client_data = FLOAT_BYTES * samples_per_client * input_spec.numel
    for spec in roster:
        device = str(resolve(spec.device))
        est = estimate_memory(
            spec.model, input_spec, rep_dim, n_out, spec.batch_size, spec.optimizer, spec.momentum
        )
        entry = out.setdefault(
            device, {"resident": 0, "peak_client": 0, "context": 0, "client_states": 0, "clients": 0}
        )
        key = spec.model_key
        if key not in specs.setdefault(device, set()):
            specs[device].add(key)
            entry["resident"] += est.weights * max(1, workers)
        data = per_client_data if device != "cpu" else 0  # the training split is copied to the device
        entry["peak_client"] = max(entry["peak_client"], est.total - est.weights + data)
        entry["clients"] += 1
        if device.startswith("cuda"):
            entry["context"] = CUDA_CONTEXT_BYTES
        cpu = out.setdefault(
            "cpu", {"resident": 0, "peak_client": 0, "context": 0, "client_states": 0, "clients": 0}
        )
        cpu["client_states"] += 2 * est.weights
    for entry in out.values():
        entry["total"] = (
            entry["resident"]
            + entry["peak_client"] * max(1, workers)
            + entry["context"]
            + entry["client_states"]
        )
    return out


def memory_warnings(
    config: ExperimentConfig, input_spec: InputSpec, n_out: int, samples_per_client: int = 0
) -> list[str]:
    """Warnings when the roster would not fit in the memory of the devices it is placed on."""
    workers = int(config.executor_options.get("workers", 1)) if config.executor == "threads" else 1
    try:
        need = roster_memory(
            config.roster(),
            input_spec,
            config.rep_dim,
            n_out,
            samples_per_client=samples_per_client,
            workers=workers,
        )
    except (ConfigError, ValueError, RuntimeError) as exc:
        return [f"memory: could not estimate ({exc})"]
    found = {d.name: d for d in detect()}
    warnings = []
    for name, entry in need.items():
        capacity = _capacity(torch.device(name), found)
        if capacity is None or entry["total"] <= FIT_SHARE * capacity:
            continue
        warnings.append(
            f"memory: training on {name} needs about {_mib(entry['total'])} (largest client "
            f"{_mib(entry['peak_client'])}, models {_mib(entry['resident'])}"
            + (f", client states {_mib(entry['client_states'])}" if entry["client_states"] else "")
            + (f", CUDA context {_mib(entry['context'])}" if entry["context"] else "")
            + f") but {name} has {_mib(capacity)}; lower batch_size or model size, use fewer threads, or "
            f"place some clients on another device"
        )
    return warnings


def _mib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"
