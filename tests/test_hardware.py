"""Simulated device tiers and the virtual clock: tier arithmetic, stragglers, deadlines (drop and
partial), availability, seeded dropouts, selection policies, config validation, and the hospital
example where the deadline changes which strategy reaches the target first."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import digits_config

from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.errors import ConfigError
from engine.hardware.clock import (
    DROPOUT,
    OK,
    PARTIAL,
    STRAGGLER,
    VirtualClock,
    compute_seconds,
    transfer_seconds,
)
from engine.hardware.outlook import clock_warnings, time_to_target
from engine.hardware.tiers import TIERS, Tier
from engine.strategies.base import Strategy
from engine.types import ClientInfo, ClientResult

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hospital_network_deadline.json"

# A tier whose figures make the arithmetic easy to check by hand: 1 GFLOP/s, 1 Mbit/s both ways.
UNIT = {"flops": 1e9, "up_bps": 1e6, "down_bps": 1e6, "availability": 1.0, "dropout": 0.0}


def make_clock(
    clients: list[dict], n_train: list[int], flops: list[int], **config
) -> tuple[VirtualClock, list[ClientInfo]]:
    """A clock over a roster built from ``clients`` (one spec each), without any data."""
    cfg = parse_config(digits_config(clients=clients, **config))
    infos = [
        ClientInfo(i, s.name, s, n, 10) for i, (s, n) in enumerate(zip(cfg.roster(), n_train, strict=True))
    ]
    return VirtualClock(cfg, infos, dict(enumerate(flops))), infos


def client(name: str, tier: str | None = "unit", **extra) -> dict:
    return {
        "name": name,
        "model": {"arch": "mlp", "hidden": 8},
        "epochs": 1,
        "batch_size": 10,
        "tier": tier,
        **extra,
    }


def result(c: ClientInfo, samples: float) -> ClientResult:
    return ClientResult(c, {}, c.n_train, {}, {"samples_seen": float(samples)})


def default_select(candidates, rng, fraction):
    return Strategy.select(None, candidates, rng, fraction)  # type: ignore[arg-type]


# ---- tier arithmetic ---------------------------------------------------------------------------
def test_compute_and_transfer_seconds_match_hand_computed_figures():
    laptop = TIERS.get("laptop-cpu")  # 1e11 FLOP/s, 40 Mbit/s up, 90 Mbit/s down
    # 100 samples x 2 epochs x 3 x 1 MFLOP / 1e11 FLOP/s = 6 ms
    assert compute_seconds(200, 1e6, laptop.flops) == pytest.approx(6e-3, rel=1e-12)
    # 90 kB down at 90 Mbit/s = 8 ms; 40 kB up at 40 Mbit/s = 8 ms
    assert transfer_seconds(90_000, 40_000, laptop) == pytest.approx(16e-3, rel=1e-12)


def test_settle_times_one_client_from_its_actual_work_and_bytes():
    clock, (c,) = make_clock([client("a")], [100], [2_000_000], tiers={"unit": UNIT})
    plans = clock.plan(1, [c], {0: 250_000}, np.random.default_rng(0))
    assert plans[0].est_compute_s == pytest.approx(0.6)  # 100 x 1 epoch x 3 x 2 MFLOP / 1 GFLOP/s
    assert plans[0].est_transfer_s == pytest.approx(4.0)  # 250 kB x 8 / 1 Mbit/s, both ways (up = down)
    # it actually did 50 samples and sent 125 kB: 0.3 s compute, 2 s down + 1 s up
    timing = clock.settle(1, [result(c, 50)], plans, {0: 125_000}, {0: 250_000})
    m = timing.client_metrics[0]
    assert m["sim_compute_s"] == pytest.approx(0.3)
    assert m["sim_transfer_s"] == pytest.approx(3.0)
    assert m["sim_total_s"] == pytest.approx(3.3)
    assert m["status"] == OK
    assert timing.round_metrics["sim_round_s"] == pytest.approx(3.3)
    assert timing.round_metrics["sim_time_s"] == pytest.approx(3.3)


def test_custom_tier_with_base_and_per_client_overrides():
    cfg = parse_config(
        digits_config(
            tiers={"clinic": {"base": "laptop-cpu", "up_bps": 5e6}},
            clients=[
                client("a", "clinic"),
                client("b", "clinic", tier_overrides={"flops": 2e9, "availability": 0.5}),
            ],
        )
    )
    infos = [ClientInfo(i, s.name, s, 10, 10) for i, s in enumerate(cfg.roster())]
    clock = VirtualClock(cfg, infos, {0: 1, 1: 1})
    a, b = clock.tiers[0], clock.tiers[1]
    laptop = TIERS.get("laptop-cpu")
    assert (a.up_bps, a.down_bps, a.flops, a.availability) == (
        5e6,
        laptop.down_bps,
        laptop.flops,
        laptop.availability,
    )
    assert (b.up_bps, b.flops, b.availability, b.dropout) == (5e6, 2e9, 0.5, laptop.dropout)
    assert "laptop-cpu" in a.source


# ---- stragglers and deadlines --------------------------------------------------------------------
def four_speeds(**config):
    """Clients whose full rounds take 0.5, 0.9, 1.1 and 2.0 simulated seconds (compute 0.1 s each,
    100 kB both ways over links of different speed)."""
    tiers = {
        f"t{i}": {**UNIT, "up_bps": bps, "down_bps": bps}
        for i, bps in enumerate([8e5 * 2 / 0.4, 8e5 * 2 / 0.8, 8e5 * 2 / 1.0, 8e5 * 2 / 1.9])
    }
    specs = [client(f"c{i}", f"t{i}") for i in range(4)]
    return make_clock(specs, [100] * 4, [333_333.3333333333] * 4, tiers=tiers, **config)


def run_round(clock, infos, down=100_000, up=100_000, rnd=1):
    plans = clock.plan(rnd, infos, {c.id: down for c in infos}, np.random.default_rng(0))
    results = [result(c, c.n_train * plans[c.id].work_fraction) for c in infos if not plans[c.id].dropped]
    return plans, clock.settle(
        rnd, results, plans, {r.client.id: up for r in results}, {c.id: down for c in infos}
    )


def test_the_slowest_tier_sets_the_round_time_without_a_deadline():
    clock, infos = four_speeds()
    _, timing = run_round(clock, infos)
    totals = [timing.client_metrics[c.id]["sim_total_s"] for c in infos]
    assert totals == pytest.approx([0.5, 0.9, 1.1, 2.0])
    assert timing.round_metrics["sim_round_s"] == pytest.approx(2.0)
    assert [r.client.id for r in timing.kept] == [0, 1, 2, 3]
    assert timing.round_metrics["n_stragglers"] == 0


def test_a_deadline_drops_exactly_the_clients_that_cannot_make_it():
    clock, infos = four_speeds(deadline=1.0)
    plans, timing = run_round(clock, infos)
    assert [r.client.id for r in timing.kept] == [0, 1]
    assert [timing.client_metrics[i]["status"] for i in range(4)] == [OK, OK, STRAGGLER, STRAGGLER]
    assert timing.round_metrics["sim_round_s"] == pytest.approx(1.0)  # the server waited until the deadline
    assert timing.round_metrics["n_stragglers"] == 2 and timing.round_metrics["n_dropped"] == 2
    # c3 misses the deadline before it could even upload (0.1 + 0.95 s): it is not trained at all;
    # c2 could only be found late after uploading (0.1 + 0.5 + 0.5 s): it trained, then was dropped
    assert plans[3].dropped and not plans[2].dropped
    assert sum("c2" in msg or "c3" in msg for _, msg in timing.events) == 2


def test_partial_policy_accepts_the_share_of_work_that_fits():
    clock, infos = four_speeds(deadline=1.0, deadline_policy="partial")
    plans, timing = run_round(clock, infos)
    # c2 has 1.0 - 1.0 s of transfer left for compute: no step fits; c3's transfers alone exceed it
    assert plans[2].dropped and plans[3].dropped
    assert [r.client.id for r in timing.kept] == [0, 1]


def test_partial_work_fraction_makes_fit_run_only_the_steps_that_fit():
    import torch

    from engine.core.training import fit

    tier = {"unit": {**UNIT, "up_bps": 8e6, "down_bps": 8e6}}  # 100 kB each way: 0.2 s
    # 100 samples x 3 x 1/300 GFLOP = 1 s of compute; 0.6 s of it fit in a 0.8 s deadline -> 6 of
    # 10 batches of 10
    clock, (c,) = make_clock(
        [client("a")], [100], [1e9 / 300], tiers=tier, deadline=0.8, deadline_policy="partial"
    )
    plan = clock.plan(1, [c], {0: 100_000}, np.random.default_rng(0))[0]
    assert plan.status == PARTIAL and not plan.dropped
    model = torch.nn.Linear(2, 2)
    stats = fit(
        model,
        torch.zeros(100, 2),
        torch.zeros(100, dtype=torch.long),
        lambda xb, yb: torch.nn.functional.cross_entropy(model(xb), yb),
        torch.optim.SGD(model.parameters(), lr=0.1),
        1,
        10,
        torch.Generator().manual_seed(0),
        work_fraction=plan.work_fraction,
    )
    assert stats.steps == 6 and stats.samples == 60
    timing = clock.settle(1, [result(c, stats.samples)], {0: plan}, {0: 100_000}, {0: 100_000})
    m = timing.client_metrics[0]
    assert m["status"] == PARTIAL and m["sim_total_s"] == pytest.approx(0.8)
    assert timing.kept and timing.round_metrics["n_partial"] == 1


def test_clients_without_a_tier_take_no_time_and_an_untiered_roster_adds_no_metrics():
    clock, infos = make_clock([client("a"), client("b", None)], [100, 100], [1e6, 1e6], tiers={"unit": UNIT})
    _, timing = run_round(clock, infos)
    assert timing.client_metrics[1] == {"status": OK}
    assert timing.round_metrics["sim_round_s"] == pytest.approx(timing.client_metrics[0]["sim_total_s"])
    plain, infos = make_clock([client("a", None)], [100], [1e6])
    _, timing = run_round(plain, infos)
    assert timing.round_metrics == {} and timing.client_metrics == {} and len(timing.kept) == 1


# ---- availability, dropouts, seeds ---------------------------------------------------------------
def test_availability_zero_means_never_selected():
    clock, infos = make_clock(
        [client("never", tier_overrides={"availability": 0.0}), client("always")],
        [10, 10],
        [1, 1],
        tiers={"unit": UNIT},
    )
    for rnd in range(1, 51):
        online = clock.online(rnd, infos, np.random.default_rng(rnd))
        assert [c.name for c in online] == ["always"]
        assert clock.select(rnd, online, np.random.default_rng(rnd), 1.0, default_select) == online


def test_availability_is_drawn_per_client_and_round_at_the_tier_rate():
    clock, infos = make_clock(
        [client(f"c{i}", tier_overrides={"availability": 0.3}) for i in range(20)],
        [10] * 20,
        [1] * 20,
        tiers={"unit": UNIT},
    )
    online = [len(clock.online(rnd, infos, np.random.default_rng(0))) for rnd in range(1, 101)]
    assert 0.25 < np.mean(online) / 20 < 0.35  # 2000 Bernoulli(0.3) draws: sd 0.01


def dropouts(seed: int, names: list[str], rounds: int = 30) -> dict[str, list[int]]:
    clock, infos = make_clock(
        [client(n, tier_overrides={"dropout": 0.4}) for n in names],
        [10] * len(names),
        [1] * len(names),
        tiers={"unit": UNIT},
        seed=seed,
    )
    out: dict[str, list[int]] = {n: [] for n in names}
    for rnd in range(1, rounds + 1):
        for cid, plan in clock.plan(rnd, infos, {c.id: 0 for c in infos}, np.random.default_rng(rnd)).items():
            if plan.status == DROPOUT:
                out[infos[cid].name].append(rnd)
    return out


def test_same_seed_gives_the_same_dropouts_whatever_other_clients_exist():
    a = dropouts(7, ["x", "y", "z"])
    assert a == dropouts(7, ["x", "y", "z"])
    assert dropouts(7, ["w", "y"])["y"] == a["y"]  # another roster around "y"
    assert a != dropouts(8, ["x", "y", "z"])
    assert 4 < len(a["x"]) < 20  # 30 rounds at 0.4


def test_a_dropout_does_not_report_and_is_recorded():
    clock, infos = make_clock(
        [client("a", tier_overrides={"dropout": 1.0}), client("b")],
        [100, 100],
        [1e6, 1e6],
        tiers={"unit": UNIT},
    )
    clock.online(1, infos, np.random.default_rng(0))
    plans, timing = run_round(clock, infos)
    assert plans[0].dropped and plans[0].status == DROPOUT
    assert [r.client.id for r in timing.kept] == [1]
    assert timing.client_metrics[0]["status"] == DROPOUT
    assert timing.round_metrics["n_dropouts"] == 1 and timing.round_metrics["n_dropped"] == 1
    assert any("a dropped out" in msg for _, msg in timing.events)


# ---- selection -----------------------------------------------------------------------------------
def test_all_selection_trains_every_online_client_whatever_the_fraction():
    clock, infos = four_speeds(selection="all", fraction=0.25)
    assert clock.select(1, infos, np.random.default_rng(0), 0.25, default_select) == infos
    rand, infos = four_speeds(fraction=0.25)
    assert len(rand.select(1, infos, np.random.default_rng(0), 0.25, default_select)) == 1


def test_deadline_aware_selection_prefers_clients_expected_in_time():
    clock, infos = four_speeds(selection="deadline_aware", deadline=1.0)
    clock.param_bytes = {c.id: 100_000 for c in infos}
    for seed in range(10):
        chosen = clock.select(1, infos, np.random.default_rng(seed), 0.5, default_select)
        assert [c.id for c in chosen] == [0, 1]  # exactly the two that fit, never a straggler
        one = clock.select(1, infos, np.random.default_rng(seed), 0.25, default_select)
        assert len(one) == 1 and one[0].id in (0, 1)
        three = clock.select(1, infos, np.random.default_rng(seed), 0.75, default_select)
        assert {0, 1} <= {c.id for c in three} and len(three) == 3


def test_selection_keeps_the_strategy_s_last_word():
    clock, infos = four_speeds(selection="all")
    assert clock.select(1, infos, np.random.default_rng(0), 1.0, lambda c, r, f: []) == []


# ---- checkpoints and helpers ---------------------------------------------------------------------
def test_clock_state_round_trips_and_time_keeps_accumulating():
    clock, infos = four_speeds()
    run_round(clock, infos)
    fresh, _ = four_speeds()
    fresh.load_state_dict(clock.state_dict())
    _, timing = run_round(fresh, infos, rnd=2)
    assert timing.round_metrics["sim_time_s"] == pytest.approx(4.0)
    assert fresh.last_up == {0: 100_000, 1: 100_000, 2: 100_000, 3: 100_000}


def test_time_to_target_finds_the_first_crossing():
    rows = [
        {"sim_time_s": 1.0, "acc": 0.5},
        {"sim_time_s": 2.5, "acc": 0.81},
        {"sim_time_s": 3.0, "acc": 0.7},
    ]
    assert time_to_target(rows, "acc", 0.8) == 2.5
    assert time_to_target(rows, "acc", 0.9) is None
    assert time_to_target(rows, "acc", 0.6, x="sim_time_s", higher_is_better=False) == 1.0


# ---- catalogue and config validation ---------------------------------------------------------------
def test_catalogue_has_the_named_tiers_with_sources():
    assert {
        "phone-low",
        "phone-high",
        "raspberry-pi",
        "jetson",
        "laptop-cpu",
        "workstation-gpu",
        "datacenter-gpu",
    } <= set(TIERS.names())
    for name in TIERS.names():
        tier = TIERS.get(name)
        assert isinstance(tier, Tier) and tier.source and ("http" in tier.source or "arXiv" in tier.source)
        assert set(tier.as_dict()) >= {
            "name",
            "flops",
            "up_bps",
            "down_bps",
            "availability",
            "dropout",
            "source",
        }
    speeds = [TIERS.get(n).flops for n in ("phone-low", "laptop-cpu", "workstation-gpu", "datacenter-gpu")]
    assert speeds == sorted(speeds)
    from engine.catalog import catalog

    assert {t["name"] for t in catalog()["tiers"]} == set(TIERS.names())


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"clients": [client("a", "quantum-pc")]},
            "unknown device tier 'quantum-pc'; valid tiers: datacenter-gpu",
        ),
        ({"clients": [client("a", None, tier_overrides={"flops": 1e9})]}, "tier_overrides needs a tier"),
        (
            {"tiers": {"laptop-cpu": {"flops": 1e9, "up_bps": 1, "down_bps": 1}}},
            "'laptop-cpu' is a built-in tier",
        ),
        ({"tiers": {"x": {"base": "mainframe"}}}, "unknown base tier 'mainframe'"),
        ({"tiers": {"x": {"flops": 1e9}}}, "a custom tier needs up_bps, down_bps"),
        ({"clients": [client("a", "laptop-cpu", tier_overrides={"dropout": 1.5})]}, "dropout"),
        ({"deadline": 0}, "deadline"),
        ({"selection": "fastest"}, "selection"),
    ],
)
def test_config_errors_name_the_fix(change, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        parse_config(digits_config(**change))


def test_warnings_before_launch():
    cfg = parse_config(digits_config(deadline=1.0))
    assert any("no client has a tier" in w for w in clock_warnings(cfg))
    from engine.data import load_dataset
    from engine.tracking.storage import default_data_dir

    example = parse_config(json.loads(EXAMPLE.read_text()))
    data = load_dataset(example.data, default_data_dir())
    warnings = clock_warnings(example, data.input_spec, data.n_outputs, len(data) // 12)
    late = [w for w in warnings if "expected to miss" in w]
    assert len(late) == 1 and "3 client(s)" in late[0] and "rural-clinic-1" in late[0]


# ---- end to end ----------------------------------------------------------------------------------
def sim_config(**overrides):
    """Two fast clients and two on a slow tier (1 Mbit/s: ~0.18 s to move an 11 kB model both ways;
    10 MFLOP/s: ~0.46 s for one epoch over ~290 samples)."""
    tiers = {"slow": {**UNIT, "flops": 1e7}, "fast": {**UNIT, "flops": 1e12, "up_bps": 1e9, "down_bps": 1e9}}
    base = digits_config(
        rounds=2,
        checkpoint_every=0,
        tiers=tiers,
        clients=[
            {"name": "fast", "count": 2, "model": {"arch": "mlp", "hidden": 16}, "tier": "fast"},
            {"name": "slow", "count": 2, "model": {"arch": "mlp", "hidden": 16}, "tier": "slow"},
        ],
    )
    base["data"] = {"dataset": "digits", "partition": {"method": "iid"}}
    return {**base, **overrides}


def test_simulation_records_simulated_time_and_statuses(store):
    sim = Simulation(parse_config(sim_config(deadline=0.5, deadline_policy="partial")), store=store)
    sim.run()
    rm = store.round_metrics(sim.run_id)
    sim_time = rm[rm.key == "sim_time_s"].sort_values("round")["value"].tolist()
    rounds = rm[rm.key == "sim_round_s"].sort_values("round")["value"].tolist()
    assert sim_time == pytest.approx(np.cumsum(rounds).tolist()) and all(0 < r <= 0.5 + 1e-9 for r in rounds)
    last = sim.history[-1].clients
    for record in sim.history:
        for cid in (2, 3):  # the slow tier needs ~0.64 s: it does the part of its epoch that fits
            m = record.clients[cid]
            assert m["status"] == PARTIAL and m["completed"] == 1.0
            assert 0.2 < m["work_fraction"] < 0.8 and 0.4 < m["sim_total_s"] <= 0.5 + 1e-9
            assert m["samples_seen"] < sim.clients[cid].n_train
    for cid in (0, 1):
        assert last[cid]["status"] == OK and last[cid]["sim_total_s"] < 0.01


def test_simulation_drop_policy_keeps_only_clients_in_time():
    sim = Simulation(parse_config(sim_config(deadline=0.05)))
    sim.run()
    for record in sim.history:
        assert record.metrics["sim_round_s"] == pytest.approx(0.05)
        assert record.clients[2]["completed"] == 0.0 and record.clients[3]["completed"] == 0.0
        assert record.clients[0]["completed"] == 1.0
        assert record.metrics["n_stragglers"] == 2


def test_resumed_run_continues_the_simulated_clock(store):
    cfg = parse_config(sim_config(rounds=4, checkpoint_every=2))
    full = Simulation(cfg)
    full.run()
    first = Simulation(cfg, store=store)
    first.setup()
    for rnd in (1, 2):
        first.round(rnd)
    second = Simulation(cfg, store=store, run_id=first.run_id)
    second.run(resume=True)
    assert second.history[-1].metrics["sim_time_s"] == pytest.approx(full.history[-1].metrics["sim_time_s"])


@pytest.mark.slow
def test_hospital_example_deadline_changes_which_strategy_reaches_the_target_first():
    """No deadline: every round waits for the rural clinics' ADSL uploads, so LG-FedAvg (a few
    hundred parameters per message) reaches 80% mean local accuracy long before FedAvg-by-arch
    (whole models). With the 15 ms deadline the rural clinics miss every round under both; under
    FedAvg-by-arch they still receive their group's shared model, under LG-FedAvg their personal
    bodies never train, so only FedAvg-by-arch reaches the target."""
    base = json.loads(EXAMPLE.read_text())
    found = {}
    for strategy in ("fedavg_by_arch", "lg_fedavg"):
        for deadline in (None, base["deadline"]):
            cfg = parse_config(
                {
                    **base,
                    "rounds": 20,
                    "checkpoint_every": 0,
                    "deadline": deadline,
                    "strategy": {"name": strategy},
                }
            )
            sim = Simulation(cfg)
            sim.run()
            found[strategy, deadline] = time_to_target(
                [r.metrics for r in sim.history], "local_acc_mean", 0.8
            )
            if deadline is not None:
                rural = [c.id for c in sim.clients if c.name.startswith("rural")]
                assert all(r.clients[cid].get("completed", 0.0) == 0.0 for r in sim.history for cid in rural)
    fedavg, lg = found["fedavg_by_arch", None], found["lg_fedavg", None]
    assert fedavg is not None and lg is not None and lg * 5 < fedavg
    fedavg_d, lg_d = found["fedavg_by_arch", base["deadline"]], found["lg_fedavg", base["deadline"]]
    assert fedavg_d is not None and lg_d is None
    assert math.isfinite(fedavg_d) and fedavg_d < fedavg
