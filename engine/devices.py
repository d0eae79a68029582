"""Real compute devices: what this machine has, and checking a client's ``device`` against it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.errors import ConfigError


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
        raise ValueError(f"device '{value}' is not available on this machine; available: "
                         f"{', '.join(names + ['auto'])}")


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
