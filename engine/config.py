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
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.core.metrics import PRIMARY_CHOICES
from engine.core.optimizers import OPTIMIZER_NAMES
from engine.data.augment import AugmentConfig
from engine.data.config import DataConfig
from engine.data.preprocess import METHODS as PREPROCESSING
from engine.errors import ConfigError, FedMosaicError, validation_problems
from engine.hardware.tiers import TierOverrides, TierSpec
from engine.privacy.config import ClientPrivacy, SecureAggregation, ServerDP
from engine.robustness.config import AdversarySpec, DefenceSpec
from engine.tracking.config import TrackingSpec


class ClientSpec(BaseModel):
    """One client, or ``count`` identical ones (names get ``-1``, ``-2``... suffixes)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("client", min_length=1, max_length=80, description="display name")
    count: int = Field(1, ge=1, le=10_000, description="repeat this spec N times")
    model: dict[str, Any] = Field(
        default_factory=lambda: {"arch": "mlp"},
        validate_default=True,
        description='architecture and size knobs, e.g. {"arch": "cnn", "channels": 16}',
    )
    optimizer: Literal[OPTIMIZER_NAMES] = Field("sgd", description="local optimiser")
    lr: float = Field(0.05, gt=0, le=10, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum (sgd only)")
    epochs: int = Field(1, ge=1, le=1000, description="local epochs per round")
    batch_size: int = Field(32, ge=1, le=65_536, description="local mini-batch size")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty")
    device: str = Field("cpu", description="where this client computes: cpu, cuda:N, mps or auto")
    preprocessing: str = Field(
        "none",
        description="none, standardize, minmax or robust; missing values are "
        "filled either way; statistics as data.statistics says "
        "(federated by default)",
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="image augmentation")
    join_round: int = Field(1, ge=1, description="first round this client takes part in (late joiners)")
    cold_start: bool = Field(
        False, description="a late joiner starts from scratch instead of the federation's shared part"
    )
    data_share: float | None = Field(
        None, gt=0, le=1, description="share of the training pool (iid/quantity partitions)"
    )
    tier: str | None = Field(None, description="simulated device tier (hardware catalogue)")
    tier_overrides: TierOverrides | None = Field(
        None,
        description='change some figures of this client\'s tier, e.g. {"up_bps": 2e6, "availability": 0.5}',
    )
    privacy: ClientPrivacy | None = Field(
        None,
        description='DP-SGD on this client\'s data, e.g. {"clip_norm": 1.0, "target_epsilon": 4} '
        "(see docs/privacy.md)",
    )
    adversary: AdversarySpec | None = Field(
        None,
        description='a compromised client: the attack it makes, e.g. {"attack": "label_flip"} (see the '
        "catalog)",
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return plain_name(value)

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
        from engine.hardware.devices import check_device

        check_device(value)
        return value

    @property
    def arch(self) -> str:
        return str(self.model["arch"])

    @property
    def model_key(self) -> str:
        """The model spec as canonical text: clients with equal keys build models of identical
        parameter shapes (and, with ``init: shared``, identical initial weights)."""
        return json.dumps(self.model, sort_keys=True)


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
            found = "; ".join(validation_problems(exc, empty="parameters", clean=True, model=strategy.Params))
            raise ConfigError(f"strategy '{self.name}': {found}") from None
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
    global_sample: int | None = Field(
        500,
        ge=10,
        le=10_000_000,
        title="Global test sample (rows)",
        description="rows of the global test set every client is scored on at evaluated rounds: a fixed "
        "sample with each class in proportion (the whole set when it is smaller; empty: every "
        "row every time)",
    )
    global_full_every: int = Field(
        10,
        ge=1,
        title="Whole global test set every (rounds)",
        description="score every row of the global test set every N rounds (and always at the last)",
    )
    primary_metric: Literal[PRIMARY_CHOICES] = Field(  # type: ignore[valid-type]
        "auto",
        description="the headline figure of every chart, table and verdict, and what picks each "
        "client's best round on its validation data (auto: balanced accuracy when some "
        "client's data is over 70% one class, else accuracy; R² for regression)",
    )
    rep_dim: int = Field(
        64, ge=2, le=4096, description="representation width shared by every model's body and head"
    )
    init: Literal["shared", "per_client"] = Field(
        "shared",
        title="Initial weights",
        description="shared: clients with the same model start from the same weights, as the "
        "reference libraries start every client from one model (what averaging a part of the "
        "model, as LG-FedAvg and FedPer do, assumes); per_client: each client draws its own",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    clients: list[ClientSpec] = Field(..., description="the roster")
    strategy: StrategySpec = Field(default_factory=StrategySpec)
    defence: DefenceSpec = Field(
        default_factory=DefenceSpec,
        description='robust aggregation against compromised clients, e.g. {"name": "median"}',
    )
    executor: str = Field("sequential", description="sequential, threads, vectorized or ray")
    executor_options: dict[str, Any] = Field(default_factory=dict, description='e.g. {"workers": 2}')
    checkpoint_every: int = Field(
        5, ge=0, description="save a resumable checkpoint every N rounds (0: never)"
    )
    deadline: float | None = Field(
        None,
        gt=0,
        description="simulated seconds a round may last; clients "
        "that cannot finish by then are stragglers (needs device tiers)",
    )
    deadline_policy: Literal["drop", "partial"] = Field(
        "drop",
        description="stragglers past the deadline: drop their update, or accept the share of "
        "local work that fits in the deadline",
    )
    selection: Literal["random", "all", "deadline_aware"] = Field(
        "random",
        description="random: a random fraction of the online clients; all: every online client; "
        "deadline_aware: clients expected to finish within the deadline first",
    )
    tiers: dict[str, TierSpec] = Field(
        default_factory=dict,
        description="custom device tiers by name, e.g. "
        '{"clinic-laptop": {"base": "laptop-cpu", "up_bps": 5e6}}',
    )
    tracking: TrackingSpec | None = Field(
        None,
        description='other places a run is logged to, e.g. {"mlflow": {"uri": "file:///home/me/mlruns"}}',
    )
    server_dp: ServerDP | None = Field(
        None,
        description="user-level DP-FedAvg at the server for the strategies that average models, e.g. "
        '{"noise_multiplier": 1.0, "clip_norm": 0.5, "clipping": "adaptive"} (see docs/privacy.md)',
    )
    secure_aggregation: SecureAggregation | None = Field(
        None,
        description="the server learns only the sum of the updates (simulated pairwise masking, "
        'Bonawitz et al. 2017), e.g. {"threshold": 0.5}',
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return plain_name(value)

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, value: str) -> str:
        from engine.executors import EXECUTORS

        EXECUTORS.get(value)  # raises naming the valid executors
        return value

    @field_validator("executor_options")
    @classmethod
    def _executor_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from engine.executors import executor_params

        executor = info.data.get("executor")
        if executor is None:  # the executor itself is invalid: reported there
            return value
        try:
            return executor_params(executor, value).model_dump(exclude_unset=True, mode="json")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("data")
    @classmethod
    def _data_params(cls, value: DataConfig) -> DataConfig:
        """The dataset, its ``options`` and the partition's parameters, each checked by the model
        its dataset or partitioner owns (typos are refused with the valid names)."""
        from engine.data import DATASETS, PARTITIONERS

        try:
            source = DATASETS.get(value.dataset)
            method = PARTITIONERS.get(value.partition.method)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        model = source.Options
        if model is None and value.options:
            raise ValueError(
                f"dataset '{value.dataset}' takes no options; remove options "
                f"{', '.join(sorted(map(str, value.options)))}"
            )
        if model is not None:
            options = _checked(model, value.options, f"options of dataset '{value.dataset}'")
            value = value.model_copy(update={"options": options.model_dump(exclude_unset=True, mode="json")})
        _checked(method.Params, value.partition.params(), f"partition '{method.name}'")
        return value

    @field_validator("clients")
    @classmethod
    def _some_clients(cls, value: list[ClientSpec]) -> list[ClientSpec]:
        if not value:
            raise ValueError("the roster is empty; add at least one client")
        return value

    @model_validator(mode="after")
    def _known_tiers(self) -> ExperimentConfig:
        from engine.hardware.tiers import resolve_tiers

        try:
            tiers = resolve_tiers(self.tiers)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        for i, spec in enumerate(self.clients):
            if spec.tier is None:
                if spec.tier_overrides is not None:
                    raise ValueError(
                        f"clients.{i} ({spec.name}): tier_overrides needs a tier; valid tiers: "
                        f"{', '.join(sorted(tiers))}"
                    )
            elif spec.tier not in tiers:
                raise ValueError(
                    f"clients.{i} ({spec.name}): unknown device tier '{spec.tier}'; valid tiers: "
                    f'{", ".join(sorted(tiers))} (or define it under "tiers")'
                )
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


def _checked(model: type[BaseModel], values: dict[str, Any], what: str) -> BaseModel:
    """``values`` validated by a component's own parameter model; a ``ValueError`` naming
    ``what``, each bad field and, for a typo, the valid names."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        found = "; ".join(validation_problems(exc, empty="parameters", clean=True, model=model))
        raise ValueError(f"{what}: {found}") from None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def plain_name(value: str) -> str:
    """A display name as given, refused when it holds control characters (terminal escape
    sequences, line breaks, bidirectional overrides) that would change how other text shows."""
    if _CONTROL.search(value):
        raise ValueError(
            "names are plain text: remove control characters (line breaks, tabs, escape sequences)"
        )
    if not value.strip():
        raise ValueError("a name needs at least one visible character")
    return value


def _format(exc: ValidationError) -> str:
    return "; ".join(validation_problems(exc, empty="config", clean=True, model=ExperimentConfig))


def parse_config(data: dict[str, Any] | str) -> ExperimentConfig:
    """Validate a config given as a dict or a JSON string.

    :raises ConfigError: listing every problem as ``field.path: message``.
    """
    try:
        if isinstance(data, str):
            from engine.config_file import read_document

            data = read_document(data, "the config", "json")
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_format(exc)}") from None
    except FedMosaicError:
        raise
    except ValueError as exc:
        raise ConfigError(f"invalid config: {exc}") from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a JSON or YAML config file (bounded and strict: :mod:`engine.config_file`).

    :raises ConfigError: unreadable file, too large or deep, duplicate keys, not UTF-8, bad syntax
        (with line), or invalid fields.
    """
    from engine.config_file import read_file

    return parse_config(read_file(path))


def config_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`ExperimentConfig`."""
    return ExperimentConfig.model_json_schema()
