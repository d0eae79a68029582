"""What the Runs, Results and Compare pages read from the store: the runs table, a run's headline
row and overfitting flag, verdicts against paired baselines, settings that differ between runs,
exports, and what a run's compromised clients did; with the same metrics, verdict and export
renderers as the CLI and the HTML report."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engine.core.metrics import headline as metrics_headline
from engine.core.metrics import headline_key, run_primary, shared_primary
from engine.reporting.charts import headline_label
from engine.reporting.export import render
from engine.reporting.pairing import verdicts_for
from engine.reporting.verdict import overfitting
from engine.robustness import report as robustness_report
from engine.robustness.design import defence_label
from engine.tracking.storage import Store

TABS = (
    "Learning curves",
    "Clients",
    "Fairness",
    "Communication",
    "Time & participation",
    "Late joiners",
    "Config & roster",
)
"""The Results page's tabs for every run (a run with privacy settings adds "Privacy")."""


def headline(summary: dict[str, Any] | None) -> tuple[str | None, float | None]:
    """A run's headline figure from its summary (:func:`engine.core.metrics.headline`: the primary
    metric on the clients' own test data at their best validation rounds)."""
    return metrics_headline(summary if isinstance(summary, dict) else None)


def runs_frame(store: Store, *, status: Sequence[str] = (), search: str = "") -> pd.DataFrame:
    """Every run as one row for the Runs page: id, name, status, progress (0..1), round, rounds,
    strategy, dataset, clients, seed, tags, group, created, duration, headline metric, error."""
    rows = []
    for r in store.list_runs():
        key, value = headline(r.get("summary") if isinstance(r.get("summary"), dict) else None)
        rounds = int(r.get("rounds") or 0)
        cur = int(r.get("current_round") or 0)
        tags = r.get("tags") if isinstance(r.get("tags"), list) else []
        started, finished = r.get("started_at"), r.get("finished_at")
        end = finished or (r.get("heartbeat_at") if r.get("status") in ("running",) else None) or finished
        rows.append(
            {
                "id": r["id"],
                "name": r.get("name") or "",
                "status": r.get("status") or "",
                "progress": (cur / rounds) if rounds else 0.0,
                "round": cur,
                "rounds": rounds,
                "strategy": r.get("strategy") or "",
                "dataset": r.get("dataset") or "",
                "clients": int(r.get("n_clients") or 0),
                "seed": r.get("seed"),
                "tags": ", ".join(map(str, tags)),
                "group": r.get("group_id") or "",
                "created": pd.to_datetime(r.get("created_at"), unit="s") if r.get("created_at") else pd.NaT,
                "duration_s": (end - started) if started and end else None,
                "metric": headline_label(key),
                "value": value,
                "error": r.get("error") or "",
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "id",
            "name",
            "status",
            "progress",
            "round",
            "rounds",
            "strategy",
            "dataset",
            "clients",
            "seed",
            "tags",
            "group",
            "created",
            "duration_s",
            "metric",
            "value",
            "error",
        ],
    )
    if status:
        frame = frame[frame["status"].isin(list(status))]
    if search.strip():
        needle = search.strip().lower()
        hay = (
            frame["id"]
            + " "
            + frame["name"]
            + " "
            + frame["strategy"]
            + " "
            + frame["dataset"]
            + " "
            + frame["tags"]
            + " "
            + frame["group"]
        ).str.lower()
        frame = frame[hay.str.contains(needle, regex=False)]
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
def run_label(run: dict[str, Any]) -> str:
    """A compact label of a run for legends and table headers: ``variant · seed N`` for sweep
    members (their shared name says nothing new), else the run's name."""
    if run.get("group_id") and run.get("variant"):
        return f"{run['variant']} · seed {run.get('seed')}"
    return str(run.get("name") or run.get("id"))


def config_diff(configs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Settings that differ between configs: one row per dotted path, one column per run label."""
    flat = {label: _flatten(cfg) for label, cfg in configs.items()}
    keys = sorted(set().union(*[f.keys() for f in flat.values()])) if flat else []
    rows = []
    for k in keys:
        values = [flat[label].get(k, "—") for label in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            rows.append({"setting": k, **{label: _show(v) for label, v in zip(flat, values, strict=True)}})
    return pd.DataFrame(rows, columns=["setting", *flat])


def _show(v: Any) -> str:
    return json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def export(store: Store, run_ids: str | Sequence[str], fmt: str):
    """One run's (or several runs') export in memory: ``csv``, ``clients-wide-csv``, ``json``,
    ``html``, ``manifest``... (see :data:`engine.reporting.export.FORMATS`)."""
    return render(store, run_ids, fmt)


# ---------------------------------------------------------------------------------------------
# Results: the headline row, the overfitting flag, the verdict and its missing baselines
# ---------------------------------------------------------------------------------------------
@dataclass
class Headline:
    """What a run's Results page opens with."""

    metric: Any
    """The primary metric (:class:`engine.core.metrics.Metric`)."""
    reason: str
    best: float | None
    """Own-test figure, mean over clients, at each client's best validation round."""
    final: float | None
    """The same in the last evaluated round."""
    reference: float | None
    """The trivial predictor's figure (majority class / mean), mean over clients."""
    best_rounds: list[int]
    """Each client's best validation round."""
    bytes_total: float | None
    sim_time_s: float | None

    @property
    def rounds_text(self) -> str:
        """``7`` or ``median 7 (3-12)`` over clients."""
        if not self.best_rounds:
            return "—"
        lo, hi = min(self.best_rounds), max(self.best_rounds)
        if lo == hi:
            return str(lo)
        med = sorted(self.best_rounds)[len(self.best_rounds) // 2]
        return f"median {med} ({lo}–{hi})"


def run_headline(
    store: Store, run_id: str, round_df: pd.DataFrame | None = None, client_df: pd.DataFrame | None = None
) -> Headline:
    """The headline row of one run: primary metric at the best validation rounds and in the
    final round, the best rounds, bytes exchanged and simulated time (from the stored run)."""
    run = store.get_run(run_id)
    rounds = round_df if round_df is not None else store.round_metrics(run_id)
    keys = set(rounds["key"]) if not rounds.empty else set()
    metric = run_primary(run, keys)
    last: dict[str, float] = {}
    if not rounds.empty:
        evaluated = rounds[rounds["key"] == headline_key(metric, best=False)]
        rnd = int(evaluated["round"].max()) if not evaluated.empty else int(rounds["round"].max())
        last = dict(
            zip(rounds[rounds["round"] == rnd]["key"], rounds[rounds["round"] == rnd]["value"], strict=True)
        )
        final_row = rounds[rounds["round"] == rounds["round"].max()]
        last.update(
            {
                k: v
                for k, v in zip(final_row["key"], final_row["value"], strict=True)
                if k.startswith(("cum_", "sim_"))
            }
        )
    clients = client_df if client_df is not None else store.client_metrics(run_id)
    best_rounds: list[int] = []
    if not clients.empty:
        part = clients[(clients["run_id"] == run_id) & (clients["key"] == "best_round")]
        if not part.empty:
            best_rounds = [int(v) for v in part.sort_values("round").groupby("client_id")["value"].last()]

    def get(key: str) -> float | None:
        value = last.get(key)
        return float(value) if value is not None and math.isfinite(value) else None

    up, down = get("cum_bytes_up"), get("cum_bytes_down")
    reason = (run.get("manifest") or {}).get("primary_reason") or ""
    return Headline(
        metric,
        reason,
        get(headline_key(metric)),
        get(headline_key(metric, best=False)),
        get(f"ref_local_{metric.key}_mean"),
        best_rounds,
        (up or 0.0) + (down or 0.0) if up is not None or down is not None else None,
        get("sim_time_s"),
    )


def overfitting_flag(round_df: pd.DataFrame) -> str | None:
    """The overfitting warning of one run (:func:`engine.reporting.verdict.overfitting`): held-out loss
    (validation, else own test) rising while the training loss falls; ``None`` when it does not."""
    if round_df is None or round_df.empty:
        return None
    wide = round_df.pivot_table(index="round", columns="key", values="value", aggfunc="first")
    held = next((k for k in ("val_loss_mean", "local_loss_mean") if k in wide.columns), None)
    if held is None or "train_loss_mean" not in wide.columns:
        return None
    part = wide[["train_loss_mean", held]].dropna()
    flag = overfitting(list(part.index), list(part["train_loss_mean"]), list(part[held]))
    return flag.message if flag else None


def setting_runs(store: Store, run_id: str) -> list[str]:
    """The finished runs of ``run_id``'s setting (its seeds): the sweep members with its variant,
    else the run alone."""
    run = store.get_run(run_id)
    if not run.get("group_id"):
        return [run_id]
    return [
        r["id"]
        for r in store.list_runs(group_id=run["group_id"])
        if (r.get("variant") or r.get("strategy")) == (run.get("variant") or run.get("strategy"))
        and (r["status"] == "finished" or r["id"] == run_id)
    ]


def verdicts(store: Store, run_ids: Sequence[str], *, best_round: bool = True):
    """The verdicts of the strategies among ``run_ids`` against their paired ``local`` (and
    ``centralized``) runs, and the pairings (:func:`engine.reporting.pairing.verdicts_for`)."""
    return verdicts_for(store, list(run_ids), best_round=best_round)


def missing_baselines(pairings: Sequence[Any], baseline: str = "local") -> list[tuple[str, int]]:
    """``(run id, seed)`` of the strategy runs that have no paired ``baseline`` run yet."""
    return [(p.runs[seed]["id"], seed) for p in pairings for seed in p.missing.get(baseline, [])]


def attack_view(store: Store, run_ids: Sequence[str]) -> tuple[pd.DataFrame, str] | None:
    """The attack chart's table for these runs (finished ones) and the primary metric's name, or
    ``None`` when the chart says nothing about them (no compromised client, one defence only)."""
    runs = [store.get_run(i) for i in run_ids]
    runs = [r for r in runs if r.get("status") == "finished"]
    if not robustness_report.comparable(runs):
        return None
    return robustness_report.attack_table(robustness_report.attack_rows(runs)), shared_primary(runs).label


def run_attack(run: dict[str, Any], rounds: pd.DataFrame) -> dict[str, Any] | None:
    """What a run's compromised clients did (``None`` without any): the attack and defence in
    words, the final attack success rate, and the share of combinations (Krum) or the scale
    (clipping) the defence gave attackers and honest clients, averaged over rounds."""
    config = run.get("config") or {}
    if not robustness_report.has_attack(config):
        return None

    def last(key: str) -> float | None:
        values = rounds[rounds["key"] == key].sort_values("round")["value"] if not rounds.empty else []
        return float(values.iloc[-1]) if len(values) else None

    def mean(key: str) -> float | None:
        values = rounds[rounds["key"] == key]["value"] if not rounds.empty else []
        return float(values.mean()) if len(values) else None

    return {
        "attack": robustness_report.attack_label(config),
        "defence": defence_label(config.get("defence")),
        "asr": last("backdoor_asr"),
        "kept_attackers": mean("defence_kept_attackers"),
        "kept_honest": mean("defence_kept_honest"),
        "scale_attackers": mean("defence_scale_attackers"),
        "scale_honest": mean("defence_scale_honest"),
    }
