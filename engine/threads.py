"""The thread policy: how many torch intra-op threads a run's work may use.

A process has a budget of threads (the cores it may use: CPU affinity, a cgroup quota, or
``FEDMOSAIC_THREADS`` / ``OMP_NUM_THREADS`` when set). A run manager that trains ``w`` runs at
once gives each run ``budget // w`` (at least one); a run alone in its process (the command line)
gets the whole budget. A run whose training steps are too small to gain from a second thread
(measured: ``python -m bench.threads``, docs/benchmarks.md) uses one thread whatever its share,
since a parallel region's start and join cost more than the work it splits.

How the count is applied: torch's ``set_num_threads`` sets OpenMP's and MKL's thread count *of
the calling thread* (an OpenMP internal control variable, per thread in libgomp; MKL's local
setting) and the default for threads that have not run torch work yet. So every thread that
computes for a run sets its own count where the work executes (:func:`set_here`): the run's
thread in :meth:`engine.core.simulation.Simulation.run`, each worker of the ``threads`` executor per
job. Two runs in one process therefore each get their share, and the ``threads`` executor never
runs more workers than its run's share. One trap: a thread's first torch operation re-applies
the process default to it, undoing a count set before; :func:`set_here` makes that first
initialisation happen before it sets the count.

Numbers: a matrix product split over two threads sums in another order than on one, so a run's
figures can differ in the last bits between thread counts. The count depends only on the roster,
the cores and the manager's slots (not on the machine's load), so the same config on the same
setup gives the same numbers; the count is written in the run's events and manifest.

Waiting threads: :mod:`engine` sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) before torch loads.
With the default (spinning) policy a thread that waits for its team burns its core; on a machine
busy with other processes the team's threads are descheduled in turn and each step waits for the
slowest, so two threads ran 5-12x *slower* than one there (docs/benchmarks.md, "busy machine").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

MIN_STEP_FLOPS = 8_000_000_000
"""Forward FLOPs of one training step (one sample's forward x batch size, times the clients a
batched step trains at once) below which a second intra-op thread does not pay, so a run keeps
one. Measured on this project's 2-core machine (``python -m bench.threads``, docs/benchmarks.md):
with other work beside it (load 4-7) no step from 1 MFLOP to 6.3 GFLOP (a ResNet with 32 channels
on 32x32 colour images, batch 64) ran faster on two threads than on one (0.15-0.99x). Larger
steps get the run's share; one thread also keeps a run's numbers the same however many runs
share the machine."""
THREADS_MIN_STEP_FLOPS = 50_000_000
"""Forward FLOPs of one client's training step from which the ``threads`` executor (one client
per thread) pays: 1.17x sequential for 10 FedAvg-CNN clients on 28x28 images (81 MFLOP steps),
1.14x for 30 small CNNs on digits (6 MFLOP) but 0.99x for 10 of them and 0.7-0.98x for MLPs,
whose steps are mostly Python holding the interpreter lock."""


def cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def process_budget() -> int:
    """Threads every run of this process may use together: :func:`cores`, or fewer when
    ``FEDMOSAIC_THREADS`` (or ``OMP_NUM_THREADS``) says so."""
    n = cores()
    for var in ("FEDMOSAIC_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return min(n, int(value))
    return n


def share(runs_at_once: int, budget: int | None = None) -> int:
    """Threads of one run when ``runs_at_once`` runs divide the process budget."""
    budget = process_budget() if budget is None else budget
    return max(1, budget // max(1, runs_at_once))


def run_threads(step_flops: float, run_share: int) -> int:
    """Threads a run uses: its share, or one when its largest training step (forward FLOPs) is
    below :data:`MIN_STEP_FLOPS`."""
    return 1 if step_flops < MIN_STEP_FLOPS else max(1, run_share)


def set_here(n: int) -> int:
    """Give the calling thread ``n`` intra-op threads; return the count it had.

    ``torch.get_num_threads`` first: it initialises the thread's count from the process default
    if this thread has not used torch yet, which would otherwise happen at its first operation
    and overwrite ``n``.
    """
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    return before


@contextmanager
def use(n: int) -> Iterator[int]:
    """Run the block with ``n`` intra-op threads on this thread, then restore the previous count."""
    before = set_here(n)
    try:
        yield n
    finally:
        set_here(before)
