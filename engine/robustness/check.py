"""What cannot apply, and why, before a run starts: attacks against what a strategy sends, a
defence against how a strategy combines, and both against the data.

- :func:`strategy_reason` — why a strategy cannot run this config's attacks or defence (joins the
  compatibility matrix, so the Launch page greys the strategy out with the reason);
- :func:`problems` — errors and warnings that need the data (a backdoor's target class that does
  not exist, a Krum that sees too few clients per round to keep its promise).
"""

from __future__ import annotations

import math
from typing import Any

from engine.robustness.attacks import ATTACKS
from engine.robustness.defences import DEFENCES

SENDS = {
    "weights": "model weights",
    "logits": "logits (what its models predict)",
    "prototypes": "class prototypes",
    "nothing": "nothing",
}
"""What a strategy's payload carries, in words."""

ACTS = {
    "data": "its training data",
    "weights": "its model update",
    "logits": "the logits it shares",
    "prototypes": "the prototypes it shares",
}
"""Where an attack acts, in words."""


def _rows(config: Any) -> list[tuple[str, Any]]:
    """``(who, spec)`` for every client spec of the config, ``who`` naming its rows as the roster
    table numbers them (from 0, a spec with ``count`` n taking n rows)."""
    out, row = [], 0
    for spec in config.clients:
        n = spec.count
        rows = f"client row {row}" if n == 1 else f"client rows {row}-{row + n - 1}"
        out.append((f"{rows} ({spec.name})", spec))
        row += n
    return out


def secure_aggregation(config: Any) -> bool:
    """Whether the config asks for secure aggregation (the server then sees only the sum of the
    clients' contributions: ``secure_aggregation``, :mod:`engine.privacy`)."""
    return getattr(config, "secure_aggregation", None) is not None


def server_dp(config: Any) -> bool:
    """Whether the config asks for user-level DP at the server (``server_dp``, :mod:`engine.privacy`)."""
    return getattr(config, "server_dp", None) is not None


def fitting_attacks(sends: str) -> list[str]:
    """The attacks that can act on a strategy sending ``sends`` (data attacks always can)."""
    return [n for n, a in ATTACKS.items() if a.acts_on in ("data", sends)]


def strategy_reason(cls: Any, config: Any) -> str | None:
    """Why strategy class ``cls`` cannot run this config's adversaries or defence, or ``None``."""
    if cls.sends == "nothing":  # a reference that exchanges nothing: a payload attack changes nothing
        return defence_reason(cls, config.defence.name)
    for who, spec in _rows(config):
        if spec.adversary is None:
            continue
        attack = ATTACKS.get(spec.adversary.attack)
        params = attack.Params(**spec.adversary.params())
        acts = [attack.acts_on]
        extra = attack.also_sends(params)
        if extra:
            acts.append(extra)
        for act in acts:
            if act == "data" or act == cls.sends:
                continue
            what = attack.title.lower() if act == attack.acts_on else f"{attack.title.lower()} with a boost"
            fix = (
                "set its boost to 1"
                if act != attack.acts_on
                else f"give it an attack that fits: {', '.join(fitting_attacks(cls.sends))}"
            )
            return (
                f"{who}: {what} changes {ACTS[act]}, but {cls.name} sends {SENDS.get(cls.sends, cls.sends)}; "
                f"{fix}"
            )
    return defence_reason(cls, config.defence.name)


def defence_reason(cls: Any, defence: str) -> str | None:
    """Why strategy class ``cls`` cannot use the defence called ``defence``, or ``None``."""
    if defence == "none":
        return None
    title = DEFENCES.get(defence).title
    if not cls.collaborates:
        return f"{cls.name}: clients share nothing, so there is nothing for the defence {title} to combine"
    if cls.no_defence:
        return f"defence {title}: {cls.no_defence}"
    return None


def defence_refusals(config: Any) -> list[str]:
    """Why the config's defence cannot run with its other settings (secure aggregation, server-side
    differential privacy), one message each."""
    if config.defence.name == "none":
        return []
    cls = DEFENCES.get(config.defence.name)
    out = []
    if secure_aggregation(config) and cls.individual:
        out.append(
            f"defence {cls.title} must see each client's contribution, but secure aggregation shows the "
            f"server only their sum; turn one of them off"
        )
    if server_dp(config):
        out.append(
            f"defence {cls.title} replaces the average that server-side differential privacy clips and "
            f"noises (its privacy accounting assumes that average); use one of them"
        )
    return out


def problems(config: Any, task: str, n_classes: int, input_spec: Any) -> tuple[list[str], list[str]]:
    """Errors and warnings about the config's attacks and defence that need the data.

    :returns: ``(errors, warnings)``, each a list of one-line messages naming the client row or
        the defence and the fix.
    """
    from engine.strategies import STRATEGIES
    from engine.strategies.base import Strategy

    errors: list[str] = []
    warnings: list[str] = []
    strategy = STRATEGIES.get(config.strategy.name)
    roster = config.roster()
    attackers = 0
    for who, spec in _rows(config):
        if spec.adversary is None:
            continue
        attackers += spec.count
        attack = ATTACKS.get(spec.adversary.attack)
        params = attack.Params(**spec.adversary.params())
        why = attack.incompatibility(params, task, n_classes, input_spec)
        if why:
            errors.append(f"{who}: {why}")
        elif not strategy.collaborates:
            warnings.append(
                f"{who}: {strategy.name} shares nothing, so its {attack.title.lower()} harms only its "
                f"own model"
            )
        elif strategy.sends == "nothing" and attack.acts_on != "data":
            warnings.append(
                f"{who}: {strategy.name} exchanges no messages, so its {attack.title.lower()} changes nothing"
            )
        start = getattr(params, "start_round", 1)
        if start > config.rounds:
            warnings.append(
                f"{who}: its attack starts at round {start}, after the last round "
                f"({config.rounds}); it never attacks"
            )
    if attackers and attackers * 2 >= len(roster):
        warnings.append(
            f"{attackers} of {len(roster)} clients are compromised: no robust average holds once half "
            f"the clients are hostile"
        )
    defence = config.defence
    if defence.name == "none":
        return errors, warnings
    cls = DEFENCES.get(defence.name)
    params = cls.Params(**defence.params())
    errors.extend(defence_refusals(config))
    if strategy.collaborates and not strategy.no_defence:
        grouped = strategy.group is not Strategy.group  # fedavg_by_arch, feddf: per architecture
        groups: dict[str, int] = {}
        for spec in roster:
            key = spec.model_key if grouped else "all"
            groups[key] = groups.get(key, 0) + 1
        need = cls.min_contributions(params)
        fewest = min(
            max(1, round(config.fraction * n)) if config.fraction < 1 else n for n in groups.values()
        )
        if fewest < need:
            where = " in its smallest architecture group" if len(groups) > 1 else ""
            warnings.append(
                f"defence {cls.title} needs at least {need} contributions per round to keep its guarantee; "
                f"about {fewest} clients take part per round{where}: add clients, raise the share of "
                f"clients per round{', or tolerate fewer attackers' if hasattr(params, 'attackers') else ''}"
            )
    tolerated = getattr(params, "attackers", None)
    if tolerated is not None and attackers > tolerated:
        warnings.append(
            f"defence {cls.title} tolerates {tolerated} attacker(s) but {attackers} clients are "
            f"compromised; set its attackers to {attackers}"
        )
    trim = getattr(params, "trim", None)
    if trim is not None and attackers and math.floor(trim * len(roster) + 1e-9) < attackers:
        warnings.append(
            f"defence {cls.title} drops {math.floor(trim * len(roster) + 1e-9)} value(s) at each end but "
            f"{attackers} clients are compromised; raise its trim to at least "
            f"{math.ceil(100 * attackers / len(roster)) / 100:g}"
        )
    return errors, warnings
