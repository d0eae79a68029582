"""The messy multi-site clinical table (``engine/data/datasets/clinical.py``): FedMosaic's default
federated setup against a pooled scikit-learn logistic regression on the same split.

For each seed: the table is generated, split by hospital (natural partition: five clients), and
trained with

- ``lr``: scikit-learn, median imputation + standardisation + logistic regression, fitted on the
  pooled training rows of all five clients (what a central analyst would do);
- ``fedavg``: FedAvg over five MLP clients (standardize, Adam 0.005, 30 rounds, the defaults
  otherwise) with federated statistics - the default;
- ``fedavg, client stats``: the same with each client's own statistics (the data path before);
- ``centralized``: FedMosaic's pooled reference with federated statistics;
- ``local``: each hospital alone.

Every model is scored on the same global test set. FedMosaic's figures are taken at each
client's best validation round (never chosen on test data) when the run records them, else at
the final round (both are printed). Prints a markdown table of means over seeds and the paired
differences against ``lr``, for ``docs/data.md``.

Run: ``python -m bench.clinical [--seeds 0 1 2 3 4 5 6 7] [--rounds 30]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SITES = ("Eastbrook", "Mercy", "Northfield", "Riverbend", "Westgate")
SETUPS = {  # name: (strategy, data.statistics)
    "fedavg": ("fedavg", "federated"),
    "fedavg, client stats": ("fedavg", "client"),
    "centralized": ("centralized", "federated"),
    "local": ("local", "federated"),
}


def config(path: Path, seed: int, strategy: str, statistics: str, rounds: int) -> dict[str, Any]:
    """The default federated setup on the messy table: FedAvg-style roster of five MLP clients."""
    return {
        "name": f"clinical {strategy} {statistics} seed {seed}",
        "seed": seed,
        "rounds": rounds,
        "data": {
            "dataset": "csv",
            "path": str(path),
            "target": "outcome",
            "statistics": statistics,
            "partition": {"method": "natural", "column": "hospital"},
        },
        "clients": [
            {
                "name": n,
                "model": {"arch": "mlp"},
                "optimizer": "adam",
                "lr": 0.005,
                "preprocessing": "standardize",
            }
            for n in SITES
        ],
        "strategy": {"name": strategy},
    }


def pooled_logistic_regression(fed: Any) -> dict[str, float]:
    """scikit-learn on the clients' pooled training rows (raw features, NaN for missing), scored on
    the global test set: accuracy and balanced accuracy."""
    import torch
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = torch.cat([fed.data.x[torch.as_tensor(c.index)] for c in fed.clients]).numpy()
    y = torch.cat([c.train.y for c in fed.clients]).numpy()
    model = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=5000)
    )
    model.fit(x, y)
    gx, gy = fed.global_test.x.numpy(), fed.global_test.y.numpy()
    pred = model.predict(gx)
    return {"acc": float(accuracy_score(gy, pred)), "bacc": float(balanced_accuracy_score(gy, pred))}


def figures(final: dict[str, Any]) -> dict[str, float]:
    """Global-test accuracy and balanced accuracy: at the best validation round where recorded
    (``best_global_*``), and at the final round."""
    out = {}
    for metric in ("acc", "bacc"):
        last = final.get(f"global_{metric}_mean", float("nan"))
        out[f"final_{metric}"] = float(last)
        out[metric] = float(final.get(f"best_global_{metric}_mean", last))
    return out


def run_one(path: Path, seed: int, setup: str, rounds: int, root: Path) -> dict[str, float]:
    from engine.config import ExperimentConfig
    from engine.core.simulation import Simulation

    strategy, statistics = SETUPS[setup]
    cfg = ExperimentConfig.model_validate(config(path, seed, strategy, statistics, rounds))
    sim = Simulation(cfg, root=root)
    return figures(sim.run()["final"])


def measure(seeds: list[int], rounds: int) -> dict[str, list[dict[str, float]]]:
    from engine.data import DataConfig, build
    from engine.data.datasets.clinical import write_messy_clinical_csv

    results: dict[str, list[dict[str, float]]] = {"lr": [], **{s: [] for s in SETUPS}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for seed in seeds:
            path = write_messy_clinical_csv(root / f"clinical_{seed}.csv", seed)
            cfg = config(path, seed, "fedavg", "federated", rounds)
            fed = build(
                DataConfig.model_validate(cfg["data"]),
                ["standardize"] * len(SITES),
                [None] * len(SITES),
                seed,
                root,
            )
            results["lr"].append(pooled_logistic_regression(fed))
            for setup in SETUPS:
                t0 = time.perf_counter()
                results[setup].append(run_one(path, seed, setup, rounds, root))
                print(
                    f"seed {seed} {setup}: {results[setup][-1]} ({time.perf_counter() - t0:.1f} s)",
                    flush=True,
                )
    return results


def table(results: dict[str, list[dict[str, float]]]) -> str:
    lr = results["lr"]
    lines = [
        "| setup | accuracy | vs LR (points) | balanced accuracy | vs LR (points) | final-round accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        acc = np.array([r["acc"] for r in rows])
        bacc = np.array([r["bacc"] for r in rows])
        d_acc = 100 * (acc - np.array([r["acc"] for r in lr]))
        d_bacc = 100 * (bacc - np.array([r["bacc"] for r in lr]))
        final = np.array([r.get("final_acc", r["acc"]) for r in rows])
        vs = "" if name == "lr" else f"{d_acc.mean():+.1f} (min {d_acc.min():+.1f})"
        vs_b = "" if name == "lr" else f"{d_bacc.mean():+.1f} (min {d_bacc.min():+.1f})"
        lines.append(
            f"| {name} | {acc.mean():.3f} ± {acc.std():.3f} | {vs} | {bacc.mean():.3f} ± {bacc.std():.3f} "
            f"| {vs_b} | {final.mean():.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6, 7])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    results = measure(args.seeds, args.rounds)
    print(table(results))
    print(
        f"{len(args.seeds)} seeds, {args.rounds} rounds, {time.perf_counter() - t0:.0f} s; load average "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
