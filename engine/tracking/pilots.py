"""The strategy advisor's pilots through the run manager (:mod:`engine.advisor` plans and scores
them): :func:`launch_pilots` queues them as one sweep, :func:`pilot_status` counts them,
:func:`advice_for` reads the advice back from the stored runs, and :func:`launch_recommended`
starts the winner with its paired ``local`` runs on the designed rounds and seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from engine.advisor import (
    PILOT_ROUNDS,
    PILOT_TAG,
    Advice,
    PilotRun,
    build_advice,
    candidates,
    pilot_base,
    pilot_seeds,
)
from engine.config import ExperimentConfig, parse_config
from engine.errors import ConfigError


def launch_pilots(
    mgr: Any,
    config: ExperimentConfig | Mapping[str, Any],
    *,
    rounds: int = PILOT_ROUNDS,
    seeds: Sequence[int] | None = None,
    strategies: Sequence[str] | None = None,
) -> str:
    """Queue the pilots as one sweep (``local`` and every candidate, on each seed) and return its
    group id; :func:`advice_for` reads the advice once they have finished.

    :raises ConfigError: no strategy can run the roster, or a pilot config is invalid.
    """
    from engine.design.schema import dataset_summary

    config = config if isinstance(config, ExperimentConfig) else parse_config(dict(config))
    task = dataset_summary(config.data.model_dump(mode="json"))["task"]
    names, _ = candidates(config, task, strategies)
    if not names:
        raise ConfigError(
            "no strategy can run this roster, so there is nothing to compare; change the roster "
            "on the Clients page"
        )
    base, _ = pilot_base(config, rounds)
    group, _ = mgr.sweep(
        parse_config(base),
        seeds=list(seeds) if seeds is not None else pilot_seeds(config),
        strategies=["local", *names],
        name=f"Advisor pilots: {config.name}",
        tags=[PILOT_TAG],
    )
    return group


def pilot_status(store: Any, group_id: str) -> dict[str, int]:
    """How many of a pilot sweep's runs are in each status."""
    counts: dict[str, int] = {}
    for r in store.list_runs(group_id=group_id):
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def advice_for(store: Any, group_id: str, config: ExperimentConfig | Mapping[str, Any]) -> Advice:
    """The advice from a finished (or partly finished) pilot sweep; unfinished pilots are left out
    and failed ones listed with their error."""
    from engine.core.metrics import run_primary

    config = config if isinstance(config, ExperimentConfig) else parse_config(dict(config))
    rows = store.list_runs(group_id=group_id)
    if not rows:
        raise ConfigError(f"no pilot runs in group {group_id}; launch the advisor again")
    ids = [r["id"] for r in rows]
    client_df = store.client_metrics(ids)
    roster = store.clients(ids)
    metric = None
    runs: list[PilotRun] = []
    for row in rows:
        run = store.get_run(row["id"])
        strategy = str(run.get("variant") or run["strategy"])
        if run["status"] == "failed":
            runs.append(
                PilotRun(
                    strategy,
                    int(run["seed"]),
                    {},
                    math.nan,
                    math.nan,
                    0,
                    math.nan,
                    run_id=run["id"],
                    error=str(run.get("error") or "failed"),
                )
            )
            continue
        if run["status"] != "finished":
            continue
        metric = metric or run_primary(run)
        rounds_df = store.round_metrics(run["id"])
        last = rounds_df[rounds_df["round"] == rounds_df["round"].max()]
        figures = dict(zip(last["key"], last["value"], strict=True))
        part = client_df[(client_df["run_id"] == run["id"]) & (client_df["key"] == f"val_{metric.key}")]
        part = part[part["round"] == part["round"].max()] if not part.empty else part
        names = {}
        if not roster.empty:
            mine = roster[roster["run_id"] == run["id"]]
            names = {int(c): str(n) for c, n in zip(mine["client_id"], mine["name"], strict=True)}
        runs.append(
            PilotRun(
                strategy,
                int(run["seed"]),
                {
                    int(c): float(v)
                    for c, v in zip(part["client_id"], part["value"], strict=True)
                    if v is not None and math.isfinite(v)
                },
                float(figures.get("cum_bytes_up", 0.0)) + float(figures.get("cum_bytes_down", 0.0)),
                float(figures.get("sim_time_s", math.nan)),
                int(rounds_df["round"].max()),
                float(figures.get("cum_wall_s", math.nan)),
                names,
                run["id"],
            )
        )
    if metric is None:
        raise ConfigError("no pilot has finished yet; wait for the pilots on the Runs page")
    pilot_rounds = max((r.rounds for r in runs), default=0)
    _, skipped = candidates(config, _task(config))
    _, notes = pilot_base(config, pilot_rounds or PILOT_ROUNDS)
    return build_advice(
        runs, metric, rounds=pilot_rounds, design_rounds=config.rounds, skipped=skipped, notes=notes
    )


def _task(config: ExperimentConfig) -> str:
    from engine.design.schema import dataset_summary

    return dataset_summary(config.data.model_dump(mode="json"))["task"]


def launch_recommended(
    mgr: Any,
    config: ExperimentConfig | Mapping[str, Any],
    strategy: str,
    *,
    seeds: Sequence[int] | None = None,
) -> tuple[str, list[str]]:
    """Start ``strategy`` with its paired ``local`` runs on the design's rounds and seeds (one
    sweep, so the verdict pairs them); returns ``(group id, run ids)``. The design's own strategy
    parameters are kept when it already uses ``strategy``."""
    config = config if isinstance(config, ExperimentConfig) else parse_config(dict(config))
    spec: dict[str, Any] = {"name": strategy}
    if config.strategy.name == strategy:
        spec = {"name": strategy, **config.strategy.params()}
    return mgr.sweep(
        config,
        seeds=list(seeds) if seeds is not None else [config.seed],
        strategies=[spec, "local"],
        name=config.name,
    )
