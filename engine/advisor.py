"""Strategy advisor: which strategy should this federation use?

For a designed experiment, short **pilot runs** of every strategy that can run its roster, each
paired with a pilot of ``local`` (training alone) on the same split and seeds, are scored on the
clients' **validation** splits (never their test splits: the test figures must stay untouched by
the choice), on the experiment's primary metric. Each strategy's paired difference from ``local``
comes with its interval (:func:`engine.reporting.verdict.paired_verdict`: over seeds with two or more, over
clients with one) and its cost: bytes exchanged and simulated time, measured in the pilot and
projected to the designed number of rounds. The recommendation is the strategy with the largest
mean gain whose interval does not lie below zero; when none gains, training alone is.

Pilots run as a sweep through the run manager (:mod:`engine.tracking.pilots`: the manager trains
as many at once as its thread policy allows, each appears on the Runs page and can be cancelled,
the advice is read back from the stored runs, and the winner starts with its paired ``local`` runs
on the designed rounds and seeds, as one sweep). :func:`advise` runs the same pilots in this
process without a database (scripts, tests).

What a pilot cannot tell: a few rounds favour strategies that learn fast over ones that overtake
later (FedDF's distillation, FedProx's drag), and a validation split of a few dozen rows moves by
several points per row; the interval shows the second, the page states the first.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from engine.config import ExperimentConfig, parse_config
from engine.errors import ConfigError

PILOT_ROUNDS = 5
"""Rounds of a pilot (fewer when the design itself has fewer)."""
PILOT_SEEDS = 2
"""Seeds per pilot: two give an interval over seeds."""
PILOT_VALIDATION = 0.15
"""Validation share used for the pilots when the design keeps none."""
PILOT_TAG = "advisor-pilot"
SKIP = ("local", "centralized")
"""Strategies the advisor does not recommend: ``local`` is the baseline every pilot is paired
with, ``centralized`` pools the clients' data (not a federation)."""


@dataclass
class Pilot:
    """One strategy's pilots against ``local``."""

    strategy: str
    verdict: Any | None = None
    """:class:`engine.reporting.verdict.Verdict` against ``local`` on the validation figures."""
    value: float = math.nan
    """The strategy's validation figure, mean over clients and seeds."""
    bytes_per_round: float = math.nan
    sim_s_per_round: float = math.nan
    wall_s: float = math.nan
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)

    @property
    def gain(self) -> float:
        """Mean paired difference from ``local`` (positive: better), NaN without a verdict."""
        return float(self.verdict.interval.mean) if self.verdict is not None else math.nan

    def projected(self, rounds: int) -> tuple[float, float]:
        """``(bytes, simulated seconds)`` of a run of ``rounds`` rounds at the pilot's pace."""
        return self.bytes_per_round * rounds, self.sim_s_per_round * rounds


@dataclass
class Advice:
    """The ranked pilots and the recommendation."""

    metric: Any
    """:class:`engine.core.metrics.Metric` the pilots were scored on."""
    rounds: int
    """Rounds of each pilot."""
    design_rounds: int
    seeds: list[int]
    local: Pilot
    pilots: list[Pilot]
    """Every strategy that ran, best first; failed pilots last."""
    skipped: dict[str, str]
    """Strategies that cannot run the roster, with why."""
    notes: list[str] = field(default_factory=list)

    @property
    def recommended(self) -> Pilot | None:
        """The best strategy whose gain over ``local`` is positive and whose interval does not lie
        below zero; ``None``: training alone is the recommendation."""
        for p in self.pilots:
            if p.verdict is None or not math.isfinite(p.gain) or p.gain <= 0:
                continue
            if p.verdict.interval.defined and p.verdict.interval.high < 0:
                continue
            return p
        return None

    @property
    def sentence(self) -> str:
        """The recommendation in one plain sentence."""
        n = len(self.seeds)
        pilots = f"{self.rounds}-round pilots on {n} seed{'s' if n != 1 else ''}"
        best = self.recommended
        label = self.metric.label
        if best is None:
            return (
                f"No strategy beat training alone on the clients' validation {label} in {pilots}: "
                f"train locally, or try more rounds or other settings."
            )
        v = best.verdict
        sure = (
            "beyond noise"
            if v.outcome == "better"
            else "but within noise"
            if v.outcome == "noise"
            else "on too little data to judge noise"
        )
        return (
            f"{best.strategy} leads: {self.metric.diff_text(v.interval.mean)} of validation {label} "
            f"over training alone in {pilots} ({sure})."
        )

    def table(self) -> list[dict[str, Any]]:
        """One row per strategy for the page (gains in the metric's units, costs projected to the
        designed rounds)."""
        rows = []
        for rank, p in enumerate(self.pilots, 1):
            b, s = p.projected(self.design_rounds)
            v = p.verdict
            rows.append(
                {
                    "rank": rank if p.error is None else None,
                    "strategy": p.strategy,
                    "validation": p.value,
                    "gain": p.gain,
                    "low": v.interval.low if v is not None else math.nan,
                    "high": v.interval.high if v is not None else math.nan,
                    "outcome": v.outcome if v is not None else (p.error or "—"),
                    "MB": b / 1e6,
                    "simulated_s": s,
                    "pilot_wall_s": p.wall_s,
                }
            )
        return rows


# ---- planning ---------------------------------------------------------------------------------
def candidates(
    config: ExperimentConfig, task: str, strategies: Sequence[str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The strategies to pilot (every one that can run the roster, or those of ``strategies``
    that can) and, for the others, why they cannot."""
    from engine.strategies import STRATEGIES
    from engine.validate import compatibility

    reasons = compatibility(config, task)
    wanted = list(strategies) if strategies is not None else STRATEGIES.names()
    ok = [n for n in wanted if n not in SKIP and reasons.get(n) is None]
    skipped = {n: str(reasons[n]) for n in wanted if n not in SKIP and reasons.get(n) is not None}
    return ok, skipped


def pilot_base(config: ExperimentConfig, rounds: int = PILOT_ROUNDS) -> tuple[dict[str, Any], list[str]]:
    """The design as a pilot config (few rounds, every round evaluated, no checkpoints, a
    validation split) and notes on what was changed for the pilots."""
    base = config.model_dump(mode="json")
    notes = []
    base.update({"rounds": max(1, min(rounds, config.rounds)), "eval_every": 1, "checkpoint_every": 0})
    data = base["data"]
    if not data.get("validation_fraction") and not data.get("split_column"):
        data["validation_fraction"] = PILOT_VALIDATION
        notes.append(
            f"The design keeps no validation rows; the pilots held out {100 * PILOT_VALIDATION:.0f}% "
            f"of each client's training rows to score on."
        )
    return base, notes


def pilot_seeds(config: ExperimentConfig, n: int = PILOT_SEEDS) -> list[int]:
    """The design's seed and the next ones."""
    return [config.seed + i for i in range(n)]


# ---- scoring ------------------------------------------------------------------------------------
@dataclass
class PilotRun:
    """What the advice needs from one pilot run."""

    strategy: str
    seed: int
    values: dict[int, float]
    """Each client's validation figure in the last round."""
    bytes_total: float
    sim_s: float
    rounds: int
    wall_s: float
    names: dict[int, str] = field(default_factory=dict)
    run_id: str | None = None
    error: str | None = None


def build_advice(
    runs: Sequence[PilotRun],
    metric: Any,
    *,
    rounds: int,
    design_rounds: int,
    skipped: Mapping[str, str],
    notes: Sequence[str] = (),
) -> Advice:
    """Pair every strategy's pilots with ``local``'s by seed, rank them by mean gain."""
    from engine.reporting.verdict import paired_verdict

    by_strategy: dict[str, dict[int, PilotRun]] = {}
    for r in runs:
        by_strategy.setdefault(r.strategy, {})[r.seed] = r
    local_runs = by_strategy.pop("local", {})
    if not local_runs or all(r.error for r in local_runs.values()):
        raise ConfigError(
            "the local pilot did not run, so nothing can be compared; "
            + next((r.error for r in local_runs.values() if r.error), "launch the advisor again")
        )
    seeds = sorted(local_runs)

    def pilot(name: str, mine: dict[int, PilotRun], baseline: Mapping[int, PilotRun] | None) -> Pilot:
        ok = {s: r for s, r in mine.items() if r.error is None and r.values}
        failed = [r.error for r in mine.values() if r.error]
        p = Pilot(name, run_ids=[r.run_id for r in mine.values() if r.run_id])
        if not ok:
            p.error = failed[0] if failed else "no validation figures"
            return p
        p.value = sum(sum(r.values.values()) / len(r.values) for r in ok.values()) / len(ok)
        p.bytes_per_round = sum(r.bytes_total / max(r.rounds, 1) for r in ok.values()) / len(ok)
        p.sim_s_per_round = sum(r.sim_s / max(r.rounds, 1) for r in ok.values()) / len(ok)
        p.wall_s = sum(r.wall_s for r in ok.values())
        if baseline is not None:
            names = next(iter(ok.values())).names
            try:
                p.verdict = paired_verdict(
                    {s: r.values for s, r in ok.items()},
                    {s: r.values for s, r in baseline.items() if r.error is None},
                    metric,
                    strategy=name,
                    baseline="local",
                    names=names,
                    best_round=False,
                )
            except ValueError as exc:
                p.error = str(exc)
        return p

    local = pilot("local", local_runs, None)
    pilots = [pilot(name, mine, local_runs) for name, mine in by_strategy.items()]
    pilots.sort(
        key=lambda p: (
            p.verdict is None,
            -(p.gain if math.isfinite(p.gain) else -math.inf),
            p.bytes_per_round if math.isfinite(p.bytes_per_round) else math.inf,
        )
    )
    return Advice(metric, rounds, design_rounds, seeds, local, pilots, dict(skipped), list(notes))


def _validation_values(per_client: Mapping[int, Mapping[str, float]], key: str) -> dict[int, float]:
    return {
        int(c): float(m[key])
        for c, m in per_client.items()
        if key in m and m[key] is not None and math.isfinite(m[key])
    }


# ---- in this process ------------------------------------------------------------------------------
def advise(
    config: ExperimentConfig | Mapping[str, Any],
    *,
    rounds: int = PILOT_ROUNDS,
    seeds: Sequence[int] | None = None,
    strategies: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Advice:
    """Run the pilots here (no database) and return the advice.

    :param workers: pilots trained at once (default: the thread policy's budget of this process,
        each pilot then on ``budget // workers`` threads).
    :param progress: called on this thread as ``progress(done, total, label)`` after each pilot.
    """
    from engine import threads
    from engine.core.simulation import Simulation
    from engine.data import load_dataset
    from engine.tracking.storage import default_data_dir

    config = config if isinstance(config, ExperimentConfig) else parse_config(dict(config))
    task = load_dataset(config.data, default_data_dir()).task
    names, skipped = candidates(config, task, strategies)
    base, notes = pilot_base(config, rounds)
    seeds = list(seeds) if seeds is not None else pilot_seeds(config)
    jobs = [(name, seed) for name in ("local", *names) for seed in seeds]
    budget = threads.process_budget()
    workers = max(1, min(workers or budget, len(jobs)))
    share = threads.share(workers, budget)
    metric_box: list[Any] = []

    def one(name: str, seed: int) -> PilotRun:
        cfg = parse_config({**base, "seed": seed, "strategy": {"name": name}, "name": f"pilot {name}"})
        start = time.perf_counter()
        try:
            sim = Simulation(cfg, share=share)
            sim.run()
        except Exception as exc:  # noqa: BLE001 - one failing pilot must not sink the advice
            return PilotRun(
                name,
                seed,
                {},
                math.nan,
                math.nan,
                0,
                time.perf_counter() - start,
                error=f"{type(exc).__name__}: {exc}",
            )
        metric = sim.primary.metric
        if not metric_box:
            metric_box.append(metric)
        last = sim.history[-1]
        return PilotRun(
            name,
            seed,
            _validation_values(last.clients, f"val_{metric.key}"),
            last.metrics.get("cum_bytes_up", 0.0) + last.metrics.get("cum_bytes_down", 0.0),
            float(last.metrics.get("sim_time_s", math.nan)),
            last.round,
            time.perf_counter() - start,
            {c.id: c.name for c in sim.clients},
        )

    results: list[PilotRun] = []
    with ThreadPoolExecutor(workers, thread_name_prefix="fedmosaic-pilot") as pool:
        futures = {pool.submit(one, n, s): (n, s) for n, s in jobs}
        for done, future in enumerate(as_completed(futures), 1):
            results.append(future.result())
            if progress is not None:
                n, s = futures[future]
                progress(done, len(jobs), f"{n} seed {s}")
    if not metric_box:
        raise ConfigError("no pilot ran: " + next((r.error for r in results if r.error), "unknown error"))
    return build_advice(
        results,
        metric_box[0],
        rounds=base["rounds"],
        design_rounds=config.rounds,
        skipped=skipped,
        notes=notes,
    )
