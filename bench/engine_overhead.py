"""Engine overhead: FedMosaic's sequential executor vs a minimal hand-written PyTorch FedAvg loop
doing the same work, measured side by side in one process.

Work (the engine-core and performance issues): 10 mlp clients on digits, Dirichlet(0.3), 2 local
epochs, 30 rounds, SGD lr 0.05 momentum 0.9, batch 32, the global model evaluated on the global
test set every round. Both sides use the same client splits (built once by the engine's data
layer, outside the timings of the hand loop's inner part) and one torch thread.

Run: ``python -m bench.engine_overhead [--repeats 3] [--rounds 30]``. Prints a markdown table.

Whole processes (``--whole-process``): the same work as two fresh processes from spawn to exit,
interpreter start and imports included on both sides: the hand loop as a script of its own
(``bench/hand_fedavg.py``: imports torch and scikit-learn, loads digits, trains on the same client
rows) against ``python -m engine run CONFIG`` (validates, builds the federation, records every
round in a fresh SQLite database), in turn, median of the repeats. The engine side runs once with
the sequential executor (the same algorithm as the hand loop) and once with ``auto``; with
``--flower``, Flower's simulation (``bench/flower_side.py``) is a fourth side, timed the same way.

Optional third side, Flower 1.42's Ray simulation of the same work (``bench/flower_side.py``, which
says how to install flwr in a separate venv): ``--flower /tmp/flwr-venv/bin/python`` runs it as a
subprocess with that interpreter in every repeat (plus a 1-round warm-up) and adds its row and its
ratios to the hand loop and to FedMosaic. Its "whole run" is the subprocess from spawn to exit
(interpreter start and imports included, which the in-process hand/engine rows leave out; the
note under the table gives its in-process part too).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CONFIG = {
    "name": "bench-overhead",
    "seed": 0,
    "rounds": 30,
    "data": {"dataset": "digits", "partition": {"method": "dirichlet", "alpha": 0.3}},
    "clients": [
        {
            "name": "c",
            "count": 10,
            "model": {"arch": "mlp"},
            "optimizer": "sgd",
            "lr": 0.05,
            "momentum": 0.9,
            "epochs": 2,
            "batch_size": 32,
        }
    ],
    "strategy": {"name": "fedavg"},
}


def hand_loop(rounds: int, root: Path) -> tuple[float, float, float]:
    """A minimal FedAvg in plain PyTorch. Returns (whole seconds, loop seconds, final accuracy)."""
    t0 = time.perf_counter()
    from engine.config import parse_config
    from engine.data import build

    cfg = parse_config({**CONFIG, "rounds": rounds})
    roster = cfg.roster()
    fed = build(cfg.data, [c.preprocessing for c in roster], [None] * len(roster), cfg.seed, root)
    torch.manual_seed(0)

    def make() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    global_model = make()
    local = make()
    g = torch.Generator().manual_seed(0)
    t_loop = time.perf_counter()
    acc = 0.0
    for _ in range(rounds):
        states, sizes = [], []
        for client in fed.clients:
            local.load_state_dict(global_model.state_dict())
            opt = torch.optim.SGD(local.parameters(), lr=0.05, momentum=0.9)
            x, y = client.train.x, client.train.y
            for _ in range(2):
                perm = torch.randperm(len(y), generator=g)
                for i in range(0, len(y), 32):
                    idx = perm[i : i + 32]
                    opt.zero_grad()
                    F.cross_entropy(local(x[idx]), y[idx]).backward()
                    opt.step()
            states.append({k: v.clone() for k, v in local.state_dict().items()})
            sizes.append(len(y))
        total = sum(sizes)
        global_model.load_state_dict(
            {k: sum(s[k] * (n / total) for s, n in zip(states, sizes, strict=True)) for k in states[0]}
        )
        with torch.no_grad():
            acc = float((global_model(fed.global_test.x).argmax(1) == fed.global_test.y).float().mean())
    end = time.perf_counter()
    return end - t0, end - t_loop, acc


def engine_run(rounds: int, root: Path) -> tuple[float, float, float]:
    """The same work through FedMosaic (memory-only recording). Returns (whole, loop, accuracy)."""
    t0 = time.perf_counter()
    from engine.config import parse_config
    from engine.core.simulation import Simulation

    sim = Simulation(parse_config({**CONFIG, "rounds": rounds}), root=root)
    summary = sim.run()
    end = time.perf_counter()
    loop = sum(r.metrics["wall_s"] for r in sim.history)
    return end - t0, loop, summary["final"]["server_acc"]


def write_splits(path: Path, root: Path) -> None:
    """The engine's client split of :data:`CONFIG` for the hand-written script: each client's
    training rows of the digits set, and the global test set's tensors."""
    import numpy as np

    from engine.config import parse_config
    from engine.data import build

    cfg = parse_config(CONFIG)
    roster = cfg.roster()
    fed = build(cfg.data, [c.preprocessing for c in roster], [None] * len(roster), cfg.seed, root)
    assert all(c.transform.center is None for c in fed.clients), "the hand script reads raw rows"
    np.savez(
        path,
        test_x=fed.global_test.x.numpy(),
        test_y=fed.global_test.y.numpy(),
        **{f"client{i}": np.asarray(c.index) for i, c in enumerate(fed.clients)},
    )


def whole_processes(
    rounds: int, repeats: int, root: Path, flower: str | None = None, flower_cpus: int = 2
) -> dict[str, list[tuple[float, float, float]]]:
    """(whole seconds, loop seconds, accuracy) per side and repeat, each side a fresh process
    from spawn to exit, sides in turn (order alternated)."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    from engine.tracking.storage import Store

    work = Path(tempfile.mkdtemp(prefix="fedmosaic-overhead-"))
    splits = work / "splits.npz"
    write_splits(splits, root)
    env = {
        **os.environ,
        "FEDMOSAIC_HOME": str(root.parent / "fedmosaic-bench-home"),
        "OMP_NUM_THREADS": "1",
        "FEDMOSAIC_THREADS": "1",
    }
    here = Path(__file__).resolve().parent.parent

    def timed(cmd: list[str], extra: dict[str, str]) -> tuple[float, str]:
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=here, env={**env, **extra}, capture_output=True, text=True, check=True)
        return time.perf_counter() - t0, out.stdout

    def hand() -> tuple[float, float, float]:
        whole, out = timed([sys.executable, "bench/hand_fedavg.py", str(splits), "--rounds", str(rounds)], {})
        line = json.loads(out.strip().splitlines()[-1])
        return whole, line["loop_s"], line["acc"]

    def engine(executor: str) -> Callable[[], tuple[float, float, float]]:
        def run() -> tuple[float, float, float]:
            config = work / f"{executor}.json"
            config.write_text(
                json.dumps({**CONFIG, "rounds": rounds, "executor": executor, "checkpoint_every": 0})
            )
            db = work / f"{executor}-{time.monotonic_ns()}.db"
            whole, out = timed(
                [sys.executable, "-m", "engine", "run", str(config), "--json"], {"FEDMOSAIC_DB": str(db)}
            )
            run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
            store = Store(db)
            loop = sum(store.round_metrics(run_id).query("key == 'wall_s'")["value"])
            acc = store.get_run(run_id)["summary"]["server_acc"]
            store.close()
            return whole, float(loop), float(acc)

        return run

    sides = {
        "hand-written loop, as a script": hand,
        "python -m engine run (sequential)": engine("sequential"),
        "python -m engine run (auto)": engine("auto"),
    }
    if flower:
        from bench import flower_side

        def flower_run() -> tuple[float, float, float]:
            run = flower_side.measure(flower, rounds, flower_cpus, root=root)
            return run["whole_s"], run["loop_s"], run["acc"]

        if flower_side.flwr_available(flower):
            sides[f"Flower 1.42 simulation ({flower_cpus} Ray CPUs), as a script"] = flower_run
        else:
            print(flower_side.NO_FLWR.format(python=flower))
    for fn in sides.values():  # warm-up: file caches, the dataset cache
        fn()
    rows: dict[str, list[tuple[float, float, float]]] = {k: [] for k in sides}
    for i in range(repeats):
        order = list(sides.items())
        for name, fn in order if i % 2 == 0 else order[::-1]:
            rows[name].append(fn())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--flower",
        metavar="PYTHON",
        default=None,
        help="interpreter of a venv with flwr[simulation]==1.42: adds its Ray simulation",
    )
    parser.add_argument("--flower-cpus", type=int, default=2, help="CPUs given to Flower's Ray backend")
    parser.add_argument(
        "--whole-process",
        action="store_true",
        help="time the hand loop and python -m engine run as whole processes instead",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path.home() / ".cache" / "fedmosaic-bench"
    if args.whole_process:
        import os

        print(f"load average before: {os.getloadavg()[0]:.2f}")
        rows = whole_processes(args.rounds, args.repeats, root, args.flower, args.flower_cpus)
        med = {k: tuple(statistics.median(r[j] for r in v) for j in range(3)) for k, v in rows.items()}
        print("| side (whole process) | whole process (s) | inside the loop (s) | final global accuracy |")
        print("|---|---|---|---|")
        for k, (whole, loop, acc) in med.items():
            print(f"| {k} | {whole:.2f} | {loop:.2f} | {acc:.3f} |")
        hand = med["hand-written loop, as a script"][0]
        for k, v in med.items():
            print(
                f"{k}: {v[0] - hand:+.2f} s ({v[0] / hand:.2f}x) against the hand-written script "
                f"(per repeat: {', '.join(f'{w:.2f}' for w, _, _ in rows[k])})"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return
    engine_run(2, root)  # warm-up: imports, dataset cache
    hand_loop(2, root)
    rows = {"hand": [], "engine": []}
    sides = [("hand", hand_loop), ("engine", engine_run)]
    flower_runs: list[dict] = []
    if args.flower:
        from bench import flower_side

        if not flower_side.flwr_available(args.flower):
            print(flower_side.NO_FLWR.format(python=args.flower))
        else:
            flower_side.measure(args.flower, 1, args.flower_cpus, root=root)  # warm-up: file cache

            def flower(rounds: int, root: Path) -> tuple[float, float, float]:
                run = flower_side.measure(args.flower, rounds, args.flower_cpus, root=root)
                flower_runs.append(run)
                return run["whole_s"], run["loop_s"], run["acc"]

            rows["flower"] = []
            sides.append(("flower", flower))
    for i in range(args.repeats):
        order = list(sides)
        if i % 2:
            order.reverse()
        for name, fn in order:
            rows[name].append(fn(args.rounds, root))
    med = {k: tuple(statistics.median(r[j] for r in v) for j in range(3)) for k, v in rows.items()}
    print("| side | whole run (s) | inside the loop (s) | final global accuracy |")
    print("|---|---|---|---|")
    for k, (whole, loop, acc) in med.items():
        print(f"| {k} | {whole:.2f} | {loop:.2f} | {acc:.3f} |")
    print(
        f"\nratio engine/hand: whole run {med['engine'][0] / med['hand'][0]:.2f}x, "
        f"inside the loop {med['engine'][1] / med['hand'][1]:.2f}x "
        f"(median of {args.repeats}, torch threads={args.threads})"
    )
    if "flower" in med:
        fl = med["flower"]
        in_proc = statistics.median(r["in_process_s"] for r in flower_runs)
        ready = statistics.median(r["ray_ready_s"] for r in flower_runs)
        print(
            f"ratio flower/hand: whole run {fl[0] / med['hand'][0]:.2f}x, inside the loop "
            f"{fl[1] / med['hand'][1]:.2f}x; flower/engine: whole run {fl[0] / med['engine'][0]:.2f}x, "
            f"inside the loop {fl[1] / med['engine'][1]:.2f}x"
        )
        print(
            f"(flower: Ray backend with {args.flower_cpus} CPUs, 1 CPU + 1 torch thread per client actor; "
            f"whole run = subprocess spawn to exit, {in_proc:.2f} s of it after the imports, "
            f"{ready:.2f} s of that Ray start-up before round 1)"
        )


if __name__ == "__main__":
    main()
