"""Attacks and defences as the pages show them (:mod:`engine.robustness`): the roster's attack
choices and the one-client form, the compromised clients in words, and the defences a design can
compare at launch. A finished run's attack figures are :mod:`engine.reporting.results`'."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.config import parse_config
from engine.design.document import DEFAULT_STRATEGY
from engine.design.roster import expanded_rows
from engine.design.sizes import parse_knobs
from engine.errors import FedMosaicError
from engine.robustness import design as robust_design
from engine.robustness.attacks import ATTACKS
from engine.robustness.check import defence_reason, defence_refusals
from engine.robustness.defences import DEFENCES
from engine.strategies import STRATEGIES


def attack_options() -> list[str]:
    """The Clients page's attack choices (titles), ``honest`` first."""
    return robust_design.attack_options()


def attack_help() -> str:
    """What each attack does, one line each, for the attack column's help."""
    return "honest: not compromised. " + " ".join(f"{a.title}: {a.description}" for _, a in ATTACKS.items())


def adversary_form(title: str, settings_text: str) -> dict[str, Any] | None:
    """A client's ``adversary`` from the one-client form: the attack shown as ``title`` with its
    settings as ``name=value`` text (``None`` for honest).

    :raises ConfigError: settings that are not ``name=value`` pairs.
    """
    return robust_design.adversary_from_cells(
        title, parse_knobs(settings_text) if settings_text.strip() else {}
    )


def defences(design: dict[str, Any], strategies: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every defence with ``name, title, description, paper, url`` and ``reason``: why it cannot
    apply to this design with the chosen ``strategies`` (default: the design's), or ``None``."""
    names = list(strategies) or [str((design.get("strategy") or {}).get("name", DEFAULT_STRATEGY))]
    out = []
    for name, cls in DEFENCES.items():
        reason = next(
            (
                why
                for s in names
                if s in STRATEGIES
                for why in [defence_reason(STRATEGIES.get(s), name)]
                if why
            ),
            None,
        )
        if reason is None and name != "none":
            try:
                refusals = defence_refusals(parse_config({**design, "defence": {"name": name}}))
            except FedMosaicError:
                refusals = []
            reason = refusals[0] if refusals else None
        out.append(
            {
                "name": name,
                "title": cls.title,
                "description": cls.description,
                "paper": cls.paper,
                "url": cls.url,
                "reason": reason,
            }
        )
    return sorted(out, key=lambda d: (d["name"] != "none", d["reason"] is not None))


def compromised_summary(design: dict[str, Any]) -> str | None:
    """The roster's compromised clients in words (``Compromised: row 9 (site-7, Backdoor
    trigger).``), or ``None`` when every client is honest."""
    rows = [
        (i, r["name"], r["attack"]) for i, r in _attack_cells(design) if r["attack"] != robust_design.HONEST
    ]
    if not rows:
        return None
    shown = ", ".join(f"row {i} ({name}, {attack})" for i, name, attack in rows[:4])
    return f"Compromised: {shown}" + (f" and {len(rows) - 4} more." if len(rows) > 4 else ".")


def _attack_cells(design: dict[str, Any]) -> list[tuple[int, dict[str, str]]]:
    """``(row, {"name", "attack"})`` for every client row, without the table's costs and checks."""
    out = []
    for i, c in enumerate(expanded_rows(design)):
        attack, _ = robust_design.adversary_cells(c.get("adversary"))
        out.append((i, {"name": str(c.get("name", f"client {i}")), "attack": attack}))
    return out


def has_adversaries(design: dict[str, Any]) -> bool:
    """Whether the design's roster has a compromised client."""
    return any(c.get("adversary") for c in design.get("clients") or [] if isinstance(c, dict))
