"""The roster as a list of clients: a design's client specs expanded one row per client (``count``
groups unrolled, names suffixed ``-1``, ``-2``... as the engine does), edited row by row, and
compacted back into ``count`` groups so exported configs stay short."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from typing import Any

from engine.config import ClientSpec
from engine.design.document import normalize
from engine.design.sizes import SIZES, full_model, knobs_text, parse_knobs
from engine.errors import ConfigError

#: A client's defaults as :class:`~engine.config.ClientSpec` declares them (the roster, its table and
#: the client form fill gaps from here and never spell a default of their own).
DEFAULTS: dict[str, Any] = {
    name: info.get_default(call_default_factory=True) for name, info in ClientSpec.model_fields.items()
}


MAX_ADD = 1000
"""Most clients :func:`add_like` adds at once."""
MAX_CLIENTS: int = next(m.le for m in ClientSpec.model_fields["count"].metadata if getattr(m, "le", None))
"""Most clients :func:`resize_roster` makes (as many as one spec's ``count`` may repeat)."""


def default_client() -> dict[str, Any]:
    """A fresh client with :data:`DEFAULTS`' name and model (what an empty roster starts from)."""
    return {"name": DEFAULTS["name"], "model": copy.deepcopy(DEFAULTS["model"])}


def expanded_rows(design: dict[str, Any]) -> list[dict[str, Any]]:
    """Client dicts with ``count`` expanded (names suffixed ``-1``, ``-2``... as the engine does)."""
    out = []
    for spec in design.get("clients") or []:
        count = int(spec.get("count", 1) or 1)
        base = {k: v for k, v in spec.items() if k != "count"}
        if count == 1:
            out.append(copy.deepcopy(base))
            continue
        for i in range(count):
            out.append({**copy.deepcopy(base), "name": f"{base.get('name', 'client')}-{i + 1}"})
    return out


def compact(clients: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge runs of identical clients named ``base-1 .. base-n`` into one spec with ``count: n``
    (the inverse of the engine's expansion), so exported configs stay short."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(clients):
        c = clients[i]
        m = re.fullmatch(r"(.+)-1", str(c.get("name", "")))
        j = i + 1
        if m:
            base_name = m.group(1)
            body = {k: v for k, v in c.items() if k not in ("name", "count")}
            while j < len(clients):
                other = clients[j]
                if (
                    other.get("name") != f"{base_name}-{j - i + 1}"
                    or {k: v for k, v in other.items() if k not in ("name", "count")} != body
                    or int(other.get("count", 1)) != 1
                ):
                    break
                j += 1
        if m and j - i >= 2:
            out.append({**{k: v for k, v in c.items() if k != "count"}, "name": m.group(1), "count": j - i})
        else:
            j = i + 1
            out.append(dict(c))
        i = j
    return out


def set_clients(design: dict[str, Any], clients: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of the design with a new roster (normalised when valid)."""
    design = copy.deepcopy(design)
    design["clients"] = compact(clients)
    return normalize(design)


def standardize_for_tables(design: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A design whose clients all use no preprocessing, with ``standardize`` instead (the sound
    default for a table, whose columns come in very different units); returns it and whether it
    changed. A roster where someone chose a method is left alone."""
    clients = design.get("clients") or []
    if not clients or any((c.get("preprocessing") or "none") != "none" for c in clients):
        return design, False
    design = copy.deepcopy(design)
    for c in design["clients"]:
        c["preprocessing"] = "standardize"
    return design, True


def add_like(design: dict[str, Any], index: int, n: int) -> dict[str, Any]:
    """Append ``n`` copies of client ``index`` (named ``<name> (2)``, ``(3)``...)."""
    rows = expanded_rows(design)
    if not rows:
        rows = [default_client()]
        index = 0
    if not 0 <= index < len(rows):
        raise ConfigError(f"no client number {index + 1}; pick one of 1..{len(rows)}")
    if not 1 <= n <= MAX_ADD:
        raise ConfigError(f"add between 1 and {MAX_ADD} clients at a time")
    source = rows[index]
    names = {str(r.get("name")) for r in rows}
    stem = re.sub(r"\s*\(\d+\)$", "", str(source.get("name", "client")))
    k = 2
    for _ in range(n):
        while f"{stem} ({k})" in names:
            k += 1
        names.add(f"{stem} ({k})")
        rows.append({**copy.deepcopy(source), "name": f"{stem} ({k})"})
    return set_clients(design, rows)


def client_row(design: dict[str, Any], index: int) -> dict[str, Any]:
    """Client ``index`` of the expanded roster (a copy), with its model as a dict.

    :raises ConfigError: no such client.
    """
    rows = expanded_rows(design)
    if not 0 <= index < len(rows):
        raise ConfigError(f"no client number {index}; the roster has {len(rows)} clients")
    row = copy.deepcopy(rows[index])
    model = row.get("model") or copy.deepcopy(DEFAULTS["model"])
    row["model"] = {"arch": model} if isinstance(model, str) else model
    return row


def update_client(design: dict[str, Any], index: int, changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of the design with client ``index`` changed. ``changes`` holds ClientSpec fields;
    ``arch``, ``size`` and ``knobs`` (text) rebuild the model spec (a new architecture starts from
    its default knobs).

    :raises ConfigError: no such client, or knobs that are not ``name=value`` pairs.
    """
    rows = expanded_rows(design)
    row = client_row(design, index)
    changes = dict(changes)
    arch = changes.pop("arch", None)
    size = changes.pop("size", None)
    knobs = changes.pop("knobs", None)
    if arch is not None or size is not None or knobs is not None:
        old = row["model"]
        arch = arch or old.get("arch", DEFAULTS["model"]["arch"])
        if arch != old.get("arch") and knobs is not None and knobs.strip() == knobs_text(old).strip():
            knobs = None  # the old architecture's knobs do not apply to the new one
        model = (
            dict(parse_knobs(knobs))
            if knobs is not None
            else (
                {k: v for k, v in old.items() if k not in ("arch", "width")}
                if arch == old.get("arch")
                else {}
            )
        )
        width = model.pop(
            "width", SIZES.get(size, old.get("width", 1.0)) if size != "custom" else old.get("width", 1.0)
        )
        row["model"] = full_model({"arch": arch, "width": width, **model})
    row.update(changes)
    rows[index] = row
    return set_clients(design, rows)


def remove_clients(design: dict[str, Any], indices: Iterable[int]) -> dict[str, Any]:
    """Drop the clients at ``indices``."""
    drop = set(indices)
    return set_clients(design, [c for i, c in enumerate(expanded_rows(design)) if i not in drop])


def resize_roster(design: dict[str, Any], n: int, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Make the roster ``n`` clients long: extra clients copy the last one, surplus ones are
    dropped; ``names`` (e.g. the sites of a natural split) rename them in order."""
    if n < 1:
        raise ConfigError("the roster needs at least one client")
    if n > MAX_CLIENTS:
        raise ConfigError(f"a roster of {n:,} clients is too long; use at most {MAX_CLIENTS:,}")
    rows = expanded_rows(design) or [default_client()]
    rows = rows[:n] + [copy.deepcopy(rows[-1]) for _ in range(n - len(rows))]
    if names is not None:
        for row, name in zip(rows, names, strict=False):
            row["name"] = str(name)
    else:
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            name = str(row.get("name", "client"))
            if name in seen:
                stem = re.sub(r"[-# ]?\(?\d+\)?$", "", name) or "client"
                row["name"] = f"{stem}-{i + 1}"
            seen[str(row["name"])] = i
    return set_clients(design, rows)
