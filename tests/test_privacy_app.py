"""Privacy in the app's engine side: the roster's privacy columns, the template, the figures of
stored runs (per-client privacy for model cards, the privacy-utility points of a sweep) and their
charts, and launching a sweep."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import digits_config

from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.design import checks, document, roster, roster_table, scenarios
from engine.errors import ConfigError
from engine.privacy import charts as pcharts
from engine.privacy import report

pytest.importorskip("opacus")


def design() -> dict:
    return document.normalize(
        digits_config(
            clients=[
                {
                    "name": "a",
                    "model": {"arch": "mlp", "hidden": 16},
                    "privacy": {"clip_norm": 0.5, "target_epsilon": 3},
                },
                {"name": "b", "model": {"arch": "mlp", "hidden": 16}},
            ]
        )
    )


def test_the_roster_shows_and_edits_each_clients_privacy() -> None:
    d = design()
    frame = roster_table.roster_frame(d)
    assert (
        frame.loc[0, "dp_epsilon"] == 3
        and frame.loc[0, "dp_clip"] == 0.5
        and pd.isna(frame.loc[0, "dp_noise"])
    )
    assert frame.loc[1, ["dp_epsilon", "dp_noise", "dp_clip"]].isna().all()
    frame.loc[1, "dp_noise"] = 1.2  # b: a noise multiplier without a budget
    frame.loc[0, "dp_epsilon"] = None  # a: DP off
    clients = roster_table.frame_to_clients(frame, d)
    assert clients[0]["privacy"] is None
    assert clients[1]["privacy"] == {"noise_multiplier": 1.2, "clip_norm": 1.0}
    bulk = roster_table.apply_to(d, [0, 1], "dp_epsilon", 8.0)
    assert [c["privacy"]["target_epsilon"] for c in roster.expanded_rows(bulk)] == [8.0, 8.0]
    assert roster.expanded_rows(bulk)[0]["privacy"]["clip_norm"] == 0.5  # kept
    cleared = roster_table.apply_to(bulk, [1], "dp_epsilon", 0)
    assert roster.expanded_rows(cleared)[1]["privacy"] is None
    frame = roster_table.roster_frame(d)
    frame.loc[1, "dp_epsilon"] = -2  # typed wrong: kept so validation names it
    issues = checks.client_issues({**d, "clients": roster_table.frame_to_clients(frame, d)})
    assert any("target_epsilon" in m or "greater than 0" in m for m in issues.get(1, []))


def test_the_privacy_template_validates_with_budgets_and_secure_aggregation() -> None:
    t = {t.id: t for t in scenarios.templates()}["privacy_hospitals"]
    assert t.title == "Privacy budget per hospital"
    config = parse_config(scenarios.template("privacy_hospitals"))
    budgets = [c.privacy.target_epsilon if c.privacy else None for c in config.roster()]
    assert budgets == [1.0, 2.0, 8.0, 4.0, None] and config.secure_aggregation is not None
    assert checks.design_problems(scenarios.template("privacy_hospitals")) == []


def test_stored_runs_give_each_clients_privacy_and_the_sweep_points(store) -> None:
    sim = Simulation(parse_config(design() | {"rounds": 2, "checkpoint_every": 0}), store=store)
    sim.run()
    run = store.get_run(sim.run_id)
    cm, rm = store.client_metrics(sim.run_id), store.round_metrics(sim.run_id)
    a = report.client_privacy(run["config"], cm, 0)
    assert (
        a["mechanism"] == "DP-SGD" and 0 < a["epsilon"] <= 3 and a["steps"] > 0 and a["target_epsilon"] == 3
    )
    assert a["epsilon"] == pytest.approx(sim.privacy.summary(0)["epsilon"])
    assert report.client_privacy(run["config"], cm, 1) is None
    lines = report.card_lines(a)
    assert "DP-SGD" in lines[0] and "Poisson" in lines[1] and "budget" in lines[2]
    points = report.utility_points([run], rm)
    assert points.loc[0, "epsilon"] == pytest.approx(a["epsilon"]) and 0 < points.loc[0, "value"] <= 1
    fig = pcharts.epsilon_curves(cm, store.clients(sim.run_id), {0: 3.0})
    assert [t.name for t in fig.data] == ["a", "a: budget"]
    per_client = report.client_points(run["config"], cm, store.clients(sim.run_id), "local_acc")
    assert per_client["epsilon"].iloc[1] == math.inf
    assert len(pcharts.client_tradeoff(per_client, "accuracy").data) == 1


def test_the_sweep_chart_draws_budgets_as_a_line_and_no_dp_as_the_reference() -> None:
    points = pd.DataFrame(
        [
            {
                "run_id": f"r{i}",
                "label": "",
                "strategy": s,
                "variant": f"{s} · {lab}",
                "seed": seed,
                "epsilon": e,
                "value": v,
                "metric": "accuracy",
            }
            for i, (s, lab, e, seed, v) in enumerate(
                [
                    ("fedavg", "ε=1", 0.98, 0, 0.5),
                    ("fedavg", "ε=1", 0.99, 1, 0.6),
                    ("fedavg", "ε=4", 3.9, 0, 0.8),
                    ("fedavg", "no DP", math.inf, 0, 0.9),
                    ("fedprox", "ε=4", 3.95, 0, 0.7),
                ]
            )
        ]
    )
    fig = pcharts.sweep_tradeoff(points)
    names = [t.name for t in fig.data]
    assert names == ["fedavg", "fedavg, no DP", "fedprox"]
    line = fig.data[0]
    assert list(line.y) == pytest.approx([0.55, 0.8]) and line.error_y.array[0] == pytest.approx(
        0.0707, abs=1e-3
    )
    assert list(fig.data[1].y) == [0.9, 0.9]
    assert "no DP" in fig.layout.xaxis.ticktext


def test_a_sweep_sets_each_budget_and_a_no_dp_reference() -> None:
    assert report.parse_epsilons("1, 4, none") == [1.0, 4.0, None]
    with pytest.raises(ConfigError, match="not a number"):
        report.parse_epsilons("1, lots")
    d = design()
    designs = dict(report.sweep_designs(d, [2.0, None]))
    two = designs["ε=2"]["clients"]
    assert two[0]["privacy"]["target_epsilon"] == 2.0 and not two[1].get("privacy")  # only the DP clients
    assert all(not c.get("privacy") for c in designs["no DP"]["clients"])
    plain = document.normalize(digits_config())
    everyone = report.with_budget(plain, 5.0)["clients"]
    assert all(c["privacy"]["target_epsilon"] == 5.0 for c in everyone)  # nobody had DP: everyone gets it

    class Manager:
        def __init__(self) -> None:
            self.calls = []

        def submit(self, config, **kw):
            self.calls.append((config, kw))
            return f"run{len(self.calls)}"

    mgr = Manager()
    group, ids = report.launch_sweep(d, [2.0, None], [0, 1], mgr)
    assert len(ids) == 4 and {kw["group_id"] for _, kw in mgr.calls} == {group}
    assert [kw["variant"] for _, kw in mgr.calls] == ["fedavg · ε=2"] * 2 + ["fedavg · no DP"] * 2


def test_model_cards_get_each_clients_spend_and_the_servers_guarantee() -> None:
    from engine.artifacts.entries import privacy_of

    cfg = design() | {
        "rounds": 2,
        "checkpoint_every": 0,
        "server_dp": {"noise_multiplier": 2.0, "delta": 1e-3},
        "secure_aggregation": {"threshold": 0.5},
    }
    sim = Simulation(parse_config(cfg))
    sim.run()
    assert privacy_of(sim, 0) == sim.privacy.summary(0) and privacy_of(sim, 0)["epsilon"] > 0
    assert privacy_of(sim, 1) is None
    shared = privacy_of(sim, None)
    assert shared["server_dp"]["epsilon"] == pytest.approx(sim.history[-1].metrics["server_epsilon"])
    assert shared["server_dp"]["rounds"] == 2 and shared["secure_aggregation"]["threshold"] == 0.5
    assert set(shared["clients (DP-SGD)"]) == {"a"}
