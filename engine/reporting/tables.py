"""Tables of runs built from the database alone, so the pages, the CLI, the HTML report and
scripts get the same numbers: round and client figures (wide or long), one row per run, means
over seeds per setting, the config and the reproducibility manifest."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from engine.core.metrics import headline, run_primary, summary_keys
from engine.errors import ConfigError
from engine.tracking.storage import Store

ROSTER_SUMMARY = (
    "client_id",
    "name",
    "arch",
    "n_params",
    "n_train",
    "n_test",
    "tier",
    "device",
    "join_round",
    "preprocessing",
    "optimizer",
    "lr",
    "epochs",
    "batch_size",
)
"""The columns of a run's roster that its Results page and its HTML report show."""


def summary_order(run: dict[str, Any], final: dict[str, Any]) -> list[str]:
    """The order of a run's final figures in summaries: its primary metric's headline first
    (:func:`engine.core.metrics.summary_keys`), then the rest by name."""
    first = [k for k in summary_keys(run_primary(run, set(final))) if k in final]
    return first + sorted(k for k in final if k not in first and k != "primary_metric")


def id_list(run_ids: str | Iterable[str]) -> list[str]:
    ids = [run_ids] if isinstance(run_ids, str) else list(dict.fromkeys(run_ids))
    if not ids:
        raise ConfigError("select at least one run to export")
    return ids


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds") if ts else None


def _times(run: dict[str, Any]) -> dict[str, Any]:
    """When a run was created, started and finished (ISO 8601, UTC) and how long it ran (s)."""
    started, finished = run.get("started_at"), run.get("finished_at")
    return {
        "created_at": _iso(run.get("created_at")),
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_s": (finished - started) if finished and started else None,
    }


# ---- tables -------------------------------------------------------------------------------------
def round_table(store: Store, run_id: str | Sequence[str]) -> pd.DataFrame:
    """One row per round, one column per round metric. Several runs: one row per run and round,
    with a ``run_id`` column first."""
    several = not isinstance(run_id, str)
    long = store.round_metrics(id_list(run_id))
    index = ["run_id", "round"] if several else ["round"]
    if long.empty:
        return pd.DataFrame({k: [] for k in index})
    return _widen(long, index)


def _widen(long: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """Long ``key, value`` rows to one column per key (no aggregation: keys are unique per row)."""
    wide = long.set_index([*index, "key"])["value"].unstack("key")
    wide.columns.name = None
    return wide.reset_index()


def client_table(store: Store, run_id: str | Sequence[str], wide: bool = False) -> pd.DataFrame:
    """Client metrics with each client's name and architecture: long (``run_id, round,
    client_id, client, arch, key, value``) or wide (one row per run, round and client, one column
    per metric)."""
    ids = id_list(run_id)
    long = store.client_metrics(ids)
    roster = store.clients(ids)[["run_id", "client_id", "name", "arch"]].rename(columns={"name": "client"})
    long = long.merge(roster, on=["run_id", "client_id"], how="left")
    if not wide:
        return long[["run_id", "round", "client_id", "client", "arch", "key", "value"]]
    index = ["run_id", "round", "client_id", "client", "arch"]
    if long.empty:
        return pd.DataFrame({k: [] for k in index})
    return _widen(long, index)


def runs_summary(store: Store, run_ids: Iterable[str]) -> pd.DataFrame:
    """One row per run: name, status, strategy, dataset, seed, group, tags, rounds, times, the
    primary metric with its headline figure (:func:`engine.core.metrics.headline`), and the final
    figures (the last evaluated round: the round's own and those at each client's best validation
    round), headline first, in the order given."""
    rows = []
    for run_id in id_list(run_ids):
        run = store.get_run(run_id)
        final = run.get("summary") or {}
        row: dict[str, Any] = {
            "run_id": run_id,
            "name": run["name"],
            "status": run["status"],
            "strategy": run["strategy"],
            "variant": run.get("variant") or "",
            "dataset": run["dataset"],
            "seed": run["seed"],
            "n_clients": run["n_clients"],
            "rounds": run["rounds"],
            "rounds_done": run["current_round"],
            "group_id": run.get("group_id") or "",
            "tags": "; ".join(run.get("tags") or []),
            "parent_id": run.get("parent_id") or "",
            **_times(run),
        }
        key, value = headline(final, run_primary(run, set(final)))
        row.update(
            {
                "primary_metric": run_primary(run, set(final)).key,
                "headline_key": key or "",
                "headline": value if value is not None else math.nan,
            }
        )
        row.update({k: (final[k] if final[k] is not None else math.nan) for k in summary_order(run, final)})
        rows.append(row)
    return pd.DataFrame(rows)


def group_key(run: dict[str, Any]) -> tuple[str, str]:
    """Runs with equal keys are seeds of one setting: ``(group_id, variant)`` for sweep members,
    ``(run_id, name)`` for a run on its own."""
    if run.get("group_id"):
        return run["group_id"], run.get("variant") or run.get("strategy") or ""
    return run["id"], run["name"]


def seed_summary(store: Store, run_ids: Iterable[str], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Final figures averaged over the seeds of each setting: one row per setting and metric
    with ``mean``, ``std`` (sample, ``ddof=1``; 0 for one seed), ``min``, ``max``, ``n`` and the
    seeds. Only finished runs count."""
    runs = [store.get_run(r) for r in id_list(run_ids)]
    runs = [r for r in runs if r["status"] == "finished"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    rows = []
    for (group_id, label), members in groups.items():
        finals = [m.get("summary") or {} for m in members]
        if metrics:
            keys = list(metrics)
        else:
            keys = list(
                dict.fromkeys(
                    k
                    for m, f in zip(members, finals, strict=True)
                    for k in summary_order(m, f)
                    if not k.startswith(("ref_", "best_round"))
                )
            )
        for key in keys:
            values = [f[key] for f in finals if f.get(key) is not None]
            if not values:
                continue
            s = pd.Series(values, dtype=float)
            rows.append(
                {
                    "group_id": group_id if members[0].get("group_id") else "",
                    "setting": label,
                    "metric": key,
                    "mean": s.mean(),
                    "std": s.std(ddof=1) if len(s) > 1 else 0.0,
                    "min": s.min(),
                    "max": s.max(),
                    "n": len(s),
                    "seeds": " ".join(str(m["seed"]) for m in members),
                }
            )
    return pd.DataFrame(
        rows, columns=["group_id", "setting", "metric", "mean", "std", "min", "max", "n", "seeds"]
    )


# ---- JSON ---------------------------------------------------------------------------------------
def config_json(store: Store, run_id: str) -> str:
    """The run's full config as JSON (valid input for ``python -m engine run``)."""
    return json.dumps(store.get_run(run_id)["config"], indent=2)


def config_fingerprint(config: dict[str, Any]) -> str:
    """SHA-256 of the config's canonical JSON: equal configs, equal fingerprints."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def manifest(store: Store, run_id: str) -> dict[str, Any]:
    """What it takes to reproduce a run and check a reproduction: seed, partition fingerprint,
    config fingerprint, library versions, devices, start/end times, resumes, and where each
    preprocessing statistic came from (federated aggregate, each client's own data, or the whole file)."""
    run = store.get_run(run_id)
    recorded = run.get("manifest") or {}
    events = store.events(run_id)
    resumes = [m for m in events["message"].tolist() if m.startswith("resumed")] if not events.empty else []
    final = run.get("summary") or {}
    return {
        "run_id": run_id,
        "name": run["name"],
        "status": run["status"],
        "seed": run["seed"],
        "partition_fingerprint": recorded.get("partition_fingerprint"),
        "config_sha256": config_fingerprint(run["config"]),
        "strategy": run["strategy"],
        "dataset": run["dataset"],
        "n_clients": run["n_clients"],
        "rounds": run["rounds"],
        "rounds_done": run["current_round"],
        "versions": run.get("versions") or recorded.get("versions") or {},
        "devices": recorded.get("devices", []),
        "torch_threads": recorded.get("torch_threads"),
        "preprocessing": recorded.get("preprocessing"),  # where every preprocessing statistic came from
        **_times(run),
        "compute_s": final.get("cum_wall_s"),
        "resumes": resumes,
        "group_id": run.get("group_id"),
        "variant": run.get("variant"),
        "parent_id": run.get("parent_id"),
        "rerun": "python -m engine run <this run's config.json>",
    }
