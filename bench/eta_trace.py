"""Record real runs' round times for the ETA test (``tests/test_eta.py`` replays them; no wall
time is measured there).

Scenarios, each written as one JSON file (``{"scenario", "command", "load_before", "load_after",
"runs": {label: {"rounds", "times"}}}``, ``times`` = each round's ``wall_s`` in order):

- ``cli``: ``python -m engine run`` of 10 CNN clients on digits (25 rounds) as a fresh process:
  its first round pays for importing torch's compiler stack at the first optimiser step.
- ``app``: two runs launched together in one run manager with two workers, as the app runs them
  (CNN clients on digits, 20 and 30 rounds): they start together and compete for the cores, and
  the shorter one ends while the other goes on.

    python -m bench.eta_trace --out tests/data          # both scenarios
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

ROOT = Path(__file__).resolve().parent.parent


def round_times(db: Path, run_id: str) -> list[float]:
    from engine.tracking.storage import Store

    store = Store(db)
    frame = store.round_metrics(run_id)
    times = frame[frame["key"] == "wall_s"].sort_values("round")["value"].tolist()
    store.close()
    return [round(float(t), 4) for t in times]


def cnn_config(name: str, rounds: int, seed: int, strategy: str = "fedprox") -> dict:
    return {
        "name": name,
        "seed": seed,
        "rounds": rounds,
        "data": {"dataset": "digits", "partition": {"method": "dirichlet", "alpha": 0.5}},
        "clients": [
            {
                "name": "site",
                "count": 10,
                "model": {"arch": "cnn", "channels": 32},
                "optimizer": "sgd",
                "lr": 0.05,
                "momentum": 0.9,
                "epochs": 1,
                "batch_size": 10,
            }
        ],
        "strategy": {"name": strategy},
    }


def cli_scenario(work: Path) -> dict:
    db = work / "cli.db"
    config = work / "cnn.json"
    config.write_text(json.dumps(cnn_config("cli", 25, 0, "fedavg")))
    command = [sys.executable, "-m", "engine", "run", str(config), "--json"]
    env = {**os.environ, "FEDMOSAIC_DB": str(db), "FEDMOSAIC_HOME": str(work)}
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    run_id = json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
    times = round_times(db, run_id)
    return {
        "command": "python -m engine run CONFIG (bench.eta_trace.cnn_config('cli', 25, 0, 'fedavg'))",
        "runs": {"cnn x10, fedavg, 25 rounds": {"rounds": len(times), "times": times}},
    }


def app_scenario(work: Path) -> dict:
    from engine.tracking.runs import RunManager
    from engine.tracking.storage import Store

    os.environ["FEDMOSAIC_HOME"] = str(work)
    db = work / "app.db"
    mgr = RunManager(Store(db), workers=2)
    runs = {
        "cnn x10, 20 rounds": mgr.submit(cnn_config("short", 20, 0)),
        "cnn x10, 30 rounds": mgr.submit(cnn_config("long", 30, 1)),
    }
    for run_id in runs.values():
        mgr.wait(run_id)
    mgr.shutdown(wait=True)
    out = {}
    for label, run_id in runs.items():
        times = round_times(db, run_id)
        out[label] = {"rounds": len(times), "times": times}
    return {
        "command": "RunManager(workers=2): two fedprox runs of 10 cnn clients on digits, launched together",
        "runs": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    parser.add_argument("--scenarios", nargs="+", default=["cli", "app"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.scenarios:
        work = Path(tempfile.mkdtemp(prefix=f"fedmosaic-eta-{name}-"))
        load = os.getloadavg()[0]
        t0 = time.time()
        trace = {"cli": cli_scenario, "app": app_scenario}[name](work)
        trace = {
            "scenario": name,
            "recorded": time.strftime("%Y-%m-%d %H:%M", time.localtime(t0)),
            "load_before": round(load, 2),
            "load_after": round(os.getloadavg()[0], 2),
            **trace,
        }
        path = args.out / f"eta_{name}.json"
        path.write_text(json.dumps(trace, indent=1) + "\n")
        print(
            f"wrote {path}: "
            + ", ".join(
                f"{k}: {sum(v['times']):.1f} s over {v['rounds']} rounds" for k, v in trace["runs"].items()
            )
        )


if __name__ == "__main__":
    main()
