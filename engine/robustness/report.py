"""The attack chart: for runs that differ in their defence, the primary metric and the backdoor's
attack success rate per defence (mean over seeds, with the spread), beside the same federation
without an attack where one was run.

- :func:`attack_rows` — one row per run: strategy, defence, attack, seed, primary metric (the
  headline of :mod:`engine.core.metrics`) and attack success rate (final round).
- :func:`attack_table` — the rows grouped by strategy, defence and attack: means, standard
  deviations and seed counts (what ``docs/robustness.md`` prints).
- :func:`attack_chart` — the table as grouped bars: the primary metric (higher is better) and the
  attack success rate (lower is better) per defence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from engine.robustness.adversaries import ASR
from engine.robustness.design import defence_label

NO_ATTACK = "no attack"
"""The attack column of a run whose roster has no compromised client."""


def attack_label(config: Mapping[str, Any]) -> str:
    """The attacks of a config's roster in words: ``2 of 10 clients: Label flipping``."""
    from engine.robustness.attacks import ATTACKS

    total = 0
    attacks: dict[str, int] = {}
    for c in config.get("clients") or []:
        count = int(c.get("count", 1) or 1)
        total += count
        adversary = c.get("adversary")
        if adversary:
            name = adversary if isinstance(adversary, str) else str(adversary.get("attack"))
            title = ATTACKS.get(name).title if name in ATTACKS else name
            attacks[title] = attacks.get(title, 0) + count
    if not attacks:
        return NO_ATTACK
    n = sum(attacks.values())
    return f"{n} of {total} clients: {', '.join(attacks)}"


def has_attack(config: Mapping[str, Any] | None) -> bool:
    """Whether a config's roster has a compromised client."""
    return any(isinstance(c, Mapping) and c.get("adversary") for c in (config or {}).get("clients") or [])


def attack_rows(runs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run (a stored run: ``config``, ``summary``, ...): ``run_id, strategy, defence,
    attack, seed, metric, metric_label, primary, asr``."""
    from engine.core.metrics import headline, run_primary

    rows = []
    for run in runs:
        config = run.get("config") if isinstance(run.get("config"), Mapping) else {}
        summary = run.get("summary") if isinstance(run.get("summary"), Mapping) else {}
        metric = run_primary(run)
        key, value = headline(summary, metric)
        asr = summary.get(ASR)
        rows.append(
            {
                "run_id": run.get("id"),
                "strategy": str((config.get("strategy") or {}).get("name", "")),
                "defence": defence_label(config.get("defence")),
                "attack": attack_label(config),
                "seed": config.get("seed"),
                "metric": metric.key,
                "metric_label": metric.label,
                "key": key,
                "primary": value,
                "asr": float(asr) if isinstance(asr, (int, float)) and math.isfinite(asr) else None,
                "created": run.get("created_at") or 0.0,
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "strategy",
            "defence",
            "attack",
            "seed",
            "metric",
            "metric_label",
            "key",
            "primary",
            "asr",
            "created",
        ],
    )
    return frame.sort_values("created", kind="stable").drop(columns="created").reset_index(drop=True)


def attack_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, attack and defence: ``primary_mean, primary_std, asr_mean, asr_std, seeds``
    (std 0 for one seed); unattacked rows first, then no defence, then the defences in the order
    their runs were launched."""
    if rows.empty:
        return pd.DataFrame(
            columns=[
                "strategy",
                "attack",
                "defence",
                "primary_mean",
                "primary_std",
                "asr_mean",
                "asr_std",
                "seeds",
            ]
        )
    grouped = rows.groupby(["strategy", "attack", "defence"], sort=False)
    out = grouped.agg(
        primary_mean=("primary", "mean"),
        primary_std=("primary", "std"),
        asr_mean=("asr", "mean"),
        asr_std=("asr", "std"),
        seeds=("run_id", "count"),
    ).reset_index()
    out[["primary_std", "asr_std"]] = out[["primary_std", "asr_std"]].fillna(0.0)
    out.loc[out["asr_mean"].isna(), "asr_std"] = float("nan")
    from engine.robustness.design import defence_label as label

    undefended = label("none")
    order = {d: i + (0 if d == undefended else 10_000) for i, d in enumerate(dict.fromkeys(rows["defence"]))}
    out["_clean"] = out["attack"] != NO_ATTACK
    out["_order"] = out["defence"].map(order)
    return (
        out.sort_values(["strategy", "_clean", "_order"])
        .drop(columns=["_clean", "_order"])
        .reset_index(drop=True)
    )


def comparable(runs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the attack chart says something about these runs: at least one has a compromised
    client, and they differ in defence or some have no attack (a clean reference)."""
    configs = [r.get("config") if isinstance(r.get("config"), Mapping) else {} for r in runs]
    if not any(has_attack(c) for c in configs):
        return False
    defences = {defence_label(c.get("defence")) for c in configs}
    return len(defences) > 1 or any(not has_attack(c) for c in configs)


def attack_chart(table: pd.DataFrame, metric_label: str = "accuracy", *, title: str | None = None) -> Any:
    """Grouped bars per defence: the primary metric and, where a backdoor was measured, the attack
    success rate (mean over seeds; error bars: one standard deviation). Runs without an attack
    appear as their own bar group (*no attack*), the level a defence should keep."""
    import plotly.graph_objects as go

    from engine.reporting.charts.style import GAIN, LOSS, _empty, _layout
    from engine.sanitize import chart_text

    if table.empty:
        return _empty("No finished runs with compromised clients to compare yet.", title)
    several = table["strategy"].nunique() > 1
    labels = [
        (f"{chart_text(r.strategy)} · " if several else "")
        + (NO_ATTACK if r.attack == NO_ATTACK else chart_text(r.defence))
        for r in table.itertuples()
    ]
    fig = go.Figure()
    fig.add_bar(
        x=labels,
        y=table["primary_mean"],
        name=f"{metric_label} (higher is better)",
        marker_color=GAIN,
        error_y={"type": "data", "array": table["primary_std"], "visible": bool((table["seeds"] > 1).any())},
        text=[f"{v:.3f}" if pd.notna(v) else "" for v in table["primary_mean"]],
        textposition="outside",
        customdata=table["seeds"],
        hovertemplate="%{x}<br>"
        + chart_text(metric_label)
        + " %{y:.3f}<br>%{customdata} seed(s)<extra></extra>",
    )
    if table["asr_mean"].notna().any():
        fig.add_bar(
            x=labels,
            y=table["asr_mean"],
            name="attack success rate (lower is better)",
            marker_color=LOSS,
            error_y={
                "type": "data",
                "array": table["asr_std"].fillna(0),
                "visible": bool((table["seeds"] > 1).any()),
            },
            text=[f"{v:.3f}" if pd.notna(v) else "" for v in table["asr_mean"]],
            textposition="outside",
            hovertemplate="%{x}<br>attack success rate %{y:.3f}<extra></extra>",
        )
    attacks = [a for a in dict.fromkeys(table["attack"]) if a != NO_ATTACK]
    title = title or f"Defences against {chart_text('; '.join(attacks)) if attacks else 'the attack'}"
    _layout(fig, title, "defence", f"{metric_label} / attack success rate", height=440)
    fig.update_layout(barmode="group", hovermode="closest")
    values = pd.concat([table["primary_mean"], table["asr_mean"]]).dropna()
    if len(values) and values.min() >= 0 and values.max() <= 1:  # accuracies and rates: room for the labels
        fig.update_yaxes(range=[0, 1.12])
    return fig
