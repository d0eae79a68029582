"""Advisor page (AppTest): pilots of the chosen strategies run in the background, the page ranks
them against training alone with intervals and costs, and one click launches the winner with its
paired local run."""

from __future__ import annotations

import contextlib
import os

from engine.design import document, launching
from engine.errors import RunStateError
from engine.tracking import pilots
from tests.test_app_support import app, assert_clean


def tiny() -> dict:
    return document.normalize(
        {
            "name": "tiny advice",
            "rounds": 4,
            "checkpoint_every": 0,
            "data": {
                "dataset": "digits",
                "max_samples": 300,
                "partition": {"method": "iid"},
                "validation_fraction": 0.25,
            },
            "clients": [
                {
                    "name": "site",
                    "count": 4,
                    "model": {"arch": "mlp", "hidden": 32},
                    "optimizer": "adam",
                    "lr": 0.01,
                    "batch_size": 16,
                }
            ],
        }
    )


def test_pilots_rank_and_the_winner_launches_with_its_local_baseline() -> None:
    at = app("advisor", design=tiny())
    assert_clean(at)
    strategies = at.multiselect[0]
    assert "fedavg" in strategies.options and "local" not in strategies.options
    assert "fedmd" not in strategies.options  # it cannot run this roster (no public set)
    strategies.set_value(["fedavg", "fedper"]).run()
    next(n for n in at.number_input if n.label == "Rounds per pilot").set_value(3).run()
    next(n for n in at.number_input if n.label == "Seeds").set_value(1).run()  # 3 pilot runs, not 6
    at.button[0].click().run()
    assert_clean(at)
    group = at.session_state["advisor_group"]
    mgr = launching.manager(os.environ["FEDMOSAIC_DB"])
    for r in mgr.store.list_runs(group_id=group):
        assert mgr.wait(r["id"], 300) == "finished"
    at.run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["strategy"]) == {"fedavg", "fedper"} and list(table["rank"]) == [1, 2]
    assert "gain over local" in table.columns and "95% interval" in table.columns
    advice = pilots.advice_for(mgr.store, group, document.parse(tiny()))
    winner = advice.recommended
    assert winner is not None, [(p.strategy, p.gain) for p in advice.pilots]
    assert any(winner.strategy in s.value for s in at.success), [s.value for s in at.success]
    launch = at.button(key="adv.launch")
    assert winner.strategy in launch.label
    launch.click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.session_state["results_run"]
    run = mgr.store.get_run(run_id)
    members = mgr.store.list_runs(group_id=run["group_id"])
    assert {r["strategy"] for r in members} == {winner.strategy, "local"}
    for r in members:  # launched as designed; the test need not train them to the end
        with contextlib.suppress(RunStateError):  # it may have finished already
            mgr.cancel(r["id"])
        mgr.wait(r["id"], 300)


def test_a_broken_design_is_sent_back_to_the_design_pages() -> None:
    broken = {**tiny(), "clients": []}
    at = app("advisor", design=broken)
    assert not at.exception
    assert not at.button or all(b.label != "Run the pilots" for b in at.button)
