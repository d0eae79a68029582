"""Local Ray vs sequential vs vectorized on this machine, and Ray's dispatch overhead per client.

    python -m bench.ray_bench [--clients 10 100] [--rounds 5] [--cpus 2]

Same work for every executor (digits, iid, mlp clients, 1 local epoch, FedAvg, evaluation every
round); seconds per round are medians over rounds 2..N. Dispatch overhead per client = Ray's
round time minus the sequential round time, divided by the number of clients (on a machine with
as many CPUs as Ray was given, part of it is hidden by parallel work).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from bench.perf import config, round_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    round_times(config(10, rounds=2))
    print(
        f"| clients | sequential s/round | vectorized s/round | ray (local, {args.cpus} CPUs) s/round "
        "| ray / sequential | ray dispatch overhead per client (ms) |"
    )
    print("|---|---|---|---|---|---|")
    for n in args.clients:
        seq = statistics.median(round_times(config(n, "mlp", "sequential", args.rounds))[1:])
        vec = statistics.median(round_times(config(n, "mlp", "vectorized", args.rounds))[1:])
        cfg = config(n, "mlp", "ray", args.rounds)
        cfg["executor_options"] = {"ray_address": "local", "init_options": {"num_cpus": args.cpus}}
        ray_t = statistics.median(round_times(cfg)[1:])
        print(
            f"| {n} | {seq:.4f} | {vec:.4f} | {ray_t:.4f} | {ray_t / seq:.2f}x | "
            f"{1000 * (ray_t - seq) / n:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
