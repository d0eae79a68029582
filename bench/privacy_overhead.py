"""What DP-SGD costs in compute: one epoch of one client (320 records of 8x8 images, batch 32) with
the ordinary loop and with DP-SGD (Poisson sampling, per-record gradients, clipping, noise), for
every architecture of the zoo, interleaved, median of 3, one torch thread.

Run: ``python -m bench.privacy_overhead`` (prints a Markdown table and the load average).
"""

import os
import statistics
import time

import torch
import torch.nn.functional as F

from engine.core import training
from engine.models import InputSpec, build_model
from engine.privacy.dpsgd import DPSettings, fit_private

torch.set_num_threads(1)
spec = InputSpec("image", (1, 8, 8))
x, y = torch.randn(320, 1, 8, 8), torch.randint(0, 10, (320,))
print("| architecture | ordinary epoch (ms) | DP-SGD epoch (ms) | ratio |\n|---|---|---|---|")
rows = []
for arch in ("mlp", "cnn", "resnet", "lstm", "gru", "transformer", "cnn1d"):
    torch.manual_seed(0)
    m = build_model({"arch": arch}, spec, 64, 10)

    def loss(xb, yb, m=m):
        return F.cross_entropy(m(xb), yb)

    plain, dp = [], []
    for rep in range(3):
        for private in (False, True):
            opt = torch.optim.SGD(m.parameters(), lr=0.05)
            g = torch.Generator().manual_seed(rep)
            t = time.perf_counter()
            if private:
                fit_private(m, x, y, loss, opt, 1, 32, g, DPSettings(1.0, 1.0))
                dp.append(time.perf_counter() - t)
            else:
                training.fit(m, x, y, loss, opt, 1, 32, g)
                plain.append(time.perf_counter() - t)
    p, d = statistics.median(plain), statistics.median(dp)
    rows.append((arch, p, d, d / p))
    print(f"| {arch} | {p * 1000:.0f} | {d * 1000:.0f} | {d / p:.1f}x |", flush=True)
print("load", os.getloadavg())
