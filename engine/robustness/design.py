"""What the pages edit about robustness, as plain values: a roster row's attack (a name shown by
its title, plus its non-default settings as ``name=value`` text, like a model's knobs) and the
defences a design can compare. The pages call these through :mod:`engine.design.adversaries`.
"""

from __future__ import annotations

from typing import Any

from engine.robustness.attacks import ATTACKS
from engine.robustness.defences import DEFENCES

HONEST = "honest"
"""The roster's attack cell of a client that does not attack."""


def attack_titles() -> dict[str, str]:
    """Attack name -> title shown in the roster, ``honest`` first."""
    return {HONEST: HONEST, **{name: cls.title for name, cls in ATTACKS.items()}}


def attack_options() -> list[str]:
    """The roster's attack column choices (titles), ``honest`` first."""
    return list(attack_titles().values())


def attack_name(title: str | None) -> str | None:
    """The attack a roster cell names (by title or by name), ``None`` for honest or empty."""
    if title is None or str(title).strip() in ("", HONEST):
        return None
    for name, shown in attack_titles().items():
        if title in (name, shown):
            return name
    return str(title)  # unknown: kept, so validation names the valid ones


def defaults(name: str) -> dict[str, Any]:
    """An attack's default settings (``{}`` for an unknown name)."""
    try:
        return ATTACKS.get(name).Params().model_dump()
    except Exception:  # noqa: BLE001 - unknown name or required settings: nothing to compare with
        return {}


def adversary_cells(adversary: Any) -> tuple[str, str]:
    """``(attack title, settings text)`` for a client's ``adversary`` (a dict, a name or ``None``);
    the text lists only the settings that differ from the attack's defaults."""
    if not adversary:
        return HONEST, ""
    if isinstance(adversary, str):
        adversary = {"attack": adversary}
    name = str(adversary.get("attack", ""))
    if "_settings" in adversary:
        return attack_titles().get(name, name), str(adversary["_settings"])
    base = defaults(name)
    parts = [f"{k}={_text(v)}" for k, v in adversary.items() if k != "attack" and base.get(k, object()) != v]
    return attack_titles().get(name, name), ", ".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return str(value)


def adversary_from_cells(
    title: Any, settings: dict[str, Any] | None, raw_text: str = ""
) -> dict[str, Any] | None:
    """A client's ``adversary`` from its roster cells: ``None`` for honest, else
    ``{"attack": name, **settings}``; ``settings=None`` (text that is not ``name=value`` pairs)
    keeps the text under ``_settings`` so the row's issues can say what is wrong."""
    name = attack_name(None if title is None else str(title))
    if name is None:
        return None
    if settings is None:
        return {"attack": name, "_settings": raw_text}
    return {"attack": name, **settings}


def defence_titles() -> dict[str, str]:
    """Defence name -> title, ``none`` first."""
    return {
        "none": DEFENCES.get("none").title,
        **{name: cls.title for name, cls in DEFENCES.items() if name != "none"},
    }


def defence_label(spec: Any) -> str:
    """A short label of a ``defence`` (a spec, dict, name or ``None``) for sweeps and charts:
    its title with its settings, e.g. ``Trimmed mean (trim=0.3)``."""
    if spec is None:
        spec = {"name": "none"}
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict):
        spec = spec.model_dump()
    name = str(spec.get("name", "none"))
    try:
        cls = DEFENCES.get(name)
    except Exception:  # noqa: BLE001
        return name
    base = cls.Params().model_dump()
    extra = {k: v for k, v in spec.items() if k != "name" and base.get(k, object()) != v}
    return cls.title + (f" ({', '.join(f'{k}={_text(v)}' for k, v in extra.items())})" if extra else "")
