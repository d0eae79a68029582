"""Model sizes and knobs as the roster shows them: a named width (``small``, ``large``...) plus the
architecture's other non-default knobs as ``name=value`` text, and back."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from engine.errors import ConfigError, FedMosaicError
from engine.models import ARCHITECTURES, arch_params

#: Width multipliers offered as sizes in the roster table (``width`` knob of every architecture).
SIZES: dict[str, float] = {"tiny": 0.25, "small": 0.5, "medium": 1.0, "large": 2.0, "x-large": 4.0}


def _arch_defaults(arch: str) -> dict[str, Any]:
    try:
        return ARCHITECTURES.get(arch).Params().model_dump()
    except FedMosaicError:
        return {}


def size_label(width: Any) -> str:
    """The roster's size name of a width multiplier (``medium`` for 1.0), ``custom`` for any other."""
    for label, w in SIZES.items():
        if isinstance(width, (int, float)) and math.isclose(float(width), w):
            return label
    return "custom"


def knobs_text(model: dict[str, Any]) -> str:
    """Non-default architecture knobs (other than ``width``) as ``key=value, ...``."""
    model = model if isinstance(model, dict) else {"arch": str(model)}
    defaults = _arch_defaults(str(model.get("arch", "")))
    parts = [
        f"{k}={_fmt(v)}"
        for k, v in model.items()
        if k not in ("arch", "width") and (k not in defaults or defaults[k] != v)
    ]
    width = model.get("width", 1.0)
    if size_label(width) == "custom":
        parts.insert(0, f"width={_fmt(width)}")
    return ", ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) < 1e15 else str(v)
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def parse_knobs(text: str) -> dict[str, Any]:
    """``"hidden=64, depth=3"`` -> ``{"hidden": 64, "depth": 3}`` (numbers, true/false, else text).

    :raises ConfigError: a part without ``=``.
    """
    out: dict[str, Any] = {}
    for part in re.split(r"[,;]\s*(?![^\[]*\])", text or ""):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ConfigError(f"size knobs: '{part}' needs the form name=value, e.g. hidden=64")
        key, value = (s.strip() for s in part.split("=", 1))
        out[key] = _literal(value)
    return out


def _literal(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null", ""):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text.strip("'\"")


def full_model(model: dict[str, Any]) -> dict[str, Any]:
    """The model spec with every knob filled in (as the config normalises it), or as given if invalid."""
    if "_knobs" in model:
        return model
    try:
        arch, params = arch_params(model)
    except FedMosaicError:
        return model
    return {"arch": arch.name, **params.model_dump()}
