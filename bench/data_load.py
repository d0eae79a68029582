"""Data loading: a 100,000-row x 50-column CSV loaded and split into 100 clients.

The CSV is generated in a temporary folder: a ``site`` column with 100 values (the natural
partition), 40 numeric columns (1% missing), 4 categorical, 2 boolean (yes/no), a date/time
column, an identifier and a binary target - the mix the type inference has to handle. Timed:
``inspect_csv`` (what the Data page runs on an upload), ``load_dataset`` (read, infer, impute,
encode; uncached), and ``build`` for 100 clients with standardisation from federated
statistics (medians and moments aggregated from the clients' training splits), for the
``natural`` and ``dirichlet`` partitions.

Run: ``python -m bench.data_load [--rows 100000] [--clients 100] [--repeats 3]``. Prints a markdown
table (best of ``repeats`` per step) to paste into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_csv(path: Path, rows: int, sites: int, seed: int = 0) -> None:
    """Write the benchmark CSV (50 columns) to ``path``."""
    rng = np.random.default_rng(seed)
    sites_col = np.char.add("site_", rng.integers(0, sites, rows).astype(str))
    frame: dict[str, object] = {"record_id": np.arange(rows), "site": sites_col}
    start = np.datetime64("2024-01-01T00:00")
    frame["when"] = (start + rng.integers(0, 365 * 24 * 60, rows).astype("timedelta64[m]")).astype(str)
    numeric = rng.normal(size=(rows, 40)).round(4)
    numeric[rng.random((rows, 40)) < 0.01] = np.nan
    for j in range(40):
        frame[f"x{j}"] = numeric[:, j]
    for j in range(4):
        frame[f"cat{j}"] = rng.choice([f"level{k}" for k in range(5 + j)], rows)
    for j in range(2):
        frame[f"flag{j}"] = rng.choice(["yes", "no"], rows)
    logit = numeric[:, 0] - numeric[:, 1] + (frame["cat0"] == "level1")
    frame["target"] = np.where(np.nan_to_num(logit) + rng.normal(0, 1, rows) > 0, "pos", "neg")
    pd.DataFrame(frame).to_csv(path, index=False)


def best_of(repeats: int, fn) -> tuple[str, object]:
    """``"wall s (CPU s)"`` of the fastest of ``repeats`` calls, and the last result. CPU time is the
    process's own work: on a busy machine it moves much less than the wall time."""
    times, result = [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = min(times)
    return f"{wall:.2f} s ({cpu:.2f} s CPU)", result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from engine.data import DATASETS, DataConfig, build, federation, inspect_csv

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "bench.csv"
        t0 = time.perf_counter()
        make_csv(path, args.rows, args.clients)
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        natural = DataConfig(
            dataset="csv", path=str(path), target="target", partition={"method": "natural", "column": "site"}
        )
        dirichlet = natural.model_copy(
            update={"partition": DataConfig(partition={"method": "dirichlet", "alpha": 0.5}).partition}
        )
        pre = ["standardize"] * args.clients
        shares = [None] * args.clients

        inspect_s, report = best_of(args.repeats, lambda: inspect_csv(path))
        load_s, data = best_of(args.repeats, lambda: DATASETS.get("csv").load(natural, root))
        federation.load_dataset(natural, root)  # warm the per-process cache, as the app does
        nat_s, fed = best_of(args.repeats, lambda: build(natural, pre, shares, 0, root))
        federation.load_dataset(dirichlet, root)
        dir_s, _ = best_of(args.repeats, lambda: build(dirichlet, pre, shares, 0, root))

    shape = f"{args.rows:,} rows x {len(report['columns'])} columns ({size_mb:.0f} MB)"
    print(f"| step | {shape}, {args.clients} clients |")
    print("|---|---|")
    print(f"| generate the CSV (not counted) | {gen_s:.2f} s |")
    print(f"| inspect_csv (schema for the Data page) | {inspect_s} |")
    print(f"| load (read, infer, encode -> {data.x.shape[1]} features) | {load_s} |")
    print(f"| build, natural partition, federated statistics, standardize | {nat_s} |")
    print(f"| build, dirichlet(0.5), federated statistics, standardize | {dir_s} |")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")
    assert len(fed.clients) == args.clients


if __name__ == "__main__":
    main()
