"""The experiment config: one JSON (or YAML) document describes a whole experiment.

A public interface (users write these files, the pages build them): field names are stable.
Validation has two layers. :class:`ExperimentConfig` checks each field on its own and against the
registries (known architecture, strategy, device; valid knobs and strategy parameters).
:func:`engine.validate.validate` then checks what needs the data (can each architecture read the
dataset's input kind, can the strategy combine the roster). Both raise :class:`ConfigError` whose
message names the field and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.data.augment import AugmentConfig
from engine.data.config import DataConfig
from engine.data.preprocess import METHODS as PREPROCESSING
from engine.errors import ConfigError, FedMosaicError, validation_problems
from engine.hardware import TierOverrides, TierSpec


class ClientSpec(BaseModel):
    """One client, or ``count`` identical ones (names get ``-1``, ``-2``... suffixes)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("client", min_length=1, max_length=80, description="display name")
    count: int = Field(1, ge=1, le=10_000, description="repeat this spec N times")
    model: dict[str, Any] = Field(default_factory=lambda: {"arch": "mlp"},
                                  description='architecture and size knobs, e.g. {"arch": "cnn", "channels": 16}')
    optimizer: Literal["sgd", "adam", "adamw"] = Field("sgd", description="local optimiser")
    lr: float = Field(0.05, gt=0, le=10, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum (sgd only)")
    epochs: int = Field(1, ge=1, le=1000, description="local epochs per round")
    batch_size: int = Field(32, ge=1, le=65_536, description="local mini-batch size")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty")
    device: str = Field("cpu", description="where this client computes: cpu, cuda:N, mps or auto")
    preprocessing: str = Field("none", description="none, standardize, minmax or robust; fitted on this client's training data")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="image augmentation")
    join_round: int = Field(1, ge=1, description="first round this client takes part in (late joiners)")
    cold_start: bool = Field(False, description="a late joiner starts from scratch instead of the federation's shared part")
    data_share: float | None = Field(None, gt=0, le=1, description="share of the training pool (iid/quantity partitions)")
    tier: str | None = Field(None, description="simulated device tier (hardware catalogue)")
    tier_overrides: TierOverrides | None = Field(
        None, description='change some figures of this client\'s tier, e.g. {"up_bps": 2e6, "availability": 0.5}')

    @field_validator("model", mode="before")
    @classmethod
    def _model_from_name(cls, value: Any) -> Any:
        return {"arch": value} if isinstance(value, str) else value

    @field_validator("model")
    @classmethod
    def _known_arch(cls, value: dict[str, Any]) -> dict[str, Any]:
        from engine.models import arch_params

        if "arch" not in value:
            raise ValueError('needs "arch", e.g. {"arch": "mlp"}')
        arch, params = arch_params(value)  # raises ConfigError naming the valid names / knobs
        return {"arch": arch.name, **params.model_dump()}

    @field_validator("preprocessing")
    @classmethod
    def _known_preprocessing(cls, value: str) -> str:
        if value not in PREPROCESSING:
            raise ValueError(f"unknown preprocessing '{value}'; valid: {', '.join(PREPROCESSING)}")
        return value

    @field_validator("device")
    @classmethod
    def _device_here(cls, value: str) -> str:
        from engine.devices import check_device

        check_device(value)
        return value

    @property
    def arch(self) -> str:
        return str(self.model["arch"])


class StrategySpec(BaseModel):
    """``{"name": strategy, **params}``; the params are validated by the strategy's ``Params``."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("fedavg", description="integration strategy (see the catalog)")

    @model_validator(mode="after")
    def _valid_params(self) -> StrategySpec:
        from engine.strategies import STRATEGIES

        strategy = STRATEGIES.get(self.name)
        try:
            params = strategy.Params(**(self.model_extra or {}))
        except ValidationError as exc:
            raise ConfigError(f"strategy '{self.name}': {'; '.join(validation_problems(exc))}") from None
        for key, value in params.model_dump().items():
            setattr(self, key, value)
        return self

    def params(self) -> dict[str, Any]:
        """The strategy's parameters with defaults filled in."""
        return dict(self.model_extra or {})


class ExperimentConfig(BaseModel):
    """A whole experiment: data, roster, strategy, rounds, seed."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("experiment", min_length=1, max_length=120)
    seed: int = Field(0, ge=0, le=2**31 - 1, description="run seed; every random choice derives from it")
    rounds: int = Field(20, ge=1, le=100_000, description="communication rounds")
    fraction: float = Field(1.0, gt=0, le=1, description="share of available clients selected per round")
    eval_every: int = Field(1, ge=1, description="evaluate every N rounds (and always at the last)")
    rep_dim: int = Field(64, ge=2, le=4096, description="representation width shared by every model's body and head")
    data: DataConfig = Field(default_factory=DataConfig)
    clients: list[ClientSpec] = Field(..., description="the roster")
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    executor: str = Field("sequential", description="sequential, threads, vectorized or ray")
    executor_options: dict[str, Any] = Field(default_factory=dict, description="e.g. {\"workers\": 2}")
    checkpoint_every: int = Field(5, ge=0, description="save a resumable checkpoint every N rounds (0: never)")
    deadline: float | None = Field(None, gt=0, description="simulated seconds a round may last; clients "
                                   "that cannot finish by then are stragglers (needs device tiers)")
    deadline_policy: Literal["drop", "partial"] = Field(
        "drop", description="stragglers past the deadline: drop their update, or accept the share of "
                            "local work that fits in the deadline")
    selection: Literal["random", "all", "deadline_aware"] = Field(
        "random", description="random: a random fraction of the online clients; all: every online client; "
                              "deadline_aware: clients expected to finish within the deadline first")
    tiers: dict[str, TierSpec] = Field(default_factory=dict, description='custom device tiers by name, e.g. '
                                       '{"clinic-laptop": {"base": "laptop-cpu", "up_bps": 5e6}}')

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, value: str) -> str:
        from engine.executors import EXECUTORS

        EXECUTORS.get(value)  # raises naming the valid executors
        return value

    @field_validator("clients")
    @classmethod
    def _some_clients(cls, value: list[ClientSpec]) -> list[ClientSpec]:
        if not value:
            raise ValueError("the roster is empty; add at least one client")
        return value

    @model_validator(mode="after")
    def _known_tiers(self) -> ExperimentConfig:
        from engine.hardware import resolve_tiers

        try:
            tiers = resolve_tiers(self.tiers)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        for i, spec in enumerate(self.clients):
            if spec.tier is None:
                if spec.tier_overrides is not None:
                    raise ValueError(f"clients.{i} ({spec.name}): tier_overrides needs a tier; valid tiers: "
                                     f"{', '.join(sorted(tiers))}")
            elif spec.tier not in tiers:
                raise ValueError(f"clients.{i} ({spec.name}): unknown device tier '{spec.tier}'; valid tiers: "
                                 f"{', '.join(sorted(tiers))} (or define it under \"tiers\")")
        return self

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy_from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    def roster(self) -> list[ClientSpec]:
        """The clients with ``count`` expanded: one spec per client, names made unique."""
        out: list[ClientSpec] = []
        for spec in self.clients:
            if spec.count == 1:
                out.append(spec)
                continue
            for i in range(spec.count):
                out.append(spec.model_copy(update={"name": f"{spec.name}-{i + 1}", "count": 1}))
        seen: dict[str, int] = {}
        for i, spec in enumerate(out):
            if spec.name in seen:
                out[i] = spec.model_copy(update={"name": f"{spec.name}#{i + 1}"})
            seen[spec.name] = i
        return out


def _format(exc: ValidationError) -> str:
    return "; ".join(validation_problems(exc, empty="config", clean=True))


def parse_config(data: dict[str, Any] | str) -> ExperimentConfig:
    """Validate a config given as a dict or a JSON string.

    :raises ConfigError: listing every problem as ``field.path: message``.
    """
    try:
        if isinstance(data, str):
            return ExperimentConfig.model_validate_json(data)
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_format(exc)}") from None
    except FedMosaicError:
        raise
    except ValueError as exc:
        raise ConfigError(f"invalid config: {exc}") from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a JSON or YAML config file.

    :raises ConfigError: unreadable file, bad syntax (with line), or invalid fields.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold one JSON object (an experiment config)")
    return parse_config(data)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`ExperimentConfig`."""
    return ExperimentConfig.model_json_schema()
