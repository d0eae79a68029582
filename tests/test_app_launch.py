"""Launch page (AppTest): strategies that cannot run the roster are disabled with their reason, the
parameter form comes from the strategy's own model, a launch starts a run through the run manager
and opens its Results page, several strategies and seeds make a sweep."""

from __future__ import annotations

import os

from streamlit.testing.v1 import AppTest

from engine.design import choices, document, launching, scenarios
from tests.test_app_support import app, assert_clean


def box(at: AppTest, name: str):
    return next(c for c in at.checkbox if c.label == name)


def tiny() -> dict:
    return document.normalize(
        {
            "name": "tiny launch",
            "rounds": 2,
            "checkpoint_every": 0,
            "data": {"dataset": "digits", "max_samples": 300, "partition": {"method": "iid"}},
            "clients": [{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 16}}],
        }
    )


def test_disabled_strategies_show_their_reason() -> None:
    at = app("launch", template="hospital")
    assert_clean(at)
    assert box(at, "fedavg").disabled and box(at, "fedmd").disabled
    assert not box(at, "fedproto").disabled and box(at, "fedproto").value  # the template's strategy
    captions = " ".join(c.value for c in at.caption)
    assert "fedavg needs identical models" in captions and "public" in captions
    # the parameter form is generated from FedProto's Params model
    labels = [n.label for n in at.number_input]
    assert "Lam" in labels
    assert any("FedProto" in m.value and "arxiv" in m.value.lower() for m in at.markdown)


def test_strategy_parameters_reach_the_design() -> None:
    at = app("launch", design=tiny())
    box(at, "fedavg").uncheck().run()
    box(at, "fedprox").check().run()
    mu = next(n for n in at.number_input if n.label == "Mu")
    mu.set_value(0.5).run()
    assert_clean(at)
    assert at.session_state["design"]["strategy"] == {"name": "fedprox", "mu": 0.5}
    rounds = next(n for n in at.number_input if n.label == "Rounds")
    rounds.set_value(7).run()
    assert at.session_state["design"]["rounds"] == 7


def test_launch_opens_the_run_and_it_finishes() -> None:
    at = app("launch", design=tiny())
    assert at.button(key="launch.go").label == "Launch"
    at.button(key="launch.go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.session_state["results_run"]
    mgr = launching.manager(os.environ["FEDMOSAIC_DB"])
    assert mgr.wait(run_id, 120) == "finished"
    run = mgr.store.get_run(run_id)
    assert run["name"] == "tiny launch" and run["rounds"] == 2 and run["current_round"] == 2
    assert at.title[0].value == "tiny launch"  # the run's Results page


def test_sweep_label_and_invalid_seeds() -> None:
    at = app("launch", design=tiny())
    box(at, "fedprox").check().run()
    at.text_input(key=next(t.key for t in at.text_input if t.label == "Seeds")).set_value("0-2").run()
    assert at.button(key="launch.go").label == "Launch 6 runs (2 strategies × 3 seeds)"
    at.text_input(key=next(t.key for t in at.text_input if t.label == "Seeds")).set_value("0, x").run()
    assert at.button(key="launch.go").disabled
    assert any("'x' is not a seed" in e.value for e in at.error)


def test_sweep_launches_a_group() -> None:
    at = app("launch", design={**tiny(), "rounds": 1})
    box(at, "fedavgm").check().run()
    at.text_input(key=next(t.key for t in at.text_input if t.label == "Seeds")).set_value("0, 1").run()
    at.button(key="launch.go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    mgr = launching.manager(os.environ["FEDMOSAIC_DB"])
    runs = mgr.store.list_runs()
    assert len(runs) == 4 and len({r["group_id"] for r in runs}) == 1
    assert sorted((r["variant"], r["seed"]) for r in runs) == [
        ("fedavg", 0),
        ("fedavg", 1),
        ("fedavgm", 0),
        ("fedavgm", 1),
    ]
    assert at.title[0].value == "Runs"
    assert at.session_state["runs.search"] == runs[0]["group_id"]  # the Runs page shows the sweep
    for r in runs:
        assert mgr.wait(r["id"], 120) == "finished"


def test_ray_without_the_extra_is_refused_with_the_install_hint(monkeypatch) -> None:
    from engine.executors import ray as ray_executor

    monkeypatch.setattr(ray_executor, "available", lambda: False)
    assert "pip install 'fedmosaic[ray]'" in choices.executor_unavailable()["ray"]
    at = app("launch", design={**tiny(), "executor": "ray"})
    errors = " ".join(e.value for e in at.error)
    assert "pip install 'fedmosaic[ray]'" in errors
    assert next(b for b in at.button if b.key == "launch.go").disabled
    monkeypatch.setattr(ray_executor, "available", lambda: True)
    assert choices.executor_unavailable() == {}


def test_refusals_speak_the_page_and_carry_the_suggestions() -> None:
    at = app("launch", template="hospital")
    captions = [c.value for c in at.caption]
    fedavg = next(c for c in captions if "fedavg needs identical models" in c)
    # clients numbered as the roster shows them (from 0: Northgate is the roster's row 0), and the
    # CLI's alternatives in the page
    assert fedavg.startswith("clients 0 (Northgate) and 1 (Riverside) both use cnn but with different sizes")
    assert any(
        c.startswith(":material/lightbulb: **Try instead** (these can run it): fedavg_by_arch, ")
        for c in captions
    )
    # a page control where the engine names a config key
    fedmd = next(c for c in captions if c.startswith("fedmd needs a public/proxy set"))
    assert "set **Public fraction** (Data > Held-out sets and sampling) above 0" in fedmd
    assert not any("data.public_fraction" in c for c in captions)


def test_an_imported_strategy_that_cannot_run_says_why() -> None:
    design = scenarios.template("hospital")
    design["strategy"] = {"name": "fedavg"}  # mixed architectures: fedavg cannot run them
    at = app("launch", design=document.normalize(design))
    assert_clean(at)
    warning = " ".join(w.value for w in at.warning)
    assert "strategy **fedavg**" in warning and "cannot run this roster" in warning
    assert "needs identical models" in warning and "fedavg_by_arch" in warning
    assert box(at, "fedavg").disabled and not box(at, "fedavg").value


def test_the_primary_metric_and_its_reason_are_shown_before_launch() -> None:
    at = app("launch", template="hospital_records")
    assert any(
        "Headline of every chart, table and verdict: **balanced accuracy**" in c.value
        and "93% one class" in c.value
        for c in at.caption
    )
    choice = next(s for s in at.selectbox if s.label == "Primary metric")
    choice.set_value("macro_f1").run()
    assert at.session_state["design"]["primary_metric"] == "macro_f1"
    assert any("**macro F1** (chosen in the experiment)" in c.value for c in at.caption)
