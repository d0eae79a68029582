"""How one experiment config becomes another: parsing what a caller hands the run manager, the
strategy labels of a sweep, and the changes of a fork (a deep merge, a dotted path)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError

if TYPE_CHECKING:  # engine.config loads torch: commands that only read the database never need it
    from engine.config import ExperimentConfig


def parse(data: dict[str, Any] | str) -> ExperimentConfig:
    from engine.config import parse_config

    return parse_config(data)


def as_config(config: ExperimentConfig | Mapping[str, Any]) -> ExperimentConfig:
    from engine.config import ExperimentConfig

    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, Mapping):
        return parse(dict(config))
    raise ConfigError(f"expected an experiment config, got {type(config).__name__}")


def strategy_dict(spec: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": spec}
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(
            f'a sweep strategy needs a "name", e.g. {{"name": "fedprox", "mu": 0.1}}; got {spec!r}'
        )
    return dict(spec)


def strategy_label(spec: Mapping[str, Any] | str) -> str:
    """``"fedprox (mu=0.1)"``: the strategy's name and the parameters that differ from its
    defaults."""
    from engine.strategies import STRATEGIES

    spec = strategy_dict(spec)
    name = spec["name"]
    try:
        defaults = STRATEGIES.get(name).Params().model_dump()
    except Exception:  # noqa: BLE001 - unknown names are reported by validation
        defaults = {}
    changed = [f"{k}={v}" for k, v in sorted(spec.items()) if k != "name" and defaults.get(k, object()) != v]
    return f"{name} ({', '.join(changed)})" if changed else name


_IDENTITY = ("name", "method", "arch")


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in: nested dicts merge key by key, anything else replaces;
    a dict whose ``name``/``method``/``arch`` changes replaces the old dict whole (another
    strategy's parameters do not carry over)."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        old = out.get(key)
        if (
            isinstance(old, dict)
            and isinstance(value, Mapping)
            and not any(k in value and k in old and value[k] != old[k] for k in _IDENTITY)
        ):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Changes for :func:`deep_merge` from a dotted path (``"strategy.mu"``, ``"clients.0.lr"``);
    list items are addressed by index and the list is copied with that item changed."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"'{dotted}' is not a config path; use dots between names, e.g. strategy.mu")

    def build(node: Any, rest: list[str]) -> Any:
        if not rest:
            return value
        head, tail = rest[0], rest[1:]
        if isinstance(node, list):
            if not head.isdigit() or int(head) >= len(node):
                raise ConfigError(f"'{dotted}': {head} is not an index of a list of {len(node)}")
            items = copy.deepcopy(node)
            item = items[int(head)]
            change = build(item, tail)
            items[int(head)] = (
                deep_merge(item, change) if isinstance(item, dict) and isinstance(change, dict) else change
            )
            return items
        child = node.get(head) if isinstance(node, dict) else None
        return {head: build(child, tail)}

    return build(tree, parts)
