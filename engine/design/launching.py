"""Launching a design through the run manager: one run or a sweep over strategies x defences x
seeds, the seeds as the Launch page reads them, and the paired baseline runs a verdict needs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ExperimentConfig, parse_config
from engine.design.compatibility import with_strategy
from engine.design.document import DEFAULT_SEED, DEFAULT_STRATEGY
from engine.errors import ConfigError
from engine.tracking.runs import get_manager
from engine.validate import check


def manager(db_path: str | Path | None = None, workers: int | None = None):
    """The process's run manager (:func:`engine.tracking.runs.get_manager`). The app trains each run in a
    process of its own (``isolation="process"``: a training thread in the server would hold the
    interpreter lock the pages need); ``FEDMOSAIC_ISOLATION=thread`` keeps them in the server."""
    return get_manager(
        db_path=db_path, workers=workers, isolation=os.environ.get("FEDMOSAIC_ISOLATION") or "process"
    )


MAX_SEEDS = 100
"""Most seeds one sweep launches."""
MAX_SEED: int = next(m.le for m in ExperimentConfig.model_fields["seed"].metadata if getattr(m, "le", None))
"""Largest seed (:class:`~engine.config.ExperimentConfig`'s bound)."""


def parse_seeds(text: str | int | Sequence[int]) -> list[int]:
    """Seeds from ``"0, 1, 2"``, ``"0-4"`` or a number/list.

    :raises ConfigError: not integers, negative, too large, or more than :data:`MAX_SEEDS` seeds.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        text = [text]
    if not isinstance(text, str):
        try:
            seeds = [int(s) for s in text]
        except (TypeError, ValueError):
            raise ConfigError("seeds must be whole numbers like 0, 1, 2") from None
    else:
        seeds = []
        for part in re.split(r"[,\s]+", text.strip()):
            if not part:
                continue
            m = re.fullmatch(r"(\d{1,30})\s*(?:-|\.\.)\s*(\d{1,30})", part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise ConfigError(
                        f"seeds: the range {part} counts down; write the smaller seed first, e.g. {hi}-{lo}"
                    )
                if hi - lo + 1 > MAX_SEEDS:
                    raise ConfigError(
                        f"seeds: the range {part} holds {hi - lo + 1:,} seeds, too many for one "
                        f"sweep; use at most {MAX_SEEDS} (e.g. {lo}-{lo + MAX_SEEDS - 1})"
                    )
                seeds.extend(range(lo, hi + 1))
            elif re.fullmatch(r"-?\d{1,30}", part):
                seeds.append(int(part))
            else:
                raise ConfigError(
                    f"seeds: '{part[:20]}' is not a seed; write numbers like 0, 1, 2 or a range like 0-4"
                )
    if not seeds:
        raise ConfigError("give at least one seed, e.g. 0")
    if any(s < 0 for s in seeds):
        raise ConfigError("seeds must be 0 or larger")
    if any(s > MAX_SEED for s in seeds):
        raise ConfigError(f"seeds go up to {MAX_SEED:,}; pick smaller ones")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"{len(seeds)} seeds is too many for one sweep; use at most {MAX_SEEDS}")
    return list(dict.fromkeys(seeds))


@dataclass
class Launched:
    """What :func:`launch` started: the run ids and, for a sweep, its group id."""

    run_ids: list[str]
    group_id: str | None = None


def launch(
    design: dict[str, Any],
    *,
    strategies: Sequence[str] | None = None,
    seeds: Sequence[int] = (),
    strategy_params: dict[str, dict[str, Any]] | None = None,
    name: str | None = None,
    tags: Sequence[str] = (),
    mgr: Any = None,
    defences: Sequence[dict[str, Any] | str] | None = None,
) -> Launched:
    """Validate the design and start it through the run manager: one run, or a sweep over
    ``strategies`` x ``defences`` x ``seeds`` (each strategy with its own ``strategy_params``;
    ``defences``: ``{"name": ..., **params}`` dicts replacing the design's ``defence``).

    :raises ConfigError: the design (or one strategy's parameters) is invalid; the message says what
        to change.
    :raises CompatibilityError: a chosen strategy cannot run this roster.
    :raises StorageError: the database cannot be written.
    """
    mgr = mgr or manager()
    strategy_params = strategy_params or {}
    names = list(strategies or [design.get("strategy", {}).get("name", DEFAULT_STRATEGY)])
    seeds = list(seeds) or [int(design.get("seed") or DEFAULT_SEED)]
    if not names:
        raise ConfigError("choose at least one strategy")
    guards = [
        ({"name": d} if isinstance(d, str) else dict(d))
        for d in (defences or [design.get("defence") or "none"])
    ]
    if not guards:
        raise ConfigError("choose at least one defence (none: the strategy's own average)")
    configs = []
    for s in names:
        params = strategy_params.get(s)
        if params is None and design.get("strategy", {}).get("name") == s:
            params = {k: v for k, v in design["strategy"].items() if k != "name"}
        for guard in guards:
            configs.append(parse_config({**with_strategy(design, s, params), "defence": guard}))
    for config in configs:
        check(config)
    tags = [t for t in (str(t).strip() for t in tags) if t]
    if len(configs) == 1 and len(seeds) == 1:
        config = configs[0].model_copy(update={"seed": seeds[0]})
        return Launched([mgr.submit(config, name=name or config.name, tags=tags)])
    specs = list(
        {
            json.dumps(c.strategy.model_dump(mode="json"), sort_keys=True): c.strategy.model_dump(mode="json")
            for c in configs
        }.values()
    )
    group, ids = mgr.sweep(
        configs[0],
        seeds=seeds,
        strategies=specs,
        name=name,
        tags=tags,
        defences=[c.defence.model_dump(mode="json") for c in configs[: len(guards)]]
        if len(guards) > 1
        else None,
    )
    return Launched(list(ids), group)


def launch_baselines(run_ids: Sequence[str], baseline: str = "local", mgr: Any = None) -> list[str]:
    """Launch ``baseline`` (``local``) on the same split and seed as each of ``run_ids``: the
    same config with only the strategy changed, in the same sweep when the run is in one (so
    Compare's whole-sweep view pairs them). Returns the new run ids.

    :raises ConfigError: the baseline cannot run this config.
    """
    mgr = mgr or manager()
    created = []
    for run_id in dict.fromkeys(run_ids):
        run = mgr.store.get_run(run_id)
        config = parse_config({**run["config"], "strategy": {"name": baseline}})
        base = str(run.get("name") or config.name).split(" · ")[0]
        name = f"{base} · {baseline} · seed {config.seed}"
        created.append(
            mgr.submit(
                config,
                name=name,
                group_id=run.get("group_id"),
                tags=run.get("tags") or [],
                parent_id=run_id,
                variant=baseline if run.get("group_id") else None,
            )
        )
    return created
