"""Performance benchmarks of the performance issue, each measured side by side in one process
(ratios; the executors' runs advance in lockstep, a round of each in turn), written as markdown
(and a PNG plot) for docs/benchmarks.md.

    python -m bench.perf vectorized   # sequential vs vectorized: 10, 100, 1000 mlp clients; cnn
    python -m bench.perf threads      # sequential vs a pool of 2 threads: 10, 100 mlp; 10, 30 cnn
    python -m bench.perf memory       # peak RSS of a run with 1,000 mlp clients (subprocess)
    python -m bench.perf scaling      # time per round as clients grow and as rounds grow (+ plot)
    python -m bench.perf all
    python -m bench.perf vectorized --device cuda   # the same on a GPU

Work: digits, iid split, 1 local epoch per round, SGD 0.05 momentum 0.9, batch 32, FedAvg,
evaluation every round (batched), one torch thread. Times are medians over rounds 2..N (round 1
includes one-off costs). No timed assertions anywhere: these numbers are reported, not tested.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path.home() / ".cache" / "fedmosaic-bench"


DEVICE = "cpu"
"""Where the benchmark's clients compute (``--device``: cpu, cuda, cuda:N, mps)."""


def config(
    n: int, arch: str = "mlp", executor: str = "sequential", rounds: int = 6, eval_every: int = 1
) -> dict:
    model = {"arch": arch} if arch != "cnn" else {"arch": "cnn", "channels": 16}
    return {
        "name": f"bench-{n}-{arch}-{executor}",
        "seed": 0,
        "rounds": rounds,
        "eval_every": eval_every,
        "data": {"dataset": "digits", "partition": {"method": "iid"}, "test_fraction": 0.2},
        "clients": [
            {
                "name": "c",
                "count": n,
                "model": model,
                "optimizer": "sgd",
                "lr": 0.05,
                "momentum": 0.9,
                "epochs": 1,
                "batch_size": 32,
                "device": DEVICE,
            }
        ],
        "strategy": {"name": "fedavg"},
        "executor": executor,
        "checkpoint_every": 0,
    }


def round_times(cfg: dict) -> list[float]:
    """Seconds per round of one run (memory-only recording)."""
    return side_by_side({"run": cfg})["run"]


def side_by_side(cfgs: dict[str, dict]) -> dict[str, list[float]]:
    """Seconds per round of several runs advanced in lockstep, one round of each in turn, so a
    change in the machine's load affects every side alike (memory-only recording)."""
    from engine.config import parse_config
    from engine.core.simulation import Simulation

    sims = {}
    for label, cfg in cfgs.items():
        sims[label] = Simulation(parse_config(cfg), root=ROOT)
        sims[label].setup()
    rounds = min(cfg["rounds"] for cfg in cfgs.values())
    times: dict[str, list[float]] = {label: [] for label in sims}
    for rnd in range(1, rounds + 1):
        for label, sim in sims.items():
            t = time.perf_counter()
            sim.round(rnd)
            times[label].append(time.perf_counter() - t)
    for sim in sims.values():
        sim.executor.close()
    return times


def versus(executor: str, label: str, cases: list[tuple[str, int]], rounds: int) -> str:
    """A markdown table: sequential vs ``executor`` in lockstep on each (arch, clients) case,
    medians over rounds 2..N."""
    lines = [f"| clients | arch | sequential s/round | {label} s/round | speed-up |", "|---|---|---|---|---|"]
    for arch, n in cases:
        times = side_by_side({ex: config(n, arch, ex, rounds) for ex in ("sequential", executor)})
        seq, other = (statistics.median(times[ex][1:]) for ex in ("sequential", executor))
        lines.append(f"| {n} | {arch} | {seq:.4f} | {other:.4f} | {seq / other:.2f}x |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def vectorized(sizes: list[int], archs: list[str], rounds: int) -> str:
    """Sequential vs vectorized (cnn up to 100 clients)."""
    cases = [(arch, n) for arch in archs for n in sizes if not (arch == "cnn" and n > 100)]
    return versus("vectorized", "vectorized", cases, rounds)


def threads(rounds: int) -> str:
    """Sequential vs the threads executor (2 workers, one torch thread each)."""
    return versus("threads", "threads (2)", [("mlp", 10), ("mlp", 100), ("cnn", 10), ("cnn", 30)], rounds)


def _peak_child(n: int, executor: str) -> dict:
    code = (
        "import json, resource, sys, torch; torch.set_num_threads(1)\n"
        "from bench.perf import round_times, config\n"
        f"t = round_times(config({n}, 'mlp', '{executor}', rounds=3))\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps({'peak_bytes': peak, 'round_s': t}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(n: int = 1000) -> str:
    lines = ["| clients | executor | peak RSS (MB) |", "|---|---|---|"]
    for executor in ("sequential", "vectorized"):
        res = _peak_child(n, executor)
        lines.append(f"| {n} mlp | {executor} | {res['peak_bytes'] / 2**20:.0f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def scaling(out_png: Path) -> str:
    sizes = [10, 30, 100, 300, 1000]
    per_clients: dict[str, list[float]] = {"sequential": [], "vectorized": []}
    for n in sizes:
        times = side_by_side({ex: config(n, "mlp", ex, 4) for ex in per_clients})
        for executor in per_clients:
            per_clients[executor].append(statistics.median(times[executor][1:]))
    long = round_times(config(100, "mlp", "vectorized", 60))
    lines = ["| clients | sequential s/round | vectorized s/round |", "|---|---|---|"]
    for i, n in enumerate(sizes):
        lines.append(f"| {n} | {per_clients['sequential'][i]:.4f} | {per_clients['vectorized'][i]:.4f} |")
    first, last = statistics.median(long[1:11]), statistics.median(long[-10:])
    lines.append(
        f"\nRounds 2-11 vs 51-60 of a 60-round run (100 clients, vectorized): "
        f"{first:.4f} vs {last:.4f} s/round (ratio {last / first:.2f})."
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
        for executor, ys in per_clients.items():
            a.loglog(sizes, ys, marker="o", label=executor)
        a.set_xlabel("clients")
        a.set_ylabel("seconds per round")
        a.set_title("Time per round vs clients (mlp, digits)")
        a.legend()
        b.plot(range(1, len(long) + 1), long, marker=".", lw=0.8)
        b.set_xlabel("round")
        b.set_ylabel("seconds")
        b.set_title("Time per round over a 60-round run (100 clients)")
        fig.tight_layout()
        out_png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_png, dpi=110)
        lines.append(f"\n![time per round]({out_png.name})")
    except ImportError:
        lines.append("\n(matplotlib not installed: no plot)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["vectorized", "threads", "memory", "scaling", "all"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--png", default="docs/perf_scaling.png")
    parser.add_argument(
        "--device", default="cpu", help="where clients compute: cpu (default), cuda, cuda:N, mps"
    )
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    torch.set_num_threads(1)
    round_times(config(10, rounds=2))  # warm-up: imports, dataset cache
    parts = []
    if args.what in ("vectorized", "all"):
        parts.append(
            "### Vectorized vs sequential\n\n" + vectorized([10, 100, 1000], ["mlp", "cnn"], args.rounds)
        )
    if args.what in ("threads", "all"):
        parts.append("### Threads vs sequential\n\n" + threads(args.rounds))
    if args.what in ("memory", "all"):
        parts.append("### Peak memory\n\n" + memory())
    if args.what in ("scaling", "all"):
        parts.append("### Scaling\n\n" + scaling(Path(args.png)))
    print("\n\n".join(parts))


if __name__ == "__main__":
    main()
