"""Wide CSV files: loading is linear in the number of columns (issue #16 item 7).

Generates CSVs of ``rows`` x ``columns`` numbers (3 decimals, 1% missing, an integer target) in a
temporary folder and times ``engine.validate.validate`` on a 4-client FedAvg config that reads
them (parse, infer every column's type, encode; the split preview), each in a fresh subprocess so
nothing is cached and imports are not counted. Prints CPU seconds (the process's own work, stable
on a busy machine) and wall seconds, the CPU cost per 1,000 columns (flat = linear), and the load
average, as a markdown table for docs/benchmarks.md.

Run: ``python -m bench.wide_csv [--rows 1000] [--columns 1000 2500 5000 10000] [--repeats 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = """
import json, sys, time
from pathlib import Path
from engine.config import ExperimentConfig
from engine.validate import validate
cfg = ExperimentConfig.model_validate(json.loads(sys.argv[1]))
cpu, wall = time.process_time(), time.perf_counter()
report = validate(cfg, Path(sys.argv[2]))
print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "ok": report.ok,
                  "errors": report.errors[:2]}))
"""


def make_csv(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    """``rows`` x ``columns`` numbers with 1% missing, and a binary target ``y``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, columns)).round(3)
    x[rng.random(x.shape) < 0.01] = np.nan
    frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(columns)])
    frame["y"] = rng.integers(0, 2, rows)
    frame.to_csv(path, index=False)


def time_validate(path: Path, root: Path) -> dict:
    config = {
        "name": "wide",
        "rounds": 1,
        "data": {"dataset": "csv", "path": str(path), "target": "y"},
        "clients": [
            {
                "name": "site",
                "count": 4,
                "model": {"arch": "mlp", "hidden": 16},
                "preprocessing": "standardize",
            }
        ],
        "strategy": {"name": "fedavg"},
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FEDMOSAIC_HOME": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(config), str(root)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--columns", type=int, nargs="+", default=[1000, 2500, 5000, 10000])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min)")
    print(
        f"| columns x rows | file (MB) | validate CPU s (best of {args.repeats}) | wall s "
        "| CPU s per 1,000 columns |"
    )
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for columns in args.columns:
            path = root / f"wide_{columns}.csv"
            make_csv(path, args.rows, columns)
            runs = [time_validate(path, root) for _ in range(args.repeats)]
            assert all(r["ok"] for r in runs), runs[0]["errors"]
            best = min(runs, key=lambda r: r["cpu"])
            size = path.stat().st_size / 1e6
            print(
                f"| {columns:,} x {args.rows:,} | {size:.1f} | {best['cpu']:.2f} | {best['wall']:.2f} | "
                f"{1000 * best['cpu'] / columns:.3f} |",
                flush=True,
            )
            path.unlink()
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min); {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
