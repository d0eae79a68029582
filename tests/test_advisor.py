"""The strategy advisor (engine/advisor.py): pilots of every compatible strategy paired with a
local pilot, scored on the validation split, ranked with intervals and costs; the same advice
from pilots run through the run manager; the winner launched with its paired local runs."""

from __future__ import annotations

import math

import pytest
from conftest import digits_config

from engine import advisor
from engine.config import parse_config
from engine.errors import ConfigError
from engine.tracking import pilots


def design(**over) -> dict:
    """Four MLP sites with a few dozen digits each (iid), three epochs a round: alone, each site
    overfits its few rows; sharing a model clearly beats that within a few rounds (FedAvg +4.6 to
    +9.2 points over local on seed pairs 0-1 ... 6-7 of 3-round pilots, all four pairs positive)."""
    cfg = digits_config(
        rounds=8,
        data={
            "dataset": "digits",
            "partition": {"method": "iid"},
            "max_samples": 300,
            "validation_fraction": 0.25,
        },
        clients=[
            {
                "name": "site",
                "count": 4,
                "model": {"arch": "mlp", "hidden": 32},
                "optimizer": "adam",
                "lr": 0.01,
                "epochs": 3,
                "batch_size": 16,
            }
        ],
    )
    cfg.update(over)
    return cfg


def test_pilots_are_paired_with_local_on_validation_and_ranked_with_costs(monkeypatch):
    scored_keys = []
    original = advisor._validation_values

    def spy(per_client, key):
        scored_keys.append(key)
        return original(per_client, key)

    monkeypatch.setattr(advisor, "_validation_values", spy)
    advice = advisor.advise(
        parse_config(design()), rounds=3, seeds=[0, 1], strategies=["fedavg", "lg_fedavg", "fedmd"], workers=1
    )
    assert set(scored_keys) == {"val_acc"}  # validation figures only, never the test splits
    assert "fedmd" in advice.skipped and "public" in advice.skipped["fedmd"]
    assert [p.strategy for p in advice.pilots] == sorted(
        ["fedavg", "lg_fedavg"], key=lambda n: -next(p.gain for p in advice.pilots if p.strategy == n)
    )
    fedavg = next(p for p in advice.pilots if p.strategy == "fedavg")
    assert fedavg.verdict.over == "seeds" and fedavg.verdict.seeds == (0, 1)
    assert fedavg.verdict.interval.low <= fedavg.gain <= fedavg.verdict.interval.high
    assert fedavg.gain > 0 and advice.recommended is advice.pilots[0]
    assert fedavg.bytes_per_round > 0 and advice.local.bytes_per_round == 0
    b, s = fedavg.projected(advice.design_rounds)
    assert b == pytest.approx(8 * fedavg.bytes_per_round)
    assert math.isnan(s)  # no device tiers in this design: no simulated clock to project
    assert advice.rounds == 3 and advice.design_rounds == 8
    assert advice.pilots[0].strategy in advice.sentence and "validation accuracy" in advice.sentence
    rows = advice.table()
    assert [r["strategy"] for r in rows] == [p.strategy for p in advice.pilots] and rows[0]["rank"] == 1


def test_no_recommendation_when_nothing_beats_local():
    from engine.core.metrics import METRICS

    def run(strategy, seed, values):
        return advisor.PilotRun(strategy, seed, values, 100.0, 1.0, 2, 0.1)

    runs = [run("local", s, {0: 0.9, 1: 0.8}) for s in (0, 1)]
    runs += [run("fedavg", 0, {0: 0.7, 1: 0.6}), run("fedavg", 1, {0: 0.72, 1: 0.61})]
    runs.append(advisor.PilotRun("fedper", 0, {}, math.nan, math.nan, 0, 0.0, error="boom"))
    advice = advisor.build_advice(runs, METRICS["acc"], rounds=2, design_rounds=10, skipped={})
    assert advice.recommended is None and "train locally" in advice.sentence
    assert advice.pilots[-1].strategy == "fedper" and advice.pilots[-1].error == "boom"
    with pytest.raises(ConfigError, match="local pilot"):
        advisor.build_advice(runs[2:], METRICS["acc"], rounds=2, design_rounds=10, skipped={})


def test_a_design_without_validation_rows_gets_them_for_the_pilots_only():
    cfg = parse_config(
        design(data={"dataset": "digits", "partition": {"method": "iid"}, "validation_fraction": 0.0})
    )
    base, notes = advisor.pilot_base(cfg, rounds=3)
    assert base["data"]["validation_fraction"] == advisor.PILOT_VALIDATION and notes
    assert cfg.data.validation_fraction == 0.0
    assert base["rounds"] == 3 and base["checkpoint_every"] == 0


def test_pilots_through_the_run_manager_and_the_one_click_launch(store):
    from engine.tracking.runs import RunManager

    mgr = RunManager(store, workers=2, heartbeat_s=0.2)
    try:
        cfg = design()
        cfg["clients"][0]["tier"] = "laptop-cpu"  # a simulated clock: pilots measure simulated time
        cfg = parse_config(cfg)
        group = pilots.launch_pilots(mgr, cfg, rounds=2, seeds=[0, 1], strategies=["fedavg", "fedper"])
        runs = store.list_runs(group_id=group)
        assert len(runs) == 6
        for r in runs:
            assert mgr.wait(r["id"], timeout=300) == "finished"
        assert pilots.pilot_status(store, group) == {"finished": 6}
        advice = pilots.advice_for(store, group, cfg)
        assert {p.strategy for p in advice.pilots} == {"fedavg", "fedper"} and advice.seeds == [0, 1]
        assert all(p.verdict is not None and len(p.run_ids) == 2 for p in advice.pilots)
        assert all(p.sim_s_per_round > 0 and p.bytes_per_round > 0 for p in advice.pilots)
        winner = advice.pilots[0].strategy
        launched_group, ids = pilots.launch_recommended(mgr, cfg, winner, seeds=[3])
        members = store.list_runs(group_id=launched_group)
        assert {r["strategy"] for r in members} == {winner, "local"} and len(ids) == 2
        assert {r["seed"] for r in members} == {3}
        for run_id in ids:
            mgr.wait(run_id, timeout=300)
    finally:
        mgr.shutdown()
