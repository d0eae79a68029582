"""The verdict's maths (engine.reporting.verdict): t-intervals, paired differences over seeds or clients, the
sentence, the overfitting flag, and pairing stored runs with their local baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import digits_config

from engine.config import parse_config
from engine.core.metrics import METRICS
from engine.core.simulation import Simulation
from engine.reporting.pairing import verdicts_for
from engine.reporting.verdict import overfitting, paired_verdict, t_interval


def test_t_interval_by_hand():
    iv = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # mean 3, sd 1.5811, se 0.7071, t(0.975, 4 df) = 2.7764
    assert iv.mean == 3.0 and iv.n == 5
    assert iv.high - iv.mean == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    assert iv.low == pytest.approx(2 * iv.mean - iv.high)
    assert t_interval([1.0, 2.0], level=0.9).high - 1.5 == pytest.approx(
        6.3137515 * math.sqrt(0.5) / math.sqrt(2)
    )
    one = t_interval([0.4, float("nan")])
    assert one.mean == 0.4 and not one.defined and not one.excludes_zero
    assert t_interval([]).n == 0


def test_t_interval_covers_the_true_mean_95_percent_of_the_time_even_with_three_seeds():
    """With three values a normal (z) interval covers about 80%; the t-interval must hold 95%."""
    rng = np.random.default_rng(0)
    samples = rng.normal(0.02, 0.03, size=(4000, 3))
    covered = np.mean([(iv := t_interval(s)).low <= 0.02 <= iv.high for s in samples])
    assert 0.935 <= covered <= 0.965


def _figures(per_seed: dict[int, list[float]]) -> dict[int, dict[int, float]]:
    return {s: dict(enumerate(v)) for s, v in per_seed.items()}


def test_several_seeds_give_an_interval_over_seeds_and_a_sentence():
    base = _figures({0: [0.70, 0.60, 0.80, 0.50], 1: [0.72, 0.58, 0.79, 0.52], 2: [0.69, 0.61, 0.82, 0.49]})
    gains = {0: [0.03, 0.02, -0.01, 0.05], 1: [0.04, 0.01, -0.02, 0.04], 2: [0.02, 0.03, -0.01, 0.05]}
    strat = {s: {c: base[s][c] + g for c, g in enumerate(gains[s])} for s in base}
    v = paired_verdict(
        strat, base, "bacc", strategy="fedproto", names={0: "north", 1: "south", 2: "east", 3: "west"}
    )
    assert v.over == "seeds" and v.seeds == (0, 1, 2)
    assert v.per_seed == pytest.approx([np.mean(gains[s]) for s in (0, 1, 2)])
    assert v.interval.mean == pytest.approx(np.mean([np.mean(g) for g in gains.values()]))
    assert v.outcome == "better" and v.gainers == 3 and v.losers == 1
    # per seed 2.25, 1.75, 2.25 points: sd 0.289, se 0.167, t(0.975, 2 df) 4.303 -> +-0.72
    assert v.sentence == (
        "fedproto beats training alone by 2.1 points of balanced accuracy (95% CI 1.4 to 2.8) "
        "over 3 seeds; 3 of 4 clients gain."
    )
    east = next(c for c in v.clients if c.name == "east")
    assert east.mean == pytest.approx(np.mean([-0.01, -0.02, -0.01])) and east.interval.n == 3


def test_one_seed_gives_an_interval_over_clients_and_says_so():
    base = {0: {0: 0.5, 1: 0.6, 2: 0.7}}
    strat = {0: {0: 0.52, 1: 0.59, 2: 0.71}}
    v = paired_verdict(strat, base, METRICS["acc"], strategy="fedavg", baseline="centralized")
    assert v.over == "clients" and v.interval.n == 3
    assert v.interval.mean == pytest.approx(np.mean([0.02, -0.01, 0.01]))
    assert v.outcome == "noise"
    assert v.sentence.startswith(
        "No difference beyond noise between fedavg and pooled training (centralized): +0.7"
    )
    assert "not how it would move with another seed" in v.interval_note
    lone = paired_verdict({0: {0: 0.6}}, {0: {0: 0.5}}, "acc", strategy="fedavg")
    assert lone.over == "none" and lone.outcome == "unknown" and "too little to judge" in lone.sentence


def test_an_error_metric_counts_a_lower_value_as_a_gain():
    base = {s: {0: 10.0 + s, 1: 12.0} for s in range(3)}
    strat = {s: {0: 8.0 + s + 0.1 * s, 1: 11.0 - 0.1 * s} for s in range(3)}
    v = paired_verdict(strat, base, "rmse", strategy="fedavg")
    assert v.interval.mean > 0 and v.outcome == "better" and v.gainers == 2
    assert "beats training alone by 1.5" in v.sentence and "data units of RMSE" in v.sentence


def test_missing_and_undefined_figures_are_left_out_of_the_pairs():
    base = {0: {0: 0.5, 1: float("nan"), 2: 0.4}, 1: {0: 0.5}}
    strat = {0: {0: 0.6, 1: 0.7, 2: 0.5}, 1: {0: 0.55}, 2: {0: 0.9}}
    v = paired_verdict(strat, base, "auc", strategy="fml")
    assert v.seeds == (0, 1)
    assert v.per_seed == pytest.approx([0.1, 0.05])
    with pytest.raises(ValueError):
        paired_verdict({0: {0: 1.0}}, {1: {0: 1.0}}, "acc", strategy="x")


def test_overfitting_is_a_rising_held_out_loss_while_training_loss_falls():
    rounds = [1, 2, 3, 4, 5, 6]
    train = [1.0, 0.6, 0.4, 0.3, 0.2, 0.1]
    flag = overfitting(rounds, train, [0.9, 0.72, 0.8, 1.0, 1.3, 1.6])
    assert flag is not None and flag.low_round == 2 and flag.last == 1.6
    assert "rose from 0.72 (round 2) to 1.6 (round 6)" in flag.message
    assert overfitting(rounds, train, [0.9, 0.7, 0.6, 0.55, 0.5, 0.52]) is None  # a wiggle at the end
    assert overfitting(rounds, [0.5] * 6, [0.9, 0.72, 0.8, 1.0, 1.3, 1.6]) is None  # training did not fall
    assert overfitting([1, 2], [1.0, 0.5], [0.5, 0.9]) is None  # too short to say


def test_stored_runs_pair_with_their_local_baseline_on_the_same_split(store):
    ids = {}
    for strategy in ("fedavg", "local"):
        for seed in (0, 1):
            sim = Simulation(
                parse_config(digits_config(rounds=2, seed=seed, strategy={"name": strategy})), store=store
            )
            sim.run()
            ids[(strategy, seed)] = sim.run_id
    verdicts, pairings = verdicts_for(store, [ids[("fedavg", 0)], ids[("fedavg", 1)]])
    assert len(verdicts) == 1 and len(pairings) == 1
    v = verdicts[0]
    assert v.baseline == "local" and v.seeds == (0, 1) and v.over == "seeds"
    assert set(v.pairs) == {(ids[("fedavg", s)], ids[("local", s)]) for s in (0, 1)}
    assert pairings[0].missing["centralized"] == [0, 1] and pairings[0].missing["local"] == []
    # the per-client figures are those at each client's best validation round
    cm = store.client_metrics([ids[("fedavg", 0)], ids[("local", 0)]])
    key = f"best_local_{v.metric.key}"

    def last(run_id: str, cid: int) -> float:
        part = cm[(cm["run_id"] == run_id) & (cm["key"] == key) & (cm["client_id"] == cid)]
        return float(part.sort_values("round")["value"].iloc[-1])

    diff0 = np.mean([last(ids[("fedavg", 0)], c) - last(ids[("local", 0)], c) for c in range(4)])
    assert v.per_seed[0] == pytest.approx(diff0)
    # the HTML report states the same verdict, with its data for machines
    from engine.reporting.report import build_report

    html = build_report(store, [ids[("fedavg", 0)], ids[("fedavg", 1)]])
    assert "<h2>Verdict</h2>" in html and v.sentence.replace("'", "&#x27;") in html
    assert 'id="verdict-data"' in html and "Who gains" in html
    # another seed's local run is not a pair
    other = Simulation(
        parse_config(digits_config(rounds=2, seed=5, strategy={"name": "fedavg"})), store=store
    )
    other.run()
    _, alone = verdicts_for(store, [other.run_id])
    assert alone[0].missing["local"] == [5]
