"""Privacy figures of stored runs, for the pages, exports and model cards: who trained with which
mechanism and what each spent (:func:`client_privacy`, :func:`run_privacy`), the privacy-utility
points of a sweep (:func:`utility_points`), and launching such a sweep (:func:`sweep_designs`).

Epsilon is what the accountant reported after each round (``epsilon`` per client,
``server_epsilon`` per round); "no DP" runs are the reference at epsilon = infinity.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from engine.privacy.accountant import fmt_epsilon

NO_DP = math.inf
"""The epsilon of a run or client without differential privacy."""


def _last(frame: pd.DataFrame, key: str) -> float | None:
    part = frame[frame["key"] == key]
    if part.empty:
        return None
    value = float(part.sort_values("round")["value"].iloc[-1])
    return value if math.isfinite(value) else None


def client_privacy(
    config: Mapping[str, Any], client_metrics: pd.DataFrame, client_id: int
) -> dict[str, Any] | None:
    """One client's privacy settings and spend in a stored run: ``{"mechanism", "clip_norm",
    "noise_multiplier", "target_epsilon", "delta", "accountant", "epsilon", "sample_rate",
    "steps", "stopped_at"}`` (``None`` when it trained without DP-SGD). For model cards and exports.

    :param config: the run's config (``store.get_run(id)["config"]``).
    :param client_metrics: ``store.client_metrics(run_id)``.
    """
    from engine.config import parse_config

    roster = parse_config(dict(config)).roster()
    if not 0 <= client_id < len(roster) or roster[client_id].privacy is None:
        return None
    p = roster[client_id].privacy
    mine = (
        client_metrics[client_metrics["client_id"] == client_id]
        if not client_metrics.empty
        else client_metrics
    )
    spent = mine[mine["key"] == "budget_spent"] if not mine.empty else mine
    stopped = spent[spent["value"] > 0]["round"] if not spent.empty else []
    steps = mine[mine["key"] == "dp_steps"]["value"].sum() if not mine.empty else 0
    return {
        "mechanism": "DP-SGD",
        "clip_norm": p.clip_norm,
        "noise_multiplier": _last(mine, "dp_noise_multiplier") if not mine.empty else p.noise_multiplier,
        "target_epsilon": p.target_epsilon,
        "delta": _last(mine, "dp_delta") if not mine.empty else p.delta,
        "accountant": p.accountant,
        "epsilon": _last(mine, "epsilon") if not mine.empty else None,
        "sample_rate": _last(mine, "dp_sample_rate") if not mine.empty else None,
        "steps": int(steps),
        "stopped_at": int(min(stopped)) if len(stopped) else None,
    }


def run_privacy(config: Mapping[str, Any], round_metrics: pd.DataFrame) -> dict[str, Any]:
    """The run's server-side privacy: ``server_dp`` (settings plus the user-level ``epsilon``
    spent) and ``secure_aggregation`` (settings plus failed rounds and recovered dropouts), each
    ``None`` when off."""
    out: dict[str, Any] = {"server_dp": None, "secure_aggregation": None}
    dp = config.get("server_dp")
    if dp:
        out["server_dp"] = {
            **dp,
            "noise_multiplier": _last(round_metrics, "server_noise_multiplier"),
            "epsilon": _last(round_metrics, "server_epsilon"),
        }
    sa = config.get("secure_aggregation")
    if sa:
        failed = round_metrics[round_metrics["key"] == "secagg_failed"]
        recovered = round_metrics[round_metrics["key"] == "secagg_recovered"]
        out["secure_aggregation"] = {
            **sa,
            "failed_rounds": int((failed["value"] > 0).sum()),
            "recovered_dropouts": int(recovered["value"].sum()),
        }
    return out


def card_lines(privacy: Mapping[str, Any] | None) -> list[str]:
    """Sentences for a model card's privacy section from :func:`client_privacy` (or
    :meth:`engine.privacy.ledger.ClientLedger.summary`); empty without DP-SGD."""
    if not privacy:
        return []
    eps = privacy.get("epsilon")
    lines = [
        f"Trained with DP-SGD: ({fmt_epsilon(eps)}, {privacy.get('delta', 0):.3g})-differential privacy for "
        f"each record of this client's training data ({str(privacy.get('accountant', 'rdp')).upper()} "
        f"accountant, Opacus), over {privacy.get('steps', 0)} step(s).",
        f"Each record's gradient was clipped to norm {privacy.get('clip_norm'):g} and Gaussian noise of "
        f"{privacy.get('noise_multiplier') or 0:.3g} x that norm added per step; batches were "
        f"Poisson-sampled at rate {privacy.get('sample_rate') or 0:.3g}.",
    ]
    budget = privacy.get("target_epsilon", privacy.get("budget"))
    if budget is not None:
        lines.append(
            f"Privacy budget: epsilon {fmt_epsilon(budget)}"
            + (
                f"; spent, training stopped at round {privacy['stopped_at']}."
                if privacy.get("stopped_at")
                else "."
            )
        )
    return lines


def utility_points(
    runs: Sequence[Mapping[str, Any]], round_metrics: pd.DataFrame, client_metrics: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per run for the privacy-utility chart: ``run_id, label, strategy, variant, seed,
    epsilon`` (the largest any DP-SGD client spent, or the server's user-level epsilon; infinity
    without DP) and ``value`` (the run's headline: the primary metric,
    :func:`engine.core.metrics.headline`), plus ``metric`` (its label)."""
    from engine.core.metrics import headline, run_primary

    rows = []
    for run in runs:
        rid = run["id"]
        mine = round_metrics[round_metrics["run_id"] == rid] if not round_metrics.empty else round_metrics
        figures = (
            {k: float(v) for k, v in mine.sort_values("round").groupby("key")["value"].last().items()}
            if not mine.empty
            else {}
        )
        metric = run_primary(run, set(figures))
        key, value = headline(
            run.get("summary") if isinstance(run.get("summary"), Mapping) else figures, metric
        )
        if value is None:
            key, value = headline(figures, metric)
        eps = [
            figures[k]
            for k in ("epsilon_max", "server_epsilon")
            if k in figures and math.isfinite(figures[k])
        ]
        config = run.get("config") if isinstance(run.get("config"), Mapping) else {}
        strategy = str((config.get("strategy") or {}).get("name", run.get("strategy", "")))
        rows.append(
            {
                "run_id": rid,
                "label": str(run.get("name") or rid),
                "strategy": strategy,
                "variant": run.get("variant"),
                "seed": run.get("seed"),
                "epsilon": max(eps) if eps else NO_DP,
                "value": value,
                "metric": metric.label,
            }
        )
    return pd.DataFrame(
        rows, columns=["run_id", "label", "strategy", "variant", "seed", "epsilon", "value", "metric"]
    )


def client_points(
    config: Mapping[str, Any], client_metrics: pd.DataFrame, roster: pd.DataFrame, metric_key: str
) -> pd.DataFrame:
    """One row per client of one run: ``client_id, name, arch, epsilon`` (spent; infinity
    without DP-SGD), ``budget`` and ``value`` (its last ``metric_key``)."""
    from engine.config import parse_config

    specs = parse_config(dict(config)).roster()
    rows = []
    for cid, spec in enumerate(specs):
        mine = client_metrics[client_metrics["client_id"] == cid]
        eps = _last(mine, "epsilon") if spec.privacy is not None else None
        people = roster[roster["client_id"] == cid] if not roster.empty else roster
        rows.append(
            {
                "client_id": cid,
                "name": spec.name,
                "arch": str(people["arch"].iloc[0]) if not people.empty else spec.arch,
                "epsilon": eps if eps is not None else NO_DP,
                "budget": spec.privacy.target_epsilon if spec.privacy is not None else None,
                "value": _last(mine, metric_key),
            }
        )
    return pd.DataFrame(rows, columns=["client_id", "name", "arch", "epsilon", "budget", "value"])


# ---- sweeps -------------------------------------------------------------------------------------------
def with_budget(design: Mapping[str, Any], epsilon: float | None) -> dict[str, Any]:
    """A copy of ``design`` that spends ``epsilon`` over the run, the noise calibrated to it: its
    server-side DP when it has that and no DP-SGD client, else its DP-SGD clients (every client
    when none has DP-SGD). ``None``: no differential privacy at all, the sweep's reference."""
    out = copy.deepcopy(dict(design))
    clients = out.get("clients") or []
    private = [c for c in clients if c.get("privacy")]
    if epsilon is not None and out.get("server_dp") and not private:
        dp = dict(out["server_dp"])
        dp.pop("noise_multiplier", None)
        dp["target_epsilon"] = float(epsilon)
        out["server_dp"] = dp
        return out
    for c in clients:
        if epsilon is None:
            c["privacy"] = None
        elif c in private or not private:
            p = dict(c.get("privacy") or {})
            p.pop("noise_multiplier", None)
            p["target_epsilon"] = float(epsilon)
            p.setdefault("clip_norm", 1.0)
            c["privacy"] = p
    if epsilon is None:
        out["server_dp"] = None
    return out


def sweep_designs(
    design: Mapping[str, Any], epsilons: Sequence[float | None]
) -> list[tuple[str, dict[str, Any]]]:
    """``(label, design)`` per budget of a privacy-utility sweep (``None``: the no-DP reference)."""
    return [("no DP" if e is None else f"ε={e:g}", with_budget(design, e)) for e in epsilons]


def parse_epsilons(text: str) -> list[float | None]:
    """Budgets from ``"1, 2, 4, 8, none"`` (``none``/``inf``/``∞``: the no-DP reference).

    :raises ConfigError: a value that is not a positive number.
    """
    from engine.errors import ConfigError

    out: list[float | None] = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part in ("none", "inf", "∞", "no dp", "off"):
            out.append(None)
            continue
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(
                f"privacy budgets: '{part[:20]}' is not a number; write budgets like 1, 2, 4, 8, none"
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"privacy budgets must be positive numbers (got {part[:20]})")
        out.append(value)
    if not out:
        raise ConfigError("give at least one privacy budget, e.g. 1, 4, none")
    if len(out) > 12:
        raise ConfigError(f"{len(out)} budgets is too many for one sweep; use at most 12")
    return list(dict.fromkeys(out))


def launch_sweep(
    design: Mapping[str, Any],
    epsilons: Sequence[float | None],
    seeds: Sequence[int],
    mgr: Any,
    *,
    strategies: Sequence[str] = (),
    name: str | None = None,
) -> tuple[str, list[str]]:
    """Launch a privacy-utility sweep through the run manager ``mgr``: the design once per budget
    (:func:`with_budget`), strategy and seed, as one group whose runs of one budget and strategy
    share a ``variant`` label ("fedavg · ε=4"). Every member is validated before any is queued.

    :returns: ``(group_id, run_ids)``.
    :raises ConfigError: a member is invalid (names the budget and what is wrong); nothing is launched.
    """
    import uuid

    from engine.config import parse_config
    from engine.errors import ConfigError, FedMosaicError
    from engine.validate import check

    names = list(strategies) or [str((design.get("strategy") or {}).get("name", "fedavg"))]
    members = []
    for label, member in sweep_designs(design, epsilons):
        for strategy in names:
            spec = dict(member.get("strategy") or {})
            if spec.get("name") != strategy:
                spec = {"name": strategy}
            for seed in seeds:
                try:
                    config = parse_config({**member, "strategy": spec, "seed": int(seed)})
                    check(config)
                except FedMosaicError as exc:
                    raise ConfigError(f"privacy sweep, {strategy} at {label}: {exc}") from None
                members.append((f"{strategy} · {label}", int(seed), config))
    group_id = uuid.uuid4().hex[:12]
    title = name or str(design.get("name") or "privacy sweep")
    ids = [
        mgr.submit(
            config,
            name=f"{title} · {variant} · seed {seed}",
            group_id=group_id,
            variant=variant,
            tags=["privacy sweep"],
        )
        for variant, seed, config in members
    ]
    return group_id, ids
