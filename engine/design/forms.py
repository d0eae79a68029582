"""Form fields generated from pydantic models: one :class:`FieldSpec` per parameter (its kind,
default, bounds and help), for strategies, partitioners, dataset options, data and run settings,
attacks, defences and the client detail form (from :class:`~engine.config.ClientSpec`)."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from engine.config import ClientSpec, ExperimentConfig
from engine.data import DATASETS, PARTITIONERS
from engine.data.augment import AugmentConfig
from engine.data.config import DataConfig, WindowConfig
from engine.privacy import roster as privacy_roster
from engine.privacy.config import ClientPrivacy
from engine.robustness.attacks import ATTACKS
from engine.robustness.defences import DEFENCES
from engine.robustness.design import attack_name
from engine.strategies import STRATEGIES


@dataclass
class FieldSpec:
    """One editable parameter, described for a generated form widget.

    ``kind`` is ``float``, ``int``, ``bool``, ``choice`` (see ``choices``), ``text`` or ``json``
    (anything else, edited as JSON text).
    """

    name: str
    kind: str
    default: Any
    description: str = ""
    optional: bool = False
    required: bool = False
    choices: list[Any] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False
    title: str = ""
    """The label a form shows (the model field's ``title``; empty: the name, in words)."""

    def check(self, value: Any) -> str | None:
        """Why ``value`` is out of bounds, or ``None``."""
        if value is None:
            return None if self.optional else "a value is required"
        if self.kind in ("float", "int"):
            if self.minimum is not None and (
                value < self.minimum or (self.exclusive_min and value == self.minimum)
            ):
                return f"must be {'>' if self.exclusive_min else '>='} {self.minimum}"
            if self.maximum is not None and (
                value > self.maximum or (self.exclusive_max and value == self.maximum)
            ):
                return f"must be {'<' if self.exclusive_max else '<='} {self.maximum}"
        return None


def fields_of(model: type[BaseModel], only: Iterable[str] | None = None) -> list[FieldSpec]:
    """The fields of a pydantic parameter model as :class:`FieldSpec` (in declaration order)."""
    wanted = set(only) if only is not None else None
    out = []
    for name, info in model.model_fields.items():
        if wanted is not None and name not in wanted:
            continue
        out.append(_field_spec(name, info))
    return out


def _field_spec(name: str, info: FieldInfo) -> FieldSpec:
    annotation = info.annotation
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        optional = len(non_none) < len(args)
        annotation = non_none[0] if len(non_none) == 1 else annotation
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    spec = FieldSpec(
        name, "json", default, info.description or "", optional, info.is_required(), title=info.title or ""
    )
    if typing.get_origin(annotation) is Literal:
        spec.kind, spec.choices = "choice", list(typing.get_args(annotation))
    elif annotation is bool:
        spec.kind = "bool"
    elif annotation is int:
        spec.kind = "int"
    elif annotation is float:
        spec.kind = "float"
    elif annotation is str:
        spec.kind = "text"
    for meta in info.metadata:
        for attr, target, exclusive in (
            ("ge", "minimum", False),
            ("gt", "minimum", True),
            ("le", "maximum", False),
            ("lt", "maximum", True),
        ):
            value = getattr(meta, attr, None)
            if value is not None:
                setattr(spec, target, value)
                if exclusive:
                    setattr(spec, f"exclusive_{target[:3]}", True)
    return spec


def strategy_fields(name: str) -> list[FieldSpec]:
    """The parameters of strategy ``name`` (from its ``Params`` model)."""
    return fields_of(STRATEGIES.get(name).Params)


def partition_fields(method: str) -> list[FieldSpec]:
    """The parameters of partitioner ``method``."""
    return fields_of(PARTITIONERS.get(method).Params)


def dataset_options_model(name: str) -> type[BaseModel] | None:
    """The ``data.options`` model of a dataset (its ``Options``, as
    :class:`~engine.data.base.DatasetSource` declares); ``None`` for datasets without options."""
    model = getattr(DATASETS.get(name), "Options", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def dataset_option_fields(name: str) -> list[FieldSpec]:
    """The ``data.options`` of dataset ``name`` as form fields (empty when it has none)."""
    model = dataset_options_model(name)
    return fields_of(model) if model is not None else []


#: Run-level settings the Launch page shows when the config has them (hardware adds the deadline).
LAUNCH_FIELDS = (
    "rounds",
    "primary_metric",
    "fraction",
    "eval_every",
    "global_sample",
    "global_full_every",
    "checkpoint_every",
    "rep_dim",
    "init",
    "deadline",
    "deadline_policy",
    "selection",
)


def launch_fields() -> list[FieldSpec]:
    """Form fields for the run-level settings of :class:`ExperimentConfig` that exist in this build."""
    present = [n for n in LAUNCH_FIELDS if n in ExperimentConfig.model_fields]
    specs = {s.name: s for s in fields_of(ExperimentConfig, present)}
    return [specs[n] for n in present if n in specs]


HELD_OUT = ("test_fraction", "validation_fraction", "global_test_fraction", "public_fraction", "max_samples")
"""The ``data`` fields of the held-out sets and subsampling, shown together on the Data page."""


def window_fields() -> list[FieldSpec]:
    """Form fields of a CSV's sliding time windows (``data.window``)."""
    return fields_of(WindowConfig)


def data_field(name: str) -> FieldSpec:
    """One field of the ``data`` section (``path``, ``download``, ``delimiter``...)."""
    return fields_of(DataConfig, [name])[0]


def held_out_fields() -> list[FieldSpec]:
    """Form fields of :data:`HELD_OUT`."""
    return fields_of(DataConfig, HELD_OUT)


def attack_fields(title: str) -> list[FieldSpec]:
    """The settings of the attack shown as ``title`` (for the one-client form)."""
    name = attack_name(title)
    return fields_of(ATTACKS.get(name).Params) if name else []


def defence_fields(name: str) -> list[FieldSpec]:
    """Form fields of a defence's settings."""
    return fields_of(DEFENCES.get(name).Params)


#: The client detail form's fields generated from :class:`~engine.config.ClientSpec` (architecture,
#: size, device, tier, preprocessing, attack and privacy take their choices from elsewhere).
CLIENT_FIELDS = (
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "epochs",
    "batch_size",
    "join_round",
    "data_share",
    "cold_start",
)


def client_fields() -> dict[str, FieldSpec]:
    """The fields of :data:`CLIENT_FIELDS` by name, with the kinds, defaults and bounds of
    :class:`~engine.config.ClientSpec`."""
    return {s.name: s for s in fields_of(ClientSpec, CLIENT_FIELDS)}


def augment_fields() -> dict[str, FieldSpec]:
    """A client's augmentation settings (:class:`~engine.data.augment.AugmentConfig`) by name."""
    return {s.name: s for s in fields_of(AugmentConfig)}


def privacy_fields() -> dict[str, FieldSpec]:
    """A client's DP-SGD settings (:class:`~engine.privacy.config.ClientPrivacy`) by name."""
    return {s.name: s for s in fields_of(ClientPrivacy)}


def privacy_column_fields() -> dict[str, FieldSpec]:
    """The roster table's privacy columns (``dp_epsilon``...) with the field each edits."""
    fields = privacy_fields()
    return {column: fields[name] for column, name in privacy_roster.FIELDS.items()}
