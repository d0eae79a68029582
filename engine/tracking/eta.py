"""How long a run has left, from the times of the rounds it has done.

The first rounds of a run are often far slower than the rest: the process imports torch's
compiler stack on the first optimiser step, builds and caches modules, faults in the data, and in
the app a second run starting beside it competes for the cores. A run of 20 rounds took 52 s and
44 s for its first two rounds and 1-5 s for each of the others; an estimate of "remaining rounds x
mean round time" said 986 s after round 1 (issue #17). So:

- leading rounds that took more than :data:`WARMUP_RATIO` times the median of the rounds after
  them are warm-up and left out (one by one from the first, while that holds);
- the time per round is the mean of the last :data:`RECENT` rounds after the warm-up (a mean,
  not a median: rounds that also evaluate or checkpoint every N rounds count in proportion);
  unless the last :data:`SHIFT_ROUNDS` rounds agree on another pace (their median more than
  :data:`SHIFT` away from that mean): then the pace changed (another run started or ended
  beside it, the machine got busier or quieter) and their mean is the new pace;
- nothing is estimated from a single round (it may be all warm-up).

Checked on recorded runs (``tests/data/eta_*.json``, ``python -m bench.eta_trace``): within 30%
of the time the run really took from round 3 on.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

WARMUP_RATIO = 2.0
"""A leading round this many times slower than the median of the later ones is warm-up."""
RECENT = 20
"""Rounds the time per round is averaged over."""
SHIFT_ROUNDS = 3
"""Rounds that show a new pace..."""
SHIFT = 0.3
"""...when their median is this far (relative) from the mean of the recent rounds."""


def steady_round_time(times: Sequence[float]) -> float | None:
    """Seconds per round from the completed rounds' times (in round order), warm-up left out;
    ``None`` with fewer than two rounds."""
    xs = [float(t) for t in times if t is not None and math.isfinite(t) and t >= 0]
    if len(xs) < 2:
        return None
    start = 0
    while start < len(xs) - 1 and xs[start] > WARMUP_RATIO * statistics.median(xs[start + 1 :]):
        start += 1
    steady = xs[start:][-RECENT:]
    pace = sum(steady) / len(steady)
    last = steady[-SHIFT_ROUNDS:]
    if len(steady) >= 2 * SHIFT_ROUNDS and abs(statistics.median(last) - pace) > SHIFT * pace:
        pace = sum(last) / len(last)
    return pace


def remaining_seconds(times: Sequence[float], total_rounds: int, in_round_s: float = 0.0) -> float | None:
    """Seconds until the run's last round ends, after ``len(times)`` completed rounds, the next
    one running for ``in_round_s`` seconds so far; ``None`` until it can be estimated."""
    left = max(0, int(total_rounds) - len(times))
    if left == 0:
        return 0.0
    per = steady_round_time(times)
    if per is None:
        return None
    return (left - 1) * per + max(0.0, per - max(0.0, in_round_s))
