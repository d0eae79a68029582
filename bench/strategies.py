"""Every registered strategy on one heterogeneous split, over several seeds: how well the clients'
models do on the global test set and on their own local test splits, how evenly, at what
communication cost and how long it takes.

Setup: digits, Dirichlet(0.3) label skew over 10 clients — 4 MLP (SGD), 3 CNN (Adam), 3 GRU (Adam) —
a public/proxy set of 10% for the knowledge-distillation strategies, 1 local epoch per round.
Strategies that need one architecture run an all-MLP roster on the *same* split (same seed, same
10 clients, same data; the partition fingerprints are checked to be equal) and are labelled
"all-mlp"; ``local`` and ``centralized`` are run on both rosters so each group has its floor and
ceiling.

Figures (final round, then mean ± std over seeds):

- global acc: mean over clients of each client's model on the global test set;
- personal acc: mean over clients of each client's model on its own local test split;
- vs local: personal acc minus that of ``local`` on the same roster and seed (a paired
  difference, so the split's luck cancels), mean ± std over seeds;
- client std: standard deviation of personal acc across clients (fairness; lower is more even);
- up / down MB: bytes every client sent / received over the whole run, summed, as the engine
  counted them from the tensors exchanged;
- wall s: seconds for the whole run, set-up included, on one torch thread;
- primary, best rounds: what the app headlines — the experiment's primary metric (``auto``: balanced
  accuracy when some client is over 70% one class, else accuracy; the page names the one chosen)
  on each client's own test split at its best validation round, mean over clients;
  **verdict vs local**: the app's paired verdict (:mod:`engine.reporting.verdict`): that figure minus
  ``local``'s, client by client on the same split and seed, mean over seeds with a 95% t-interval,
  and how many clients gain.

Run: ``python -m bench.strategies [--rounds 20] [--seeds 0 1 2] [--out docs/strategies.md]``.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.personalised import late_mean

CLIENTS = [
    {
        "name": "mlp",
        "count": 4,
        "model": {"arch": "mlp", "hidden": 128},
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "batch_size": 16,
    },
    {
        "name": "cnn",
        "count": 3,
        "model": {"arch": "cnn", "channels": 16},
        "optimizer": "adam",
        "lr": 0.003,
        "batch_size": 16,
    },
    {
        "name": "gru",
        "count": 3,
        "model": {"arch": "gru", "hidden": 64},
        "optimizer": "adam",
        "lr": 0.005,
        "batch_size": 16,
    },
]
ALL_MLP = [
    {
        "name": "mlp",
        "count": 10,
        "model": {"arch": "mlp", "hidden": 128},
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "batch_size": 16,
    }
]
MLP_WIDTHS = [
    {**ALL_MLP[0], "name": f"mlp-w{w:g}", "count": n, "model": {"arch": "mlp", "hidden": 128, "width": w}}
    for n, w in ((4, 1.0), (3, 0.5), (3, 0.25))
]
"""HeteroFL's roster: the all-MLP clients at three widths (on identical widths it is FedAvg)."""
OWN_ROSTER = {"heterofl": ("mlp-widths", MLP_WIDTHS)}
DATA = {"dataset": "digits", "partition": {"method": "dirichlet", "alpha": 0.3}, "public_fraction": 0.1}
COLUMNS = ("global_acc_mean", "local_acc_mean", "local_acc_std", "up_mb", "down_mb", "wall_s")


LAST: dict[str, Any] = {}
"""The app's headline figures of the last :func:`run_one` (kept out of its float table)."""


@dataclass
class Row:
    """One strategy on one roster, over seeds."""

    strategy: str
    roster: str
    family: str
    runs: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    fingerprints: set[str] = field(default_factory=set)
    best: dict[int, dict[int, float]] = field(default_factory=dict)
    """Per seed, each client's primary metric on its own test split at its best validation round."""
    primary: str = ""


def config(
    strategy: str, clients: list[dict[str, Any]], seed: int, rounds: int, epochs: int
) -> dict[str, Any]:
    """The experiment config of one benchmark run."""
    return {
        "name": f"bench-{strategy}",
        "seed": seed,
        "rounds": rounds,
        "eval_every": 2,
        "data": DATA,
        "clients": [{**c, "epochs": epochs} for c in clients],
        "strategy": {"name": strategy},
        "checkpoint_every": 0,
    }


def run_one(cfg: dict[str, Any]) -> tuple[dict[str, float], str]:
    """Run one config in memory; return its final figures and its partition fingerprint (and, in
    :data:`LAST`, what the app headlines: the primary metric per client at its best round)."""
    from engine.config import parse_config
    from engine.core.simulation import Simulation

    start = time.perf_counter()
    sim = Simulation(parse_config(cfg))
    sim.run()
    wall = time.perf_counter() - start
    last = sim.history[-1].metrics
    LAST.update(
        primary=sim.primary.key,
        best={c: float(b["scores"][f"local_{sim.primary.key}"]) for c, b in sim.best.items()},
    )
    return {
        "global_acc_mean": last["global_acc_mean"],
        "local_acc_mean": last["local_acc_mean"],
        "late_local_acc_mean": late_mean(sim.history, "local_acc_mean", cfg["rounds"]),
        "local_acc_std": last["local_acc_std"],
        "up_mb": last["cum_bytes_up"] / 1e6,
        "down_mb": last["cum_bytes_down"] / 1e6,
        "wall_s": wall,
    }, sim.federation.fingerprint


def plan(names: list[str], rounds: int, epochs: int) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(strategy, roster label, roster) for every run: the mixed roster where the compatibility
    check allows it, else the all-MLP roster; references on both."""
    from engine.config import parse_config
    from engine.strategies import STRATEGIES
    from engine.validate import compatibility

    mixed = parse_config(config("fedavg", CLIENTS, 0, rounds, epochs))
    reasons = compatibility(mixed, "classification")
    out = []
    for name in names:
        if name in OWN_ROSTER:
            out.append((name, *OWN_ROSTER[name]))
        elif STRATEGIES.get(name).family == "reference":
            out += [(name, "mixed", CLIENTS), (name, "all-mlp", ALL_MLP)]
            out += [(name, *OWN_ROSTER[n]) for n in OWN_ROSTER if n in names]
        elif reasons[name] is None:
            out.append((name, "mixed", CLIENTS))
        else:
            out.append((name, "all-mlp", ALL_MLP))
    return out


def cell(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def fmt(values: list[float], digits: int = 3) -> str:
    """``mean ± std`` (std over seeds; omitted for one seed)."""
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def vs_local(row: Row, rows: list[Row], key: str = "local_acc_mean") -> str:
    """Personal accuracy (``key``) of ``row`` minus ``local``'s on the same roster, paired by seed
    (``mean ± std`` over seeds, signed); ``—`` for the references or without a local row."""
    if row.family == "reference" or not row.runs:
        return "—"
    local = next((r for r in rows if r.strategy == "local" and r.roster == row.roster and r.runs), None)
    if local is None:
        return "—"
    diffs = [a[key] - b[key] for a, b in zip(row.runs, local.runs, strict=False)]
    text = fmt(diffs)
    return text if text.startswith("-") else f"+{text}"


def app_columns(row: Row, rows: list[Row]) -> tuple[str, str]:
    """The app's headline figure (mean over seeds) and its verdict against ``local`` on the same
    roster (``—`` for the references)."""
    from engine.core.metrics import METRICS
    from engine.reporting.verdict import paired_verdict

    if not row.best:
        return "—", "—"
    headline = fmt([statistics.fmean(v.values()) for v in row.best.values() if v])
    local = next((r for r in rows if r.strategy == "local" and r.roster == row.roster and r.best), None)
    if row.family == "reference" or local is None:
        return headline, "—"
    v = paired_verdict(row.best, local.best, METRICS[row.primary], strategy=row.strategy)
    iv = v.interval
    ci = f" ({100 * iv.low:+.1f} to {100 * iv.high:+.1f})" if iv.defined else ""
    word = {"better": "better", "worse": "worse", "noise": "within noise"}.get(v.outcome, "?")
    return headline, f"{100 * iv.mean:+.1f}{ci}, {word}; {v.gainers}/{len(v.clients)} gain"


def report(rows: list[Row], args: argparse.Namespace, command: str, elapsed: float) -> str:
    """The markdown page."""
    import numpy
    import sklearn

    from engine.core.metrics import METRICS

    metric = METRICS[next((r.primary for r in rows if r.primary), "acc")]
    lines = [
        "# Strategies compared",
        "",
        "Generated by:",
        "",
        "```",
        command,
        "```",
        "",
        f"Digits (8x8 images, 10 classes), Dirichlet(α = 0.3) label skew over 10 clients, global test "
        f"set 20%, "
        f"public/proxy set 10%, local test split 20% of each client's share. **Mixed roster**: 4 MLP "
        f"(hidden 128, SGD lr 0.05 momentum 0.9), 3 CNN (16 channels, Adam lr 0.003), 3 GRU (hidden 64, "
        f"Adam lr 0.005); batch 16, {args.epochs} local epoch(s) per round, {args.rounds} rounds, all "
        f"clients "
        f"every round. Strategies that need one architecture run the **all-mlp** roster (10 MLP clients as "
        f"above) on the same split; heterofl runs those 10 MLP clients at widths 1 (4 clients), 0.5 (3) "
        f"and 0.25 (3) (**mlp-widths**), with the references on that roster too. Seeds: "
        f"{', '.join(map(str, args.seeds))}; figures are the final round's, mean ± standard deviation over "
        f"seeds. The clients of one model start from one draw (`init: shared`, the default).",
        "",
        "- **global acc**: mean over clients of each client's model on the global test set;",
        "- **personal acc**: mean over clients of each client's model on its own local test split;",
        "- **vs local**: personal acc minus `local`'s on the same roster and seed (paired), mean ± std "
        "over seeds; each client's local test split holds 2-60 samples (about 230 in all), so "
        "differences of a point or two are within run-to-run noise;",
        "- **vs local, late**: the same difference for personal acc averaged over the evaluated rounds of "
        "the second half (every second round from the middle on; a less noisy estimate than one round);",
        "- **client std**: standard deviation of personal acc across clients (lower = more even);",
        "- **up / down MB**: bytes sent by / to all clients over the whole run (counted by the engine "
        "from the tensors exchanged);",
        "- **wall s**: seconds per run, set-up included, one torch thread on a shared 2-core machine "
        "(compare within this table only);",
        f"- **{metric.label}, best rounds**: what the app headlines, the primary metric (`auto` chose "
        f"{metric.label} here) on each client's own test split at its best validation round (15% of its "
        f"training rows validate), mean over clients, mean ± std over seeds;",
        "- **verdict vs local**: the app's paired verdict, that figure minus `local`'s client by client "
        "on the same roster, split and seed, in points: mean over seeds (95% t-interval), whether the "
        "interval clears zero, and how many clients gain.",
        "",
        f"| strategy | roster | family | {metric.label}, best rounds | verdict vs local | global acc "
        "| personal acc | vs local | vs local, late | client std | up MB | down MB | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.error:
            lines.append(f"| {row.strategy} | {row.roster} | {row.family} | failed: {row.error} ||||||||")
            continue
        cells = [
            fmt(
                [r[c] for r in row.runs],
                1 if c == "wall_s" else 3 if c.endswith("acc_mean") or c.endswith("std") else 2,
            )
            for c in COLUMNS
        ]
        cells[2:2] = [vs_local(row, rows), vs_local(row, rows, "late_local_acc_mean")]
        cells[0:0] = list(app_columns(row, rows))
        lines.append(f"| {row.strategy} | {row.roster} | {row.family} | " + " | ".join(cells) + " |")
    from engine.strategies import STRATEGIES

    lines += [
        "",
        "Compare each strategy with the `local` (floor) and `centralized` (ceiling) rows of its "
        "own roster; rows of different rosters are not comparable.",
        "",
        "The learning check of the personalised strategies (tests/test_learning.py) runs one seed and 12 "
        "rounds of the federation whose multi-seed measurement (2 local epochs, 30 rounds, no public set, "
        "seeds 3-7) is [personalised.md](personalised.md).",
        "",
        f"Total benchmark time measured at load average {__import__('os').getloadavg()[1]:.1f} "
        f"(5 min) on {__import__('os').cpu_count()} cores.",
    ]
    lines += [
        "",
        "## What each strategy shares",
        "",
        "| strategy | family | mixed architectures | needs public set | what it does | paper |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted({r.strategy for r in rows}):
        cls = STRATEGIES.get(name)
        paper = f"[{cls.paper}]({cls.url})" if cls.url else cls.paper
        lines.append(
            f"| {name} | {cls.family} | {'yes' if not cls.same_architecture else 'no'} | "
            f"{'yes' if cls.needs_public else 'no'} | {cell(cls.description)} | {cell(paper)} |"
        )
    included = sorted({r.strategy for r in rows})
    fingerprints = {fp for r in rows for fp in r.fingerprints}
    lines += [
        "",
        f"Strategies included ({len(included)}): {', '.join(included)}.",
        "",
        (
            "Every roster was dealt the same client splits (one partition fingerprint per seed)."
            if len(fingerprints) == len(args.seeds)
            else f"WARNING: {len(fingerprints)} partition fingerprints for {len(args.seeds)} seed(s): the "
            f"rosters did not get the same splits."
        ),
        "",
        f"Total benchmark time {elapsed / 60:.1f} min. torch {torch.__version__}, numpy {numpy.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}, {platform.machine()}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.strategies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="communication rounds per run (default 20)")
    parser.add_argument("--epochs", type=int, default=1, help="local epochs per round (default 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds (default 0 1 2)")
    parser.add_argument(
        "--strategies", nargs="+", default=None, help="only these (default: every registered one)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/strategies.md"), help="markdown file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from engine.strategies import STRATEGIES

    names = args.strategies or STRATEGIES.names()
    runs = plan(names, args.rounds, args.epochs)
    rows: list[Row] = []
    run_one(config("local", ALL_MLP, 0, 1, 1))  # warm-up: load and cache the dataset outside the timings
    started = time.perf_counter()
    total = len(runs) * len(args.seeds)
    done = 0
    for name, label, clients in runs:
        row = Row(name, label, STRATEGIES.get(name).family)
        for seed in args.seeds:
            done += 1
            try:
                figures, fingerprint = run_one(config(name, clients, seed, args.rounds, args.epochs))
            except Exception as exc:  # noqa: BLE001 - one broken strategy must not sink the table
                row.error = f"{type(exc).__name__}: {exc}".replace("|", "/")[:200]
                print(f"[{done}/{total}] {name} ({label}) seed {seed}: FAILED {row.error}", file=sys.stderr)
                break
            row.runs.append(figures)
            row.fingerprints.add(f"{seed}:{fingerprint}")
            row.best[seed], row.primary = LAST["best"], LAST["primary"]
            print(
                f"[{done}/{total}] {name} ({label}) seed {seed}: personal {figures['local_acc_mean']:.3f} "
                f"global {figures['global_acc_mean']:.3f} {figures['wall_s']:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        rows.append(row)
    order = {"mixed": 0, "all-mlp": 1}
    rows.sort(key=lambda r: (order.get(r.roster, 2), r.family == "reference", r.strategy))
    elapsed = time.perf_counter() - started
    seeds = " ".join(map(str, args.seeds))
    only = f" --strategies {' '.join(args.strategies)}" if args.strategies else ""
    command = (
        f".venv/bin/python -m bench.strategies --rounds {args.rounds} --epochs {args.epochs} "
        f"--seeds {seeds}{only} --out {args.out}"
    )
    text = report(rows, args, command, elapsed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    failed = [r.strategy for r in rows if r.error]
    bad = [r.strategy for r in rows for run in r.runs for v in run.values() if not math.isfinite(v)]
    return 1 if failed or bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
