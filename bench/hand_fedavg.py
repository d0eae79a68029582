"""A hand-written FedAvg in plain PyTorch, as a script of its own: the whole-process side of
``bench/engine_overhead.py`` (interpreter start, imports, loading digits with scikit-learn,
training, exit), to set against ``python -m engine run`` as a whole process.

It imports nothing from FedMosaic. The client splits come from a file the benchmark writes (each
client's training rows of the digits set, and the global test set), so both sides train on the
same rows; everything else is loaded and computed here.

    python bench/hand_fedavg.py SPLITS.npz [--rounds 30] [--threads 1]

Prints one JSON line: ``{"loop_s", "acc"}`` (the whole process is timed by whoever starts it).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("splits")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    digits = load_digits()
    x_all = torch.as_tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y_all = torch.as_tensor(digits.target, dtype=torch.long)
    splits = np.load(args.splits)
    clients = [
        (x_all[torch.as_tensor(splits[k])], y_all[torch.as_tensor(splits[k])])
        for k in sorted((k for k in splits.files if k.startswith("client")), key=lambda k: int(k[6:]))
    ]
    test_x, test_y = torch.as_tensor(splits["test_x"]), torch.as_tensor(splits["test_y"])
    torch.manual_seed(0)

    def make() -> nn.Module:
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    global_model, local = make(), make()
    g = torch.Generator().manual_seed(0)
    t_loop = time.perf_counter()
    acc = 0.0
    for _ in range(args.rounds):
        states, sizes = [], []
        for x, y in clients:
            local.load_state_dict(global_model.state_dict())
            opt = torch.optim.SGD(local.parameters(), lr=0.05, momentum=0.9)
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
            acc = float((global_model(test_x).argmax(1) == test_y).float().mean())
    print(json.dumps({"loop_s": time.perf_counter() - t_loop, "acc": acc}))


if __name__ == "__main__":
    main()
