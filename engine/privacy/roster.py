"""The privacy columns of the Clients page's roster table (``engine.design.roster_table.roster_frame``): a
client's DP-SGD settings as three cells and back.

- ``dp_epsilon`` ("ε budget"): the client's privacy budget; empty: none.
- ``dp_noise`` ("DP noise"): the noise multiplier; empty: calibrated from the budget.
- ``dp_clip`` ("DP clip"): the clipping norm of one record's gradient.

A row trains with DP-SGD when it has a budget or a noise multiplier; clearing both turns it off.
Settings the table does not show (delta, accountant) are kept from the client's spec.
"""

from __future__ import annotations

import math
from typing import Any

from engine.privacy.config import ClientPrivacy

FIELDS = {"dp_epsilon": "target_epsilon", "dp_noise": "noise_multiplier", "dp_clip": "clip_norm"}
"""Roster columns, in order, and the :class:`~engine.privacy.config.ClientPrivacy` field each edits."""
COLUMNS = list(FIELDS)
"""Roster columns, in order."""
DTYPES = dict.fromkeys(COLUMNS, "Float64")
DEFAULT_CLIP = ClientPrivacy.model_fields["clip_norm"].default


def _number(value: Any) -> float | None:
    if _blank(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _blank(value: Any) -> bool:
    """Empty cell: ``None``, NaN, pandas' NA or blank text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def cells(client: dict[str, Any]) -> dict[str, float | None]:
    """The privacy cells of one client dict (all empty without DP-SGD)."""
    p = client.get("privacy") or {}
    if not isinstance(p, dict) or not p:
        return dict.fromkeys(COLUMNS)
    return {
        "dp_epsilon": _number(p.get("target_epsilon")),
        "dp_noise": _number(p.get("noise_multiplier")),
        "dp_clip": _number(p.get("clip_norm", DEFAULT_CLIP)),
    }


def from_cells(row: Any, previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """A client's ``privacy`` from its edited row (``None``: no DP-SGD). A value that is not a
    positive number is kept as typed so that validation names it."""
    get = row.get if hasattr(row, "get") else (lambda k, d=None: row[k] if k in row else d)
    raw = {k: get(k, None) for k in COLUMNS}
    blank = {k: _blank(v) for k, v in raw.items()}
    if blank["dp_epsilon"] and blank["dp_noise"]:
        return None
    out = dict(previous or {})
    for key, field in FIELDS.items():
        if blank[key]:
            out.pop(field, None)
        else:
            value = raw[key]
            out[field] = float(value) if _number(value) is not None else value
    out.setdefault("clip_norm", DEFAULT_CLIP)
    return out


def bulk_value(field: str, value: Any, client: dict[str, Any]) -> dict[str, Any] | None:
    """A client's ``privacy`` after setting one privacy column to ``value`` for it (the
    *Apply a value to selected rows* tool); 0 or empty clears that setting."""
    row = cells(client)
    row[field] = value if _number(value) is not None else None
    return from_cells(row, client.get("privacy"))
