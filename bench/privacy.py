"""What does differential privacy cost? Accuracy against the privacy budget epsilon, for FedAvg and
two strategies for heterogeneous models, written to ``docs/privacy.md``.

Setup: digits (8x8), Dirichlet(1.0) label skew over 6 clients, 10 rounds of one local epoch, plain
SGD (lr 0.5, batch 32: DP-SGD's noise is better handled by SGD than by Adam here, see the page).
Every client trains with DP-SGD (clipping norm 1, Poisson sampling, noise calibrated so that the
run spends exactly the budget, delta = 1/n) or, for the reference, without DP.

- ``fedavg``: 6 MLP clients (FedAvg needs one architecture).
- ``lg_fedavg`` and ``fml``: 3 MLP + 3 CNN clients (LG-FedAvg shares the heads across
  architectures; FML trains a small shared MLP by mutual distillation next to each private model).

The figure is the app's headline: the primary metric (accuracy here) on each client's own test
data at its best validation round, mean over clients (``best_local_acc_mean``); mean and standard
deviation over seeds. The epsilon spent is read back from the run (the largest over clients).

Run: ``python -m bench.privacy [--seeds 0 1 2] [--epsilons 0.5 1 2 4 8] [--jobs 2] [--out docs/privacy.md]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

MLP = {"arch": "mlp", "hidden": 64}
CNN = {"arch": "cnn", "channels": 8}
TRAIN = {"optimizer": "sgd", "lr": 0.5, "batch_size": 32, "epochs": 1}
ROSTERS = {
    "fedavg": [{"name": "mlp", "count": 6, "model": MLP, **TRAIN}],
    "lg_fedavg": [
        {"name": "mlp", "count": 3, "model": MLP, **TRAIN},
        {"name": "cnn", "count": 3, "model": CNN, **TRAIN},
    ],
    "fml": [
        {"name": "mlp", "count": 3, "model": MLP, **TRAIN},
        {"name": "cnn", "count": 3, "model": CNN, **TRAIN},
    ],
}
ROUNDS = 10
SEEDS = (0, 1, 2)
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)
KEY = "best_local_acc_mean"


def config(strategy: str, epsilon: float | None, seed: int) -> dict[str, Any]:
    """One run of the table (``epsilon`` ``None``: without differential privacy)."""
    privacy = None if epsilon is None else {"clip_norm": 1.0, "target_epsilon": epsilon}
    return {
        "name": f"privacy {strategy} eps={epsilon} seed {seed}",
        "seed": seed,
        "rounds": ROUNDS,
        "checkpoint_every": 0,
        "data": {"dataset": "digits", "partition": {"method": "dirichlet", "alpha": 1.0}},
        "clients": [{**c, "privacy": privacy} for c in ROSTERS[strategy]],
        "strategy": {"name": strategy},
    }


def measure(job: tuple[str, float | None, int]) -> dict[str, Any]:
    """Run one cell; its headline figure, the epsilon spent and the seconds it took."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from engine.config import parse_config
    from engine.core.simulation import Simulation

    torch.set_num_threads(1)
    strategy, epsilon, seed = job
    started = time.perf_counter()
    sim = Simulation(parse_config(config(strategy, epsilon, seed)))
    final = sim.run()["final"]
    spent = max((r.metrics.get("epsilon_max", 0.0) for r in sim.history), default=0.0)
    return {
        "strategy": strategy,
        "epsilon": epsilon,
        "seed": seed,
        "value": float(final.get(KEY, math.nan)),
        "spent": spent if epsilon is not None else math.inf,
        "seconds": time.perf_counter() - started,
    }


def table(rows: list[dict[str, Any]], epsilons: list[float]) -> list[str]:
    out = [
        "| strategy | roster | " + " | ".join(f"ε = {e:g}" for e in epsilons) + " | no DP |",
        "|---|---|" + "---|" * (len(epsilons) + 1),
    ]
    for strategy in ROSTERS:
        roster = " + ".join(f"{c['count']} {c['model']['arch']}" for c in ROSTERS[strategy])
        cells = []
        for e in [*epsilons, None]:
            values = [r["value"] for r in rows if r["strategy"] == strategy and r["epsilon"] == e]
            if not values:
                cells.append("—")
                continue
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {sd:.3f}")
        out.append(f"| {strategy} | {roster} | " + " | ".join(cells) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--epsilons", type=float, nargs="+", default=list(EPSILONS))
    parser.add_argument("--strategies", nargs="+", default=list(ROSTERS), choices=list(ROSTERS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--out", default=None, help="write the table (Markdown) to this file's marked section"
    )
    args = parser.parse_args(argv)
    jobs = [(s, e, seed) for s in args.strategies for e in [*args.epsilons, None] for seed in args.seeds]
    started = time.time()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(measure, jobs))
    for r in rows:
        print(
            f"{r['strategy']:10s} eps={r['epsilon']!s:5s} seed={r['seed']} {KEY}={r['value']:.3f} "
            f"spent={r['spent']:.3f} ({r['seconds']:.0f} s)"
        )
    lines = table(rows, args.epsilons)
    over = [r for r in rows if r["epsilon"] is not None and r["spent"] > r["epsilon"] * (1 + 1e-9)]
    footer = (
        f"{len(rows)} runs, {time.time() - started:.0f} s with {args.jobs} job(s), load average "
        f"{load:.1f} at the start, {platform.processor() or platform.machine()}; the epsilon spent never "
        f"exceeded the budget ({len(over)} runs over)"
    )
    print("\n".join(lines))
    print(footer)
    if args.out:
        path = os.path.abspath(args.out)
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        start, end = "<!-- bench.privacy:start -->", "<!-- bench.privacy:end -->"
        block = "\n".join([start, *lines, "", footer, end])
        if start in text and end in text:
            text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
        else:
            text = text + "\n" + block + "\n"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
