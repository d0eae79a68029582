"""Seconds per round of every strategy on a 28x28 image federation, against a hand-written loop
on the same data, with one torch thread (issue #17: evaluation must cost less than training).

Data (:func:`federation_csv`): scikit-learn's 1,797 digits upscaled to 28x28 (``bench.images``)
plus five copies of each, shifted by up to 2 pixels and turned by up to 12 degrees (seeded), as a
pixel CSV of 10,782 images - MNIST's shape and about its per-client size, since MNIST cannot be
downloaded here. Federation: 10 clients of the FedAvg CNN preset (``fedavg_cnn``), Dirichlet(0.3),
20% global test set (2,157 images), each client's split 80/20 (about 690 training images), SGD lr
0.005, batch 10, 1 local epoch: the reference libraries' (PFLlib, HtFLlib) settings. Strategies
that need a public set get 10% of the data as one.

Hand-written side (:class:`HandSide`): FedAvg over the same clients' training rows with the
reference FedAvg CNN written out by hand (``bench.images.ReferenceFedAvgCNN``), then the global
model scored on every client's test split (what PFLlib evaluates each round), in plain PyTorch.

    python -m bench.image_rounds                       # every strategy, 3 rounds each
    python -m bench.image_rounds --strategies local lg_fedavg fedproto --rounds 8

Prints a markdown table: per strategy, seconds per round (median over the rounds between the
first and the last: they score the global test set's fixed sample), the share of those spent
scoring, the first round, the last round (which scores every row of the global test set), and
the process's peak RSS so far.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path.home() / ".cache" / "fedmosaic-bench"
NEEDS_PUBLIC = {"fedmd", "feddf", "fd", "fedkd", "fml", "fedtgp"}


def jittered_digits(copies: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits at 28x28 and ``copies`` shifted and turned copies of each."""
    from bench.images import digits28

    x, y = digits28()
    g = torch.Generator().manual_seed(seed)
    xs, ys = [x], [y]
    for _ in range(copies):
        n = len(x)
        angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(12)
        shift = (torch.rand(n, 2, generator=g) * 2 - 1) * (2 / 14)  # up to 2 px of 28 in [-1, 1] units
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        xs.append(F.grid_sample(x, grid, align_corners=False, padding_mode="zeros").clamp(0, 1))
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def federation_csv(root: Path = ROOT) -> Path:
    """The pixel CSV of :func:`jittered_digits` (written once, then reused)."""
    from bench.images import write_pixel_csv

    path = root / "digits28_jittered.csv"
    if not path.exists():
        x, y = jittered_digits()
        tmp = path.with_suffix(".tmp")
        write_pixel_csv(tmp, x, y)
        tmp.replace(path)
    return path


def config(strategy: str, rounds: int, csv: Path, **extra: Any) -> dict:
    data = {
        "dataset": "csv",
        "path": str(csv),
        "target": "label",
        "image_shape": [1, 28, 28],
        "partition": {"method": "dirichlet", "alpha": 0.3},
    }
    if strategy in NEEDS_PUBLIC:
        data["public_fraction"] = 0.1
    return {
        "name": f"images-{strategy}",
        "seed": 0,
        "rounds": rounds,
        "data": data,
        "checkpoint_every": 0,
        "clients": [
            {
                "name": "site",
                "count": 10,
                "model": {"arch": "fedavg_cnn"},
                "optimizer": "sgd",
                "lr": 0.005,
                "epochs": 1,
                "batch_size": 10,
            }
        ],
        "strategy": {"name": strategy},
        **extra,
    }


def current_rss_mb() -> float:
    """The process's resident memory now (peak RSS never comes down, so growth shows here)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class EngineSide:
    """One strategy's run, a round at a time (memory-only recording), its scoring timed."""

    def __init__(self, strategy: str, rounds: int, csv: Path, **extra: Any) -> None:
        from engine.config import parse_config
        from engine.core.simulation import Simulation

        self.sim = Simulation(parse_config(config(strategy, rounds, csv, **extra)), root=ROOT)
        self.sim.setup()
        self.scoring: list[float] = []
        evaluate = self.sim.evaluate

        def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return evaluate(*args, **kwargs)
            finally:
                self.scoring.append(time.perf_counter() - t0)

        self.sim.evaluate = timed_evaluate  # type: ignore[method-assign]
        self.walls: list[float] = []
        self.rss: list[float] = []
        self.acc = float("nan")

    def round(self, rnd: int) -> None:
        t0 = time.perf_counter()
        record = self.sim.round(rnd)
        self.walls.append(time.perf_counter() - t0)
        self.rss.append(current_rss_mb())
        self.acc = record.metrics.get("local_acc_wmean", self.acc)


class HandSide:
    """FedAvg written by hand on the same clients' rows, a round at a time."""

    def __init__(self, csv: Path) -> None:
        from bench.images import ReferenceFedAvgCNN
        from engine.config import parse_config
        from engine.data import build

        cfg = parse_config(config("fedavg", 1, csv))
        roster = cfg.roster()
        self.fed = build(cfg.data, [c.preprocessing for c in roster], [None] * len(roster), cfg.seed, ROOT)
        torch.manual_seed(0)
        self.global_model, self.local = ReferenceFedAvgCNN(), ReferenceFedAvgCNN()
        self.g = torch.Generator().manual_seed(0)
        self.walls: list[float] = []
        self.scoring: list[float] = []
        self.acc = float("nan")

    def round(self, rnd: int) -> None:
        t0 = time.perf_counter()
        states, sizes = [], []
        for client in self.fed.clients:
            self.local.load_state_dict(self.global_model.state_dict())
            opt = torch.optim.SGD(self.local.parameters(), lr=0.005)
            x, y = client.train.x, client.train.y
            perm = torch.randperm(len(y), generator=self.g)
            for i in range(0, len(y), 10):
                idx = perm[i : i + 10]
                opt.zero_grad()
                F.cross_entropy(self.local(x[idx]), y[idx]).backward()
                opt.step()
            states.append({k: v.clone() for k, v in self.local.state_dict().items()})
            sizes.append(len(y))
        total = sum(sizes)
        self.global_model.load_state_dict(
            {k: sum(s[k] * (n / total) for s, n in zip(states, sizes, strict=True)) for k in states[0]}
        )
        t1 = time.perf_counter()
        correct = n = 0
        with torch.no_grad():  # PFLlib's evaluation: the global model on every client's test split
            for client in self.fed.clients:
                correct += int((self.global_model(client.test.x).argmax(1) == client.test.y).sum())
                n += len(client.test.y)
        self.acc = correct / n
        self.walls.append(time.perf_counter() - t0)
        self.scoring.append(time.perf_counter() - t1)


def main() -> None:
    from engine.strategies import STRATEGIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("FEDMOSAIC_THREADS", "1")
    csv = federation_csv()
    names = args.strategies or [n for n in STRATEGIES.names() if n != "centralized"]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {csv}")
    print(
        "| strategy | s/round (rounds 2..R-1) | scoring share | hand loop s/round beside it | ratio | "
        "round R (whole global set) | acc | peak RSS MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")

    def row(label: str, side: Any, hand: Any) -> None:
        middle = slice(1, max(2, len(side.walls) - 1))
        walls, hand_walls = side.walls[middle], hand.walls[middle]
        share = sum(side.scoring[middle]) / sum(walls)
        ratio = statistics.median(w / h for w, h in zip(walls, hand_walls, strict=True))
        print(
            f"| {label} | {statistics.median(walls):.2f} | {share:.0%} | "
            f"{statistics.median(hand_walls):.2f} | "
            f"{ratio:.2f}x | {side.walls[-1]:.2f} | {side.acc:.3f} | {peak_rss_mb():.0f} |",
            flush=True,
        )

    traces: list[str] = []
    for name in names:
        # the strategy's rounds alternate with the hand-written loop's, so the machine's load
        # falls on both alike; the ratio is the strategy's round over the hand loop's beside it
        try:
            side = EngineSide(name, args.rounds, csv)
        except Exception as exc:  # noqa: BLE001 - a strategy that cannot run this roster is reported
            print(f"| {name} | {type(exc).__name__}: {str(exc)[:100]} |", flush=True)
            continue
        hand = HandSide(csv)
        for rnd in range(1, args.rounds + 1):
            pair = [side, hand] if rnd % 2 else [hand, side]
            for s_ in pair:
                s_.round(rnd)
        row(name, side, hand)
        traces.append(
            f"# {name}: each round (s) {', '.join(f'{w:.1f}' for w in side.walls)}; hand loop "
            f"{', '.join(f'{w:.1f}' for w in hand.walls)}; RSS after each round (MB) "
            f"{', '.join(f'{r:.0f}' for r in side.rss)}"
        )
        del side, hand
        gc.collect()
    print("\n".join(traces))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
