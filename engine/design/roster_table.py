"""The Clients page's editable roster table: one row per client with its model size, training
settings, device, tier, attack, privacy cells, cost and problems; the edited table back to client
specs; one value applied to selected rows. Defaults come from :class:`~engine.config.ClientSpec`."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import pandas as pd

from engine.design.checks import client_costs, client_issues
from engine.design.roster import DEFAULTS, compact, expanded_rows, set_clients
from engine.design.sizes import SIZES, full_model, knobs_text, parse_knobs, size_label
from engine.errors import ConfigError
from engine.privacy import roster as privacy_cells  # the roster's privacy columns
from engine.robustness.design import adversary_cells, adversary_from_cells

ROSTER_COLUMNS = [
    "select",
    "name",
    "arch",
    "size",
    "knobs",
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
    "preprocessing",
    "device",
    "tier",
    "join_round",
    "data_share",
    "attack",
    "attack_settings",
    *privacy_cells.COLUMNS,
    "params",
    "memory_mb",
    "issues",
]
_FIRST = ["select", "name", "arch", "size", "knobs", "params", "memory_mb", "issues"]
#: The roster editor's column order: what a client is and what it costs, then how it trains.
EDITOR_ORDER = _FIRST + [c for c in ROSTER_COLUMNS if c not in _FIRST]
#: Roster fields a value can be applied to for the selected rows at once.
BULK_FIELDS = [
    "arch",
    "size",
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
    "preprocessing",
    "device",
    "tier",
    "join_round",
    "data_share",
    "attack",
    *privacy_cells.COLUMNS,
]


def roster_frame(design: dict[str, Any]) -> pd.DataFrame:
    """The roster as the Clients page's editable table: one row per client, with parameter
    count, estimated memory and the row's problems (empty when fine)."""
    rows = expanded_rows(design)
    issues = client_issues(design)
    costs = client_costs(design)
    out = []
    for i, c in enumerate(rows):
        model = c.get("model") or dict(DEFAULTS["model"])
        model = {"arch": model} if isinstance(model, str) else model
        cost = costs.get(i, {})
        share = c.get("data_share")
        attack, attack_settings = adversary_cells(c.get("adversary"))
        out.append(
            {
                "select": False,
                "name": str(c.get("name", f"client {i + 1}")),
                "arch": str(model.get("arch", "")),
                "size": size_label(model.get("width", 1.0)),
                "knobs": knobs_text(model),
                "optimizer": c.get("optimizer", DEFAULTS["optimizer"]),
                "lr": float(c.get("lr", DEFAULTS["lr"])),
                "epochs": int(c.get("epochs", DEFAULTS["epochs"])),
                "batch_size": int(c.get("batch_size", DEFAULTS["batch_size"])),
                "preprocessing": c.get("preprocessing", DEFAULTS["preprocessing"]),
                "device": c.get("device", DEFAULTS["device"]),
                "tier": c.get("tier") or "",
                "join_round": int(c.get("join_round", DEFAULTS["join_round"])),
                "data_share": float(share) if share is not None else None,
                "attack": attack,
                "attack_settings": attack_settings,
                **privacy_cells.cells(c),
                "params": cost.get("params"),
                "memory_mb": cost.get("memory_mb"),
                "issues": "; ".join(issues.get(i, [])),
            }
        )
    frame = pd.DataFrame(out, columns=ROSTER_COLUMNS)
    return frame.astype(
        {"params": "Int64", "memory_mb": "Float64", "data_share": "Float64", **privacy_cells.DTYPES}
    )


def frame_to_clients(frame: pd.DataFrame, design: dict[str, Any]) -> list[dict[str, Any]]:
    """Client specs from the edited roster table (unchanged fields such as momentum, weight decay,
    augmentation and cold start are kept from the design's rows), compacted into ``count`` groups."""
    previous = expanded_rows(design)
    clients = []
    for i, (_, row) in enumerate(frame.iterrows()):
        base = (
            copy.deepcopy(previous[i])
            if i < len(previous)
            else (copy.deepcopy(previous[-1]) if previous else {})
        )
        base.pop("count", None)
        arch = str(row.get("arch") or DEFAULTS["model"]["arch"])
        old_model = base.get("model") if isinstance(base.get("model"), dict) else {}
        knobs_given = str(row.get("knobs") or "")
        if (
            old_model.get("arch")
            and arch != old_model.get("arch")
            and knobs_given.strip() == knobs_text(old_model)
        ):
            knobs_given = ""  # a new architecture starts from its own default knobs
        try:
            knobs = parse_knobs(knobs_given)
        except ConfigError:
            knobs = {"_knobs": knobs_given}
        size = str(row.get("size") or "medium")
        if old_model.get("arch") == arch and "width" not in knobs and size == "custom":
            knobs["width"] = old_model.get("width", 1.0)
        width = knobs.pop("width", SIZES.get(size, 1.0))
        model = full_model({"arch": arch, **({"width": width} if width != 1.0 else {}), **knobs})
        share = row.get("data_share")
        base.update(
            {
                "name": str(row.get("name") or f"client {i + 1}").strip() or f"client {i + 1}",
                "model": model,
                "optimizer": row.get("optimizer") or DEFAULTS["optimizer"],
                "lr": _num(row.get("lr"), DEFAULTS["lr"], float),
                "epochs": _num(row.get("epochs"), DEFAULTS["epochs"], int),
                "batch_size": _num(row.get("batch_size"), DEFAULTS["batch_size"], int),
                "preprocessing": row.get("preprocessing") or DEFAULTS["preprocessing"],
                "device": row.get("device") or DEFAULTS["device"],
                "tier": str(row.get("tier"))
                if row.get("tier") not in (None, "") and not _isna(row.get("tier"))
                else None,
                "join_round": _num(row.get("join_round"), DEFAULTS["join_round"], int),
                "data_share": None if _isna(share) else float(share),
                "privacy": privacy_cells.from_cells(row, base.get("privacy")),
            }
        )
        settings_text = "" if _isna(row.get("attack_settings")) else str(row.get("attack_settings") or "")
        try:
            settings: dict[str, Any] | None = parse_knobs(settings_text)
        except ConfigError:
            settings = None
        adversary = adversary_from_cells(
            None if _isna(row.get("attack")) else row.get("attack"), settings, settings_text
        )
        base.pop("adversary", None)
        if adversary is not None:
            base["adversary"] = adversary
        clients.append(base)
    return compact(clients)


def _isna(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any, default: Any, cast: type) -> Any:
    if _isna(value):
        return default
    try:
        return cast(value)
    except (TypeError, ValueError):
        return default


def apply_to(design: dict[str, Any], indices: Iterable[int], field_name: str, value: Any) -> dict[str, Any]:
    """Set one roster field to ``value`` for the clients at ``indices`` (table row numbers)."""
    if field_name not in BULK_FIELDS:
        raise ConfigError(f"cannot bulk-edit '{field_name}'; editable: {', '.join(BULK_FIELDS)}")
    frame = roster_frame(design)
    for i in indices:
        if 0 <= i < len(frame):
            if field_name == "arch":
                frame.at[i, "knobs"] = ""
            if field_name == "attack" and frame.at[i, "attack"] != value:
                frame.at[i, "attack_settings"] = ""  # another attack's settings do not apply
            if field_name in privacy_cells.COLUMNS and not value:
                value = None  # 0 or empty: clears that privacy setting
            frame.at[i, field_name] = value
    return set_clients(design, frame_to_clients(frame, design))
