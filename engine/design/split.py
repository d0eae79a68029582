"""The partition preview: how the design's data would be split across its roster (client sizes,
clients x classes, heterogeneity), and the primary metric a launch would choose on that split."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from engine.core.primary import choose_primary
from engine.data import partition_preview
from engine.design.document import DEFAULT_SEED
from engine.design.roster import expanded_rows
from engine.design.schema import data_config
from engine.errors import FedMosaicError
from engine.tracking.storage import default_data_dir


def preview(design: dict[str, Any]) -> dict[str, Any]:
    """The partition preview for the design's data section and roster (client sizes, clients x
    classes counts, heterogeneity); see :func:`engine.data.partition_preview`. A ``natural`` split
    previews one client per value whatever the roster size.

    :raises FedMosaicError: the split is impossible as configured (names the fix).
    """
    cfg = data_config(design.get("data") or {})
    clients = expanded_rows(design)
    n = len(clients)
    shares: list[float | None] | None = [c.get("data_share") for c in clients]
    if cfg.partition.method == "natural":
        n, shares = None, None
    seed = int(design.get("seed") or DEFAULT_SEED)
    out = partition_preview(cfg, n, shares, seed, default_data_dir(), profile_sites=True)
    natural = cfg.partition.method == "natural"
    if not natural or len(out["clients"]) == len(clients):
        for row, c in zip(out["clients"], clients, strict=False):
            name = str(c.get("name", row["name"]))
            row["group"] = row["name"] if natural else None
            row["name"] = name if not natural or name == row["name"] else f"{name} ({row['name']})"
    return out


def primary_preview(design: dict[str, Any]) -> tuple[str, str] | None:
    """The primary metric a launch of this design would use and why (``auto`` resolved on the
    previewed split, as the run will), or ``None`` when the design cannot be split yet."""
    key = {
        "data": design.get("data"),
        "seed": design.get("seed", DEFAULT_SEED),
        "primary_metric": design.get("primary_metric"),
        "clients": [(c.get("name"), c.get("data_share")) for c in expanded_rows(design)],
    }
    return _primary_preview(json.dumps(key, sort_keys=True, default=str))


@lru_cache(maxsize=64)
def _primary_preview(key: str) -> tuple[str, str] | None:
    spec = json.loads(key)
    design = {
        "data": spec["data"],
        "seed": spec["seed"],
        "clients": [{"name": n, "data_share": share} for n, share in spec["clients"]],
    }
    try:
        split = preview(design)
        counts = split["histogram"] if split["task"] == "classification" else None
        chosen = choose_primary(
            str(spec.get("primary_metric") or "auto"),
            split["task"],
            counts,
            [c["name"] for c in split["clients"]],
        )
    except (FedMosaicError, ValueError, KeyError, TypeError):
        return None
    return chosen.metric.label, chosen.reason
