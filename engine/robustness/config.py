"""Config sections of robustness: a client's ``adversary`` and the run's ``defence``.

Both follow the strategy's pattern: a name from a registry plus that entry's own parameters,
checked by the entry's pydantic ``Params`` when the config is parsed (a typo is refused with the
valid names)::

    "clients": [{"name": "site-7", "adversary": {"attack": "label_flip"}}, ...],
    "defence": {"name": "trimmed_mean", "trim": 0.2}

This module stays light (pydantic only): the registries are imported when a spec is checked.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.errors import ConfigError, validation_problems


class AdversarySpec(BaseModel):
    """``{"attack": name, **params}``: this client is compromised and attacks the federation."""

    model_config = ConfigDict(extra="allow")

    attack: str = Field(..., description="what the compromised client does (see the catalog's attacks)")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"attack": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _valid_params(self) -> AdversarySpec:
        from engine.robustness.attacks import ATTACKS

        try:
            attack = ATTACKS.get(self.attack)
        except (
            ConfigError
        ) as exc:  # a ValueError keeps the field's place (clients.3.adversary) in the message
            raise ValueError(str(exc)) from None
        try:
            params = attack.Params(**(self.model_extra or {}))
        except ValidationError as exc:
            found = "; ".join(validation_problems(exc, empty="parameters", clean=True, model=attack.Params))
            raise ValueError(f"attack '{self.attack}': {found}") from None
        for key, value in params.model_dump().items():
            setattr(self, key, value)
        return self

    def params(self) -> dict[str, Any]:
        """The attack's parameters with defaults filled in."""
        return dict(self.model_extra or {})


class DefenceSpec(BaseModel):
    """``{"name": defence, **params}``: how the server combines the clients' contributions."""

    model_config = ConfigDict(extra="allow")

    name: str = Field("none", description="robust aggregation rule (none = the strategy's own average)")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _valid_params(self) -> DefenceSpec:
        from engine.robustness.defences import DEFENCES

        try:
            defence = DEFENCES.get(self.name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        try:
            params = defence.Params(**(self.model_extra or {}))
        except ValidationError as exc:
            found = "; ".join(validation_problems(exc, empty="parameters", clean=True, model=defence.Params))
            raise ValueError(f"defence '{self.name}': {found}") from None
        for key, value in params.model_dump().items():
            setattr(self, key, value)
        return self

    def params(self) -> dict[str, Any]:
        """The defence's parameters with defaults filled in."""
        return dict(self.model_extra or {})
