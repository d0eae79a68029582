"""The ETA (engine/tracking/eta.py) replayed on recorded runs (tests/data/eta_*.json, written by
``python -m bench.eta_trace`` on this 2-core machine while other work ran): no wall time here.

Every estimate is compared with what the run really took after that round. The old estimate
(remaining rounds x the mean of the rounds so far) counted the first round's one-off costs (4-8 s
against 0.3-3 s for the others) into every later round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.tracking.eta import remaining_seconds, steady_round_time

DATA = Path(__file__).parent / "data"
TRACES = {
    (path.stem, label): run["times"]
    for path in sorted(DATA.glob("eta_*.json"))
    for label, run in json.loads(path.read_text())["runs"].items()
}
# in the two-run recordings the 30-round run's partner ends after its round 20: from then on it
# runs alone, 2-3x faster, which no estimate from its own past can foresee
CHANGES = {key: 20 for key in TRACES if key[1] == "cnn x10, 30 rounds"}
STEADY = [key for key in TRACES if key not in CHANGES]


def ratios(times: list[float], estimate, first: int = 3, last: int | None = None) -> list[float]:
    """Estimate / truth after each completed round from ``first`` (the truth: the rest's sum)."""
    last = len(times) - 1 if last is None else last
    return [estimate(times[:k], len(times)) / sum(times[k:]) for k in range(first, last + 1)]


def naive(times: list[float], total: int) -> float:
    return (total - len(times)) * sum(times) / len(times)


def test_the_recordings_hold_what_the_test_needs():
    assert len(STEADY) >= 4 and CHANGES
    for times in TRACES.values():
        assert times[0] > 2 * sorted(times[1:])[len(times) // 2]  # round 1 is warm-up in every one


# recorded while the machine's other load stayed about level (the spread of their round times
# after the first is under 0.2) ...
LEVEL = [("eta_cli_quickstart", "quick start"), ("eta_app_1", "cnn x10, 20 rounds")]


@pytest.mark.parametrize("key", LEVEL, ids=["/".join(k) for k in LEVEL])
def test_from_round_3_within_30_percent_of_the_truth(key):
    got = [round(r, 2) for r in ratios(TRACES[key], remaining_seconds)]
    assert all(abs(r - 1) <= 0.3 for r in got), got


@pytest.mark.parametrize("key", STEADY, ids=["/".join(k) for k in STEADY])
def test_with_bursts_of_other_work_within_60_percent(key):
    # ... and while other work came in bursts that made single rounds up to 2x slower (which no
    # estimate can foresee): never further off than 60%, and more often inside 30% than the old way
    times = TRACES[key]
    got = ratios(times, remaining_seconds)
    assert all(abs(r - 1) <= 0.6 for r in got), [round(r, 2) for r in got]
    assert sum(abs(r - 1) <= 0.3 for r in got) >= sum(abs(r - 1) <= 0.3 for r in ratios(times, naive))


def test_the_old_estimate_failed_on_the_same_recordings():
    failing = [
        key
        for key in STEADY
        if sum(abs(r - 1) <= 0.3 for r in ratios(TRACES[key], naive)) < 0.8 * (len(TRACES[key]) - 3)
    ]
    assert len(failing) >= 2


@pytest.mark.parametrize("key", sorted(CHANGES), ids=["/".join(k) for k in sorted(CHANGES)])
def test_after_a_change_of_pace_it_catches_up(key):
    times, change = TRACES[key], CHANGES[key]
    before = ratios(times, remaining_seconds, 3, change)
    assert all(r > 1 for r in before[-3:])  # it could not know the partner would end
    after = ratios(times, remaining_seconds, change + 4, len(times) - 3)  # while 3 rounds or more remain

    def off(rs: list[float]) -> float:
        return max(abs(r - 1) for r in rs)

    assert off(after) < off(before[-3:]) / 2, [round(r, 2) for r in after]


def test_no_estimate_from_one_round_and_none_left_at_the_end():
    assert remaining_seconds([52.0], 20) is None
    assert remaining_seconds([52.0, 44.0, 3.0, 2.0, 4.0], 5) == 0.0
    assert steady_round_time([52.0, 44.0, 3.0]) == pytest.approx(3.0)  # the run: 1-2 were warm-up
    assert steady_round_time([3.0, 3.2, 2.8, 3.1]) == pytest.approx(3.025)  # nothing is warm-up here


def test_the_round_in_progress_counts():
    times = [9.0, 2.0, 2.0, 2.0]
    assert remaining_seconds(times, 10) == pytest.approx(12.0)
    assert remaining_seconds(times, 10, in_round_s=1.5) == pytest.approx(10.5)
    assert remaining_seconds(times, 10, in_round_s=5.0) == pytest.approx(
        10.0
    )  # overdue: the rest still counts
