"""What a run's simulated hardware means for the user, outside the round loop: before launch,
:func:`clock_warnings` (a deadline nobody is timed against, clients without a tier or never online,
clients expected to miss the deadline every round); after it, :func:`time_to_target` (the
simulated time, bytes or round at which a metric first reaches a target). The clock itself is
:mod:`engine.hardware.clock`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from engine.hardware.clock import compute_seconds, transfer_seconds
from engine.hardware.tiers import client_tier, resolve_tiers


def time_to_target(
    rows: Iterable[Mapping[str, float]],
    metric: str,
    target: float,
    x: str = "sim_time_s",
    higher_is_better: bool = True,
) -> float | None:
    """The first value of ``x`` (simulated time, cumulative bytes, round) at which ``metric``
    reaches ``target`` ("time-to-accuracy"), or ``None`` if it never does.

    :param rows: per-round metric dicts in round order (``RoundRecord.metrics``).
    """
    for row in rows:
        value = row.get(metric)
        if value is None or x not in row or not np.isfinite(value):
            continue
        if (value >= target) if higher_is_better else (value <= target):
            return float(row[x])
    return None


def clock_warnings(
    config: Any, input_spec: Any = None, n_out: int = 0, samples_per_client: int = 0
) -> list[str]:
    """Advice on the simulated-hardware settings before launch: a deadline nobody is timed
    against, clients without a tier, tiers that are never online, and clients expected to miss the
    deadline in every round (estimated from their model's size and FLOPs when ``input_spec`` is
    given)."""
    roster = config.roster()
    tiered = [s for s in roster if s.tier is not None]
    out: list[str] = []
    if not tiered:
        if config.deadline is not None or config.selection == "deadline_aware":
            out.append(
                "hardware: a deadline or deadline-aware selection needs device tiers; no client has a "
                "tier, so no simulated time passes. Set clients[].tier (e.g. laptop-cpu)"
            )
        return out
    if len(tiered) < len(roster):
        out.append(
            f"hardware: {len(roster) - len(tiered)} client(s) have no tier: they are always online and "
            f"take no simulated time"
        )
    if config.selection == "deadline_aware" and config.deadline is None:
        out.append("hardware: deadline_aware selection without a deadline selects at random; set deadline")
    catalogue = resolve_tiers(config.tiers)
    never = [
        s.name
        for s in tiered
        if (t := client_tier(s.tier, s.tier_overrides, catalogue)) is not None and t.availability == 0
    ]
    if never:
        out.append(
            f"hardware: {len(never)} client(s) have availability 0 and are never selected: "
            f"{', '.join(never[:5])}"
        )
    if config.deadline is None or input_spec is None:
        return out
    import torch

    from engine.errors import ConfigError
    from engine.models import build_model, count_params, flops_per_sample

    cost: dict[str, tuple[int, int]] = {}
    late = []
    for s in tiered:
        tier = client_tier(s.tier, s.tier_overrides, catalogue)
        key = s.model_key
        if key not in cost:
            try:
                with torch.random.fork_rng(devices=[]):
                    model = build_model(s.model, input_spec, config.rep_dim, n_out)
            except ConfigError:  # reported by the input-kind check
                continue
            cost[key] = (count_params(model), flops_per_sample(model, input_spec))
        params, fps = cost[key]
        need = compute_seconds(samples_per_client * s.epochs, fps, tier.flops) + transfer_seconds(
            4 * params, 4 * params, tier
        )
        if need > config.deadline:
            late.append(f"{s.name} (~{need:.3g} s)")
    if late:
        what = (
            "their updates will be dropped"
            if config.deadline_policy == "drop"
            else "they will do partial work"
        )
        out.append(
            f"hardware: {len(late)} client(s) are expected to miss the {config.deadline:g} s deadline "
            f"with a full model exchange ({', '.join(late[:5])}{'...' if len(late) > 5 else ''}): "
            f"{what} (strategies that send less may fit)"
        )
    return out
