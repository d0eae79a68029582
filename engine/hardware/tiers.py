"""Simulated device tiers: the hardware a federated client would run on, as a few figures.

A tier is what the virtual clock (:mod:`engine.hardware.clock`) needs to turn a client's work into
simulated seconds: sustained compute (FLOP/s), uplink and downlink bandwidth (bit/s), the
probability of being online in a round (availability) and the probability of dropping out during a
round (dropout). The system model is the one of FedScale (Lai et al. 2022, "FedScale: Benchmarking
Model and System Performance of Federated Learning at Scale", arXiv:2105.11367): client time =
computation (work x cost per sample / device speed) + communication (bytes / bandwidth), with
availability and failures drawn per client and round.

Every built-in figure carries its ``source``. Compute is the *sustained* rate a small-model
training loop reaches, not the datasheet peak: each tier states the peak it starts from and the
utilisation assumed (small-model training rarely exceeds 10-40% of peak). Bandwidths come from
public speed measurements; availability and dropout from published FL deployments where they
exist, otherwise they are labelled assumptions. ``docs/hardware.md`` has the table.

Users add tiers in the config (``"tiers": {"clinic-laptop": {"base": "laptop-cpu", "up_bps": 5e6}}``)
and override figures per client (``"tier_overrides": {"availability": 0.5}``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import ConfigError
from engine.registry import Registry


@dataclass(frozen=True)
class Tier:
    """One device tier of the catalogue.

    :param flops: sustained training compute in FLOP/s.
    :param up_bps: uplink (client -> server) in bit/s.
    :param down_bps: downlink (server -> client) in bit/s.
    :param availability: probability that the device is online (eligible) in a given round.
    :param dropout: probability that a device that started a round drops out before reporting.
    :param source: where the figures come from (citations and URLs) and what was assumed.
    """

    name: str
    description: str
    flops: float
    up_bps: float
    down_bps: float
    availability: float
    dropout: float
    source: str

    def __post_init__(self) -> None:
        for key in ("flops", "up_bps", "down_bps"):
            if not getattr(self, key) > 0:
                raise ValueError(f"tier '{self.name}': {key} must be positive")
        for key in ("availability", "dropout"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"tier '{self.name}': {key} must be between 0 and 1")

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the catalog page and the CLI."""
        return asdict(self)

    def with_overrides(self, overrides: TierOverrides | None) -> Tier:
        """This tier with the figures ``overrides`` sets replaced."""
        if overrides is None:
            return self
        changes = {k: float(v) for k in FIGURES if (v := getattr(overrides, k)) is not None}
        return replace(self, **changes) if changes else self


FIGURES = ("flops", "up_bps", "down_bps", "availability", "dropout")
"""The figures a tier has (and a client may override)."""

TIERS: Registry[Tier] = Registry("device tier")
"""The built-in catalogue (custom tiers from a config are resolved with :func:`resolve_tiers`)."""


def _add(tier: Tier) -> Tier:
    return TIERS.register(tier.name)(tier)


# ---- the catalogue ---------------------------------------------------------------------------
_MOBILE_NET = (
    "Ookla Speedtest Global Index, mobile medians 2024 (about 100 Mbit/s down, 12 Mbit/s up): "
    "https://www.speedtest.net/global-index"
)
_FIXED_NET = (
    "Ookla Speedtest Global Index, fixed-broadband medians 2024 (about 90 Mbit/s down, "
    "40 Mbit/s up): https://www.speedtest.net/global-index"
)
_PHONE_FL = (
    "availability and dropout: Bonawitz et al. 2019, Towards Federated Learning at Scale: System "
    "Design (arXiv:1902.01046; phones train only when idle, charging and on unmetered Wi-Fi, and "
    "6-10% of the devices that start a round drop out); Yang et al. 2021, Characterizing Impacts "
    "of Heterogeneity in Federated Learning upon Large-Scale Smartphone Data (arXiv:2006.06983)"
)

_add(
    Tier(
        "phone-low",
        "Entry-level Android phone: 4-8 small ARM cores, training on the CPU, weak 4G link.",
        flops=3e9,
        up_bps=2e6,
        down_bps=10e6,
        availability=0.3,
        dropout=0.10,
        source=(
            "compute: Cortex-A53-class CPU, ~30 GFLOP/s fp32 NEON peak x 10% sustained for on-device "
            "training (relative phone speeds: Ignatov et al. 2019, AI Benchmark, arXiv:1910.06663); "
            f"network: a weak 4G link, about a fifth of the mobile medians of the {_MOBILE_NET}; "
            f"{_PHONE_FL}; availability 0.3 is an assumption (night-time eligibility)."
        ),
    )
)

_add(
    Tier(
        "phone-high",
        "Flagship phone: big ARM cores and a mobile GPU, good 4G/5G link.",
        flops=5e10,
        up_bps=12e6,
        down_bps=100e6,
        availability=0.5,
        dropout=0.06,
        source=(
            "compute: flagship SoC (e.g. Snapdragon 8 Gen 2, Apple A16), ~500 GFLOP/s usable fp32 on the "
            "GPU x 10% sustained under thermal throttling (Ignatov et al. 2019, AI Benchmark, "
            f"arXiv:1910.06663); network: {_MOBILE_NET}; {_PHONE_FL}; availability 0.5 is an "
            "assumption."
        ),
    )
)

_add(
    Tier(
        "raspberry-pi",
        "Raspberry Pi 4 (4x Cortex-A72 at 1.5-1.8 GHz) as a city's edge box on a 4G/fibre uplink.",
        flops=5e9,
        up_bps=10e6,
        down_bps=50e6,
        availability=0.95,
        dropout=0.02,
        source=(
            "compute: HPL (double precision) 11-13 GFLOP/s on a Pi 4 (J. Geerling, "
            "https://github.com/geerlingguy/top500-benchmark; https://dadul96.github.io HPL on a Pi 4B); "
            "fp32 training of small models sustains ~5 GFLOP/s (assumption: ~40% of the fp32 HPL figure); "
            "network: an edge box on a shared 4G/fibre uplink (assumption, below the fixed medians of the "
            f"{_FIXED_NET}); availability and dropout are assumptions for mains-powered boxes."
        ),
    )
)

_add(
    Tier(
        "jetson",
        "NVIDIA Jetson Orin Nano 8 GB edge module (1024-core Ampere GPU).",
        flops=4e11,
        up_bps=10e6,
        down_bps=50e6,
        availability=0.95,
        dropout=0.02,
        source=(
            "compute: 1024 CUDA cores x 2 FLOP x 625 MHz = 1.28 TFLOP/s fp32 peak (NVIDIA Jetson Orin "
            "Nano datasheet, https://developer.nvidia.com/embedded/jetson-modules) x ~30% sustained; "
            "network, availability and dropout as raspberry-pi (assumption)."
        ),
    )
)

_add(
    Tier(
        "laptop-cpu",
        "Office laptop, training on a 4-core x86 CPU (AVX2), on office broadband.",
        flops=1e11,
        up_bps=40e6,
        down_bps=90e6,
        availability=0.8,
        dropout=0.03,
        source=(
            "compute: 4 cores x 32 fp32 FLOP/cycle (2 AVX2 FMA units) x ~3 GHz = ~380 GFLOP/s peak x "
            "~25% sustained in PyTorch training of small models; network: "
            f"{_FIXED_NET}; availability 0.8 (office hours, laptops closed or busy) and dropout 0.03 are "
            "assumptions."
        ),
    )
)

_add(
    Tier(
        "workstation-gpu",
        "GPU workstation or departmental server (one RTX A6000-class GPU) on an institutional link.",
        flops=1e13,
        up_bps=500e6,
        down_bps=1e9,
        availability=0.97,
        dropout=0.01,
        source=(
            "compute: NVIDIA RTX A6000, 38.7 TFLOP/s fp32 peak (datasheet, "
            "https://www.nvidia.com/en-us/design-visualization/rtx-a6000/) x ~25% sustained; network: "
            "1 GbE institutional link, half of it usable upstream (assumption); availability and dropout "
            "are assumptions for a maintained server (planned downtime, preemption by clinical jobs)."
        ),
    )
)

_add(
    Tier(
        "datacenter-gpu",
        "Cloud/datacenter accelerator (one NVIDIA H100 SXM) with a 10 Gbit/s WAN link.",
        flops=2e14,
        up_bps=10e9,
        down_bps=10e9,
        availability=0.99,
        dropout=0.005,
        source=(
            "compute: NVIDIA H100 SXM, 494.7 TFLOP/s dense TF32 tensor-core peak (datasheet, "
            "https://www.nvidia.com/en-us/data-center/h100/) x ~40% sustained; network: 10 Gbit/s "
            "instance egress (assumption); availability and dropout are assumptions (cloud SLAs of 99-99.9%)."
        ),
    )
)


# ---- user-defined tiers and per-client overrides (config models) --------------------------------
class TierOverrides(BaseModel):
    """Per-client changes to its tier's figures (any subset)."""

    model_config = ConfigDict(extra="forbid")

    flops: float | None = Field(None, gt=0, description="sustained training compute, FLOP/s")
    up_bps: float | None = Field(None, gt=0, description="uplink, bit/s")
    down_bps: float | None = Field(None, gt=0, description="downlink, bit/s")
    availability: float | None = Field(None, ge=0, le=1, description="probability of being online in a round")
    dropout: float | None = Field(None, ge=0, le=1, description="probability of dropping out during a round")


class TierSpec(TierOverrides):
    """A custom tier in a config: every figure, or a ``base`` tier and the figures that differ."""

    base: str | None = Field(None, description="built-in tier to start from (its figures fill the gaps)")
    description: str = Field("", max_length=300, description="what device this stands for")
    source: str = Field("", max_length=1000, description="where the figures come from")

    @model_validator(mode="after")
    def _complete(self) -> TierSpec:
        if self.base is None:
            missing = [k for k in ("flops", "up_bps", "down_bps") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f'a custom tier needs {", ".join(missing)} (or a "base" tier to start '
                    f"from: {', '.join(TIERS.names())})"
                )
        elif self.base not in TIERS:
            raise ValueError(f"unknown base tier '{self.base}'; built-in tiers: {', '.join(TIERS.names())}")
        return self

    def build(self, name: str) -> Tier:
        """The :class:`Tier` this spec describes under ``name``."""
        if self.base is not None:
            base = TIERS.get(self.base)
            tier = replace(
                base.with_overrides(self),
                name=name,
                description=self.description or f"{base.description} (customised)",
                source=self.source or f"based on '{base.name}': {base.source}",
            )
            return tier
        return Tier(
            name,
            self.description or "custom tier",
            float(self.flops),
            float(self.up_bps),  # type: ignore[arg-type]
            float(self.down_bps),
            1.0 if self.availability is None else self.availability,  # type: ignore[arg-type]
            0.0 if self.dropout is None else self.dropout,
            self.source or "user-defined",
        )


def resolve_tiers(custom: dict[str, TierSpec] | None = None) -> dict[str, Tier]:
    """Built-in tiers plus ``custom`` ones (a custom tier may not reuse a built-in name)."""
    out = dict(TIERS.items())
    for name, spec in (custom or {}).items():
        if name in out:
            raise ConfigError(
                f"tiers.{name}: '{name}' is a built-in tier; give your tier another name "
                f'(with "base": "{name}" to start from its figures)'
            )
        out[name] = spec.build(name)
    return out


def client_tier(tier: str | None, overrides: TierOverrides | None, tiers: dict[str, Tier]) -> Tier | None:
    """The effective tier of one client (``None``: no simulated hardware).

    :raises ConfigError: unknown tier name, listing the valid ones.
    """
    if tier is None:
        return None
    if tier not in tiers:
        raise ConfigError(f"unknown device tier '{tier}'; valid tiers: {', '.join(sorted(tiers))}")
    return tiers[tier].with_overrides(overrides)
