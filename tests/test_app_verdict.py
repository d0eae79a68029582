"""The answer first (AppTest): Results opens with the headline row of the primary metric (best and
final round, best rounds, bytes, simulated time) and the verdict against training alone; without a
paired local run it offers one click to launch it; Compare states the verdict of every strategy
with one who-gains chart; the overfitting flag shows when the curves show it."""

from __future__ import annotations

import os

from conftest import digits_config

from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.design import launching, scenarios
from engine.tracking.storage import Store
from tests.test_app_support import app, assert_clean

TINY = {"dataset": "digits", "max_samples": 300, "partition": {"method": "dirichlet", "alpha": 0.5}}


def finished(store: Store, strategy: str, seed: int, **kw) -> str:
    config = parse_config(digits_config(rounds=2, seed=seed, data=TINY, strategy={"name": strategy}, **kw))
    sim = Simulation(config, store=store)
    sim.run()
    return sim.run_id


def texts(at) -> str:
    return " ".join(
        str(e.value)
        for kind in ("success", "info", "warning", "caption", "markdown")
        for e in getattr(at, kind)
    )


def metric_labels(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_results_opens_with_the_headline_row_and_offers_the_paired_local_run():
    store = Store(os.environ["FEDMOSAIC_DB"])
    run_id = finished(store, "fedavg", 0)
    at = app("results", run=run_id)
    assert_clean(at)
    shown = metric_labels(at)
    summary = store.get_run(run_id)["summary"]
    assert shown["At best validation rounds"] == f"{summary['best_local_acc_mean']:.3f}"
    assert shown["Final round"] == f"{summary['local_acc_mean']:.3f}"
    assert any(m.value.startswith("**Accuracy** on each client's own test data") for m in at.markdown)
    assert {"Best round", "Data exchanged", "Simulated time"} <= set(shown)
    assert "Primary metric: **accuracy**" in texts(at)
    assert "No `local` run on the same split and seed" in texts(at)
    mgr = launching.manager(os.environ["FEDMOSAIC_DB"])
    at.button(key="res.baseline").click().run()
    assert not at.exception
    local = [r for r in store.list_runs() if r["strategy"] == "local"]
    assert len(local) == 1 and local[0]["seed"] == 0
    assert mgr.wait(local[0]["id"], 120) == "finished"
    pair = store.get_run(local[0]["id"])
    assert pair["config"]["data"] == store.get_run(run_id)["config"]["data"]
    assert (
        pair["manifest"]["partition_fingerprint"]
        == store.get_run(run_id)["manifest"]["partition_fingerprint"]
    )
    at = app("results", run=run_id)
    assert_clean(at)
    assert "training alone" in texts(
        at
    ) and "One seed: the 95% interval is a t-interval over the 4 clients" in texts(at)
    assert any("Who gains" in str(c.proto.spec) for c in at.get("plotly_chart"))


def test_compare_states_a_verdict_per_strategy_over_seeds():
    store = Store(os.environ["FEDMOSAIC_DB"])
    ids = [finished(store, s, seed) for s in ("fedavg", "fedprox", "local") for seed in (0, 1)]
    at = app("compare")
    at.session_state["cmp.ids"] = ids
    at.run()
    assert_clean(at)
    sentences = [
        s.value
        for kind in ("success", "info", "warning")
        for s in getattr(at, kind)
        if "training alone" in str(s.value)
    ]
    assert len(sentences) == 2 and all("over 2 seeds" in s for s in sentences)
    assert any(s.startswith(("fedavg", "No difference beyond noise between fedavg")) for s in sentences)
    spec = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "Who gains: each strategy minus training alone" in spec


def test_overfitting_is_flagged_on_results():
    store = Store(os.environ["FEDMOSAIC_DB"])
    runs = {}
    for name, held in (
        ("overfits", [0.9, 0.72, 0.8, 1.0, 1.3, 1.6]),
        ("fine", [0.9, 0.7, 0.6, 0.55, 0.5, 0.49]),
    ):
        run_id = store.create_run(digits_config(rounds=6), status="finished", name=name)
        for rnd, (train, val) in enumerate(zip([1.0, 0.6, 0.4, 0.3, 0.2, 0.1], held, strict=True), start=1):
            store.write_round(
                run_id,
                rnd,
                {
                    "train_loss_mean": train,
                    "val_loss_mean": val,
                    "local_acc_mean": 0.8,
                    "best_local_acc_mean": 0.8,
                },
                {},
            )
        runs[name] = run_id
    at = app("results", run=runs["overfits"])
    assert_clean(at)
    assert any(
        "Overfitting: the held-out loss rose from 0.72 (round 2) to 1.6 (round 6)" in w.value
        for w in at.warning
    )
    at = app("results", run=runs["fine"])
    assert_clean(at)
    assert not any("Overfitting" in w.value for w in at.warning)


def test_a_new_tab_offers_the_autosaved_design():
    at = app(template="hospital")
    assert at.session_state["design"]["name"] != scenarios.new_design()["name"]
    first = at.session_state["session_id"]
    fresh = app()  # a new tab: no ?draft= in its address
    assert fresh.session_state["session_id"] != first
    assert any("Continue **" in m.value and "autosaved" in m.value for m in fresh.markdown)
    fresh.button(key="autosave.take").click().run()
    assert_clean(fresh)
    assert fresh.session_state["design"]["name"] == at.session_state["design"]["name"]
    assert not any("autosaved" in m.value for m in fresh.markdown)
    other = app()
    other.button(key="autosave.skip").click().run()
    assert other.session_state["design"]["name"] == scenarios.new_design()["name"]
    assert not any("autosaved" in m.value for m in other.markdown)
