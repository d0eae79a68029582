"""Server-side privacy in the round loop: secure aggregation gives FedAvg's model with its extra
bytes and simulated time counted, recovers dropouts or discards a round it cannot complete (with
an event); DP-FedAvg samples clients, clips, noises and reports the accountant's epsilon."""

from __future__ import annotations

import pytest
import torch
from conftest import digits_config

from engine.config import parse_config
from engine.core.simulation import Simulation

pytest.importorskip("opacus")

DATA = {"dataset": "digits", "max_samples": 400, "partition": {"method": "iid"}}


def run(store=None, **overrides) -> Simulation:
    cfg = digits_config(
        rounds=1,
        checkpoint_every=0,
        data=DATA,
        clients=[{"name": "c", "count": 4, "model": {"arch": "mlp", "hidden": 16}, "lr": 0.1}],
    )
    cfg.update(overrides)
    sim = Simulation(parse_config(cfg), store=store)
    sim.run()
    return sim


def test_secure_aggregation_gives_fedavgs_model_and_counts_its_bytes() -> None:
    plain, secure = run(), run(secure_aggregation={"threshold": 0.5})
    g0, g1 = plain.strategy.state["global"]["all"], secure.strategy.state["global"]["all"]
    for k in g0:
        assert torch.allclose(g0[k], g1[k], atol=1e-6), k
    a, b = plain.history[-1], secure.history[-1]
    params = sum(t.numel() for t in g0.values())
    for cid in range(4):
        extra = b.clients[cid]["bytes_up"] - a.clients[cid]["bytes_up"]
        assert extra == b.clients[cid]["secagg_bytes_up"] > 4 * params  # 8-byte ring elements vs float32
        assert b.clients[cid]["bytes_down"] > a.clients[cid]["bytes_down"]
    assert b.metrics["bytes_up"] == a.metrics["bytes_up"] + sum(
        b.clients[c]["secagg_bytes_up"] for c in range(4)
    )
    assert b.metrics["secagg_failed"] == 0


def test_secure_aggregation_costs_simulated_time_and_recovers_dropouts(store) -> None:
    tiers = {"tier": "phone-low", "tier_overrides": {"availability": 1.0, "dropout": 0.3}}
    clients = [{"name": "c", "count": 6, "model": {"arch": "mlp", "hidden": 16}, "lr": 0.1, **tiers}]
    plain = run(rounds=4, clients=clients)
    secure = run(store, rounds=4, clients=clients, secure_aggregation={"threshold": 0.5})
    assert secure.history[-1].metrics["sim_time_s"] > plain.history[-1].metrics["sim_time_s"]
    dropped = sum(r.metrics.get("n_dropouts", 0) for r in secure.history)
    recovered = sum(r.metrics.get("secagg_recovered", 0) for r in secure.history)
    assert dropped > 0 and recovered == dropped  # the same draws: every dropout's masks removed
    for r_plain, r_secure in zip(
        plain.history, secure.history, strict=True
    ):  # the same models, round by round
        assert r_plain.metrics["local_acc_mean"] == pytest.approx(
            r_secure.metrics["local_acc_mean"], abs=0.02
        )
    strict = run(store, rounds=4, clients=clients, secure_aggregation={"threshold": 1.0})
    failed = [r.round for r in strict.history if r.metrics["secagg_failed"]]
    assert failed, "with a threshold of every client, a dropout must fail its round"
    events = store.events(strict.run_id)
    said = events[events.message.str.contains("secure aggregation of the federation could not complete")]
    assert sorted(said["round"]) == failed and said.message.str.contains("needs shares from at least 6").all()


def test_dp_fedavg_samples_clips_and_spends_the_accountants_epsilon() -> None:
    from opacus.accountants import RDPAccountant

    from engine.privacy.accountant import ALPHAS

    clients = [{"name": "c", "count": 10, "model": {"arch": "mlp", "hidden": 16}, "lr": 0.1}]
    sim = run(
        rounds=3,
        clients=clients,
        fraction=0.5,
        server_dp={"noise_multiplier": 0.8, "clip_norm": 0.01, "delta": 1e-3},
    )
    selected = [r.metrics["n_selected"] for r in sim.history]
    assert set(selected) != {
        5.0
    }  # Poisson sampling, not a fixed half (its rate: tests/test_privacy_server.py)
    for r in sim.history:
        clipped = [m["update_clipped"] for m in r.clients.values() if "update_clipped" in m]
        assert clipped and all(c == 1.0 for c in clipped)  # updates (about 0.03) above 0.01 are all clipped
        assert r.metrics["dp_clip_norm"] == 0.01
    acc = RDPAccountant()
    acc.history = [(0.8, 0.5, 3)]
    assert sim.history[-1].metrics["server_epsilon"] == pytest.approx(
        acc.get_epsilon(1e-3, alphas=list(ALPHAS))
    )
    eps = [r.metrics["server_epsilon"] for r in sim.history]
    assert eps == sorted(eps) and eps[0] > 0
