"""A busy machine: the quick start alone and beside four CPU hogs, and two runs at once in one
run manager (as the app runs them), each with torch's default threads and with the thread policy
(engine/threads.py), in turn (A, B, A, B...). The policy side runs the two runs as the app does
now, each in a worker process of its own (``FEDMOSAIC_ISOLATION=process``); the code before ran
them in threads of one process.

"Default threads" runs the same command from a copy of the code before the policy (``--before
DIR``, e.g. ``git archive 4cfa299 | tar -x -C DIR``, the commit before the policy): torch's own
thread count (the cores) on every run and OpenMP's default (spinning) wait policy. The policy
side is this checkout. Each side is a fresh process; wall time and the CPU time it used (user +
system, from ``wait4``) are recorded, with the load average beside them.

    python -m bench.busy --before /tmp/fedmosaic-before [--repeats 2] [--rounds 5]

Prints a markdown table (medians over the repeats, and every repeat).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TWO_RUNS = """
import json, sys, time
from engine.tracking.runs import RunManager
from engine.tracking.storage import Store
config = json.load(open(sys.argv[1]))
mgr = RunManager(Store(sys.argv[2]), workers=2)
ids = [mgr.submit({**config, "seed": s, "name": f"run {s}"}) for s in (0, 1)]
for run_id in ids:
    mgr.wait(run_id)
statuses = [mgr.store.get_run(r)["status"] for r in ids]
mgr.shutdown(wait=True)
print(json.dumps({"statuses": statuses}))
"""


def hogs(n: int) -> list[subprocess.Popen]:
    """``n`` processes that spin on a core each until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds of one process (its children's CPU included)."""
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    _, err = proc.communicate()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}: {err[-1500:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", type=Path, required=True, help="a copy of the code without the thread policy"
    )
    parser.add_argument(
        "--after",
        type=Path,
        default=ROOT,
        help="the code with the policy (default: this checkout; a fixed copy keeps edits out)",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hogs", type=int, default=4)
    parser.add_argument("--scenarios", nargs="+", default=["alone", "hogs", "two runs"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fedmosaic-busy-"))
    config = json.loads((ROOT / "examples" / "quickstart_fedavg.json").read_text())
    config.update(rounds=args.rounds, checkpoint_every=0)
    path = work / "quickstart.json"
    path.write_text(json.dumps(config))
    script = work / "two_runs.py"
    script.write_text(TWO_RUNS)
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "OMP_NUM_THREADS",
            "FEDMOSAIC_THREADS",
            "OMP_WAIT_POLICY",
            "MKL_NUM_THREADS",
            "FEDMOSAIC_ISOLATION",
        )
    }
    after = args.after.resolve()
    sides = {"torch's default threads": args.before.resolve(), "thread policy": after}
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for rep in range(args.repeats):
        for scenario in args.scenarios:
            order = list(sides.items()) if rep % 2 == 0 else list(sides.items())[::-1]
            for label, tree in order:
                db = work / f"{time.monotonic_ns()}.db"
                env = {
                    **base,
                    "FEDMOSAIC_HOME": str(work / "home"),
                    "FEDMOSAIC_DB": str(db),
                    "PYTHONPATH": str(tree),
                }
                if tree == after:  # as the app runs them now: each run in a process of its own
                    env["FEDMOSAIC_ISOLATION"] = "process"
                if scenario == "two runs":
                    cmd = [sys.executable, str(script), str(path), str(db)]
                else:
                    cmd = [sys.executable, "-m", "engine", "run", str(path), "--json"]
                spinning = hogs(args.hogs) if scenario == "hogs" else []
                try:
                    time.sleep(1.0 if spinning else 0.0)
                    results.setdefault((scenario, label), []).append(timed(cmd, tree, env))
                finally:
                    for p in spinning:
                        p.kill()
                        p.wait()
                r = results[(scenario, label)][-1]
                print(
                    f"# {scenario} / {label}: wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, "
                    f"load {r['load']:.1f}",
                    flush=True,
                )
    print(
        f"\n| scenario ({args.rounds} rounds of the quick start) | threads | wall s (median) "
        "| CPU s (median) | each repeat: wall / CPU | load at start |"
    )
    print("|---|---|---:|---:|---|---|")
    for (scenario, label), rows in results.items():
        wall = statistics.median(r["wall_s"] for r in rows)
        cpu = statistics.median(r["cpu_s"] for r in rows)
        each = ", ".join(f"{r['wall_s']:.1f} / {r['cpu_s']:.1f}" for r in rows)
        loads = ", ".join(f"{r['load']:.1f}" for r in rows)
        print(f"| {scenario} | {label} | {wall:.1f} | {cpu:.1f} | {each} | {loads} |")


if __name__ == "__main__":
    main()
