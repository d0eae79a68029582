"""The verdict from stored runs: which runs pair (same data, split, roster and seed, one a
strategy and the other a baseline), each client's figure of a run, and :func:`verdicts_for`, the
paired verdicts (:mod:`engine.reporting.verdict`) of every strategy setting among some runs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.core.metrics import Metric, client_key, shared_primary
from engine.reporting.verdict import BASELINES, Verdict, paired_verdict


def pairing_key(run: Mapping[str, Any]) -> tuple[Any, ...]:
    """Runs with equal keys saw the same clients' data: the same seed, data section and roster
    names (a strategy and its ``local`` fork)."""
    config = run.get("config") or {}
    from engine.config import parse_config

    try:
        roster = tuple(c.name for c in parse_config(config).roster())
    except Exception:  # noqa: BLE001 - an unreadable config pairs with nothing
        roster = (run.get("id"),)
    return (
        int(run.get("seed") or config.get("seed") or 0),
        json.dumps(config.get("data") or {}, sort_keys=True),
        roster,
    )


def setting_key(run: Mapping[str, Any]) -> tuple[str, str]:
    """Runs of one setting (its seeds): a sweep's variant, else the strategy with the run's name
    stripped of its seed suffix."""
    if run.get("group_id"):
        return str(run["group_id"]), str(run.get("variant") or run.get("strategy"))
    name = str(run.get("name") or "").split(" · seed ")[0]
    return name, str(run.get("strategy"))


def per_client_values(client_df: Any, run_id: str, key: str) -> dict[int, float]:
    """Each client's last recorded ``key`` in one run (``best_local_bacc``: at its best round)."""
    if client_df is None or client_df.empty:
        return {}
    part = client_df[(client_df["run_id"] == run_id) & (client_df["key"] == key)].dropna(subset=["value"])
    if part.empty:
        return {}
    last = part.sort_values("round").groupby("client_id").tail(1)
    return {int(c): float(v) for c, v in zip(last["client_id"], last["value"], strict=True)}


@dataclass
class Pairing:
    """How stored runs pair up: for each setting of a non-baseline strategy, its runs by seed and
    the baseline runs on the same splits (``missing``: seeds without a ``local`` run)."""

    setting: tuple[str, str]
    strategy: str
    runs: dict[int, dict[str, Any]]
    baselines: dict[str, dict[int, dict[str, Any]]]
    missing: dict[str, list[int]]


def pair_runs(store: Any, run_ids: Sequence[str]) -> list[Pairing]:
    """Group the finished, non-baseline runs among ``run_ids`` by setting and find their baselines
    on the same split and seed: among ``run_ids`` first, then among every finished run."""
    runs = [store.get_run(r) for r in dict.fromkeys(run_ids)]
    finished = [r for r in runs if r["status"] == "finished"]
    chosen = {r["id"] for r in finished}
    candidates = [r for r in finished if r["strategy"] in BASELINES]
    wanted_seeds = {r["seed"] for r in finished}
    for row in store.list_runs(status="finished"):
        if row["strategy"] in BASELINES and row["id"] not in chosen and row["seed"] in wanted_seeds:
            candidates.append(store.get_run(row["id"]))
    by_key: dict[tuple[tuple[Any, ...], str], dict[str, Any]] = {}
    for c in sorted(candidates, key=lambda r: (r["id"] not in chosen, -(r.get("finished_at") or 0))):
        by_key.setdefault((pairing_key(c), c["strategy"]), c)
    settings: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in finished:
        if r["strategy"] not in BASELINES:
            settings.setdefault(setting_key(r), []).append(r)
    out = []
    for setting, members in settings.items():
        by_seed: dict[int, dict[str, Any]] = {}
        for m in members:
            by_seed.setdefault(int(m["seed"]), m)
        baselines: dict[str, dict[int, dict[str, Any]]] = {b: {} for b in BASELINES}
        missing: dict[str, list[int]] = {b: [] for b in BASELINES}
        for seed, m in by_seed.items():
            key = pairing_key(m)
            for b in BASELINES:
                found = by_key.get((key, b))
                if found is not None:
                    baselines[b][seed] = found
                else:
                    missing[b].append(seed)
        out.append(Pairing(setting, members[0]["strategy"], by_seed, baselines, missing))
    return out


def verdicts_for(
    store: Any,
    run_ids: Sequence[str],
    *,
    best_round: bool = True,
    level: float = 0.95,
    metric: Metric | None = None,
) -> tuple[list[Verdict], list[Pairing]]:
    """Verdicts of every strategy setting among ``run_ids`` against each baseline that has paired
    runs, on the primary metric shared by the runs (or ``metric``), and the pairings (to offer
    launching missing baselines)."""
    pairings = pair_runs(store, run_ids)
    if not pairings:
        return [], []
    all_runs = [r for p in pairings for r in p.runs.values()]
    metric = metric or shared_primary(all_runs)
    key = client_key(metric, best=best_round)
    ids = {r["id"] for p in pairings for r in p.runs.values()}
    ids |= {r["id"] for p in pairings for b in p.baselines.values() for r in b.values()}
    client_df = store.client_metrics(sorted(ids))
    roster = store.clients(sorted(ids))
    verdicts = []
    for p in pairings:
        first = next(iter(p.runs.values()))
        names = {}
        if not roster.empty:
            mine = roster[roster["run_id"] == first["id"]]
            names = {int(c): str(n) for c, n in zip(mine["client_id"], mine["name"], strict=True)}
        label = p.setting[1] if p.setting[1] != first["strategy"] else first["strategy"]
        for b in BASELINES:
            if not p.baselines[b]:
                continue
            mine = {
                s: per_client_values(client_df, r["id"], key)
                for s, r in p.runs.items()
                if s in p.baselines[b]
            }
            theirs = {s: per_client_values(client_df, r["id"], key) for s, r in p.baselines[b].items()}
            try:
                verdicts.append(
                    paired_verdict(
                        mine,
                        theirs,
                        metric,
                        strategy=label,
                        baseline=b,
                        names=names,
                        level=level,
                        best_round=best_round,
                        pairs=[(p.runs[s]["id"], p.baselines[b][s]["id"]) for s in sorted(p.baselines[b])],
                    )
                )
            except ValueError:
                continue
    return verdicts, pairings
