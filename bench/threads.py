"""When do more intra-op threads pay? One client's training steps timed with 1 thread and with
every core, interleaved (a block of steps of each in turn, so the machine's load hits both alike),
for models from the catalog's smallest to its heaviest. The thread policy
(:mod:`engine.threads`) gives one thread to a run whose training step costs fewer FLOPs than
the smallest step measured to gain; this script is where that threshold comes from.

    python -m bench.threads [--blocks 7] [--steps 20]

Prints a markdown table: per-step forward FLOPs (one sample's forward x batch), seconds per step
at 1 and N threads (medians over blocks), and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

import engine  # noqa: F401 - sets OMP_WAIT_POLICY=PASSIVE, as for every run, before torch loads

CASES = [
    # (label, model spec, input kind, input shape, batch)
    ("mlp on digits, batch 32", {"arch": "mlp"}, "image", (1, 8, 8), 32),
    ("mlp 256 on digits, batch 16", {"arch": "mlp", "hidden": 256}, "image", (1, 8, 8), 16),
    ("cnn 16 on digits, batch 32", {"arch": "cnn", "channels": 16}, "image", (1, 8, 8), 32),
    ("cnn on 28x28, batch 10", {"arch": "cnn"}, "image", (1, 28, 28), 10),
    ("cnn on 28x28, batch 64", {"arch": "cnn"}, "image", (1, 28, 28), 64),
    ("mlp on 28x28, batch 64", {"arch": "mlp"}, "image", (1, 28, 28), 64),
    ("cnn on 32x32x3, batch 32", {"arch": "cnn"}, "image", (3, 32, 32), 32),
    ("resnet on 32x32x3, batch 32", {"arch": "resnet"}, "image", (3, 32, 32), 32),
    ("resnet 32 on 32x32x3, batch 64", {"arch": "resnet", "channels": 32}, "image", (3, 32, 32), 64),
]


def step_flops(spec: dict, kind: str, shape: tuple[int, ...], batch: int) -> int:
    from engine.models import InputSpec, build_model, flops_per_sample

    input_spec = InputSpec(kind, shape)
    return flops_per_sample(build_model(spec, input_spec, 64, 10), input_spec) * batch


def time_steps(spec: dict, kind: str, shape: tuple[int, ...], batch: int, threads: int, steps: int) -> float:
    """Seconds per training step (forward, backward, SGD step) with ``threads`` intra-op threads."""
    from engine.models import InputSpec, build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(spec, InputSpec(kind, shape), 64, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    for _ in range(3):  # warm-up: allocator, kernels' first calls
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    print(
        f"load average before: {os.getloadavg()[0]:.2f}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    print(f"| case | forward FLOPs per step | 1 thread s/step | {args.threads} threads s/step | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for label, spec, kind, shape, batch in CASES:
        one, many = [], []
        for i in range(args.blocks):
            pair = [(1, one), (args.threads, many)]
            for n, out in pair if i % 2 == 0 else pair[::-1]:
                out.append(time_steps(spec, kind, shape, batch, n, args.steps))
        a, b = statistics.median(one), statistics.median(many)
        print(
            f"| {label} | {step_flops(spec, kind, shape, batch):,} | {a:.5f} | {b:.5f} | {a / b:.2f}x |",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
