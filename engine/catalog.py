"""Everything the registries hold, as plain data: the CLI's ``catalog`` and the Catalog page both
read this, so adding a strategy or an architecture needs no change here."""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel


def _params(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Each field of a parameter model with type, default, bounds and description."""
    schema = model.model_json_schema()
    out = []
    for name, prop in schema.get("properties", {}).items():
        entry = {
            "name": name,
            "type": prop.get("type") or _any_of(prop),
            "default": prop.get("default"),
            "description": prop.get("description", ""),
        }
        for bound in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"):
            if bound in prop:
                entry[bound] = prop[bound]
        out.append(entry)
    return out


def _any_of(prop: dict[str, Any]) -> str:
    kinds = [p.get("type", "?") for p in prop.get("anyOf", [])]
    return " | ".join(kinds) if kinds else "object"


def _registries() -> tuple[Any, ...]:
    from engine.data import DATASETS, PARTITIONERS
    from engine.executors import EXECUTORS
    from engine.models import ARCHITECTURES
    from engine.robustness.attacks import ATTACKS
    from engine.robustness.defences import DEFENCES
    from engine.strategies import STRATEGIES

    return ARCHITECTURES, STRATEGIES, DATASETS, PARTITIONERS, EXECUTORS, ATTACKS, DEFENCES


def catalog() -> dict[str, list[dict[str, Any]]]:
    """Architectures, strategies, datasets, partitioners, executors, device tiers, attacks and
    defences (a copy: callers may change it)."""
    return copy.deepcopy(_built(tuple(tuple(r.names()) for r in _registries())))


@functools.lru_cache(maxsize=4)
def _built(names: tuple[tuple[str, ...], ...]) -> dict[str, list[dict[str, Any]]]:
    """The catalog for the registries holding ``names``, built once: registries only change when a
    module registers a new entry, and building it (every parameter model's JSON Schema) cost the
    Data and Launch pages 0.07-0.16 s on every rerun."""
    from engine.interop.flower import support as flower_support

    ARCHITECTURES, STRATEGIES, DATASETS, PARTITIONERS, EXECUTORS, ATTACKS, DEFENCES = _registries()
    out: dict[str, list[dict[str, Any]]] = {
        "architectures": [
            {
                "name": n,
                "description": a.description,
                "paper": a.paper,
                "reads": sorted(a.kinds),
                "how_it_reads": dict(a.how_it_reads),
                "params": _params(a.Params),
            }
            for n, a in ARCHITECTURES.items()
        ],
        "strategies": [
            {
                "name": n,
                "family": s.family,
                "description": s.description,
                "paper": s.paper,
                "url": s.url,
                "mixed_architectures": not s.same_architecture,
                "needs_public": s.needs_public,
                "tasks": sorted(s.tasks),
                "flower": flower_support(n),
                "deviations_from_the_paper": s.deviations,
                "when_it_fails": s.pitfalls,
                "params": _params(s.Params),
            }
            for n, s in STRATEGIES.items()
        ],
        "datasets": [
            {
                "name": n,
                "description": d.description,
                "kind": d.kind,
                "task": d.task,
                "source": d.source,
                "params": _params(d.Options) if d.Options else [],
            }
            for n, d in DATASETS.items()
        ],
        "partitioners": [
            {"name": n, "description": p.description, "params": _params(p.Params)}
            for n, p in PARTITIONERS.items()
        ],
        "executors": [
            {"name": n, "description": e.description, "params": _params(e.Params)}
            for n, e in EXECUTORS.items()
        ],
        "attacks": [
            {
                "name": n,
                "title": a.title,
                "description": a.description,
                "paper": a.paper,
                "url": a.url,
                "acts_on": a.acts_on,
                "tasks": sorted(a.tasks),
                "params": _params(a.Params),
            }
            for n, a in ATTACKS.items()
        ],
        "defences": [
            {
                "name": n,
                "title": d.title,
                "description": d.description,
                "paper": d.paper,
                "url": d.url,
                "needs_each_update": d.individual,
                "params": _params(d.Params),
            }
            for n, d in DEFENCES.items()
        ],
    }
    try:
        from engine.hardware.tiers import TIERS

        out["tiers"] = [t.as_dict() for _, t in TIERS.items()]
    except ImportError:
        out["tiers"] = []
    return out
