"""Batched evaluation gives, client by client, what scoring each model on its own would."""

from __future__ import annotations

import torch
from conftest import digits_config

from engine.config import parse_config
from engine.core import training
from engine.core.evaluation import evaluate_clients, forward_many
from engine.core.simulation import Simulation


def test_forward_many_equals_one_model_at_a_time():
    sim = Simulation(parse_config(digits_config(strategy={"name": "local"})))
    sim.run()
    model = sim.build(sim.clients[0].spec.model)
    states = [sim.states[c.id]["model"] for c in sim.clients]
    xs = [sim.federation.clients[c.id].test.x for c in sim.clients]
    batched = forward_many(model, states, xs)
    for state, x, out in zip(states, xs, batched, strict=True):
        model.load_state_dict(state)
        assert torch.allclose(model(x), out, atol=1e-5)
    shared = forward_many(model, states, sim.federation.global_test.x)
    model.load_state_dict(states[2])
    assert torch.allclose(model(sim.federation.global_test.x), shared[2], atol=1e-5)


def test_evaluate_clients_matches_direct_scores_with_preprocessing_and_distinct_models():
    cfg = digits_config(
        strategy={"name": "local"},
        clients=[{**digits_config()["clients"][0], "preprocessing": "standardize"}],
    )
    sim = Simulation(parse_config(cfg))
    sim.run()
    fed = sim.federation
    scores = evaluate_clients(sim.clients, sim.strategy, sim.states, fed, sim.devices, sim.build, sim.task)
    model = sim.build(sim.clients[0].spec.model)
    for c in sim.clients:
        model.load_state_dict(sim.states[c.id]["model"])
        data = fed.clients[c.id]
        with torch.no_grad():
            local = training.metrics("classification", model(data.test.x), data.test.y)
            glob = training.metrics(
                "classification", model(data.transform(fed.global_test.x)), fed.global_test.y
            )
        assert abs(scores[c.id]["local_acc"] - local["acc"]) < 1e-6
        assert scores[c.id]["global_acc"] == glob["acc"]
        assert abs(scores[c.id]["global_loss"] - glob["loss"]) < 1e-5


def test_metrics_many_equals_metrics_pair_by_pair():
    g = torch.Generator().manual_seed(0)
    outs = [torch.randn(n, 4, generator=g) for n in (3, 0, 7)]
    ys = [torch.randint(0, 4, (n,), generator=g) for n in (3, 0, 7)]
    many = training.metrics_many("classification", outs, ys)
    for o, y, m in zip(outs, ys, many, strict=True):
        one = training.metrics("classification", o, y)
        assert m.keys() == one.keys()
        for k in one:
            assert abs(m[k] - one[k]) < 1e-6
    routs = [torch.randn(n, 1, generator=g) for n in (5, 2)]
    rys = [torch.randn(n, generator=g) for n in (5, 2)]
    for o, y, m in zip(routs, rys, training.metrics_many("regression", routs, rys, 2.0), strict=True):
        one = training.metrics("regression", o, y, 2.0)
        for k in one:
            assert abs(m[k] - one[k]) < 1e-5, k


def test_forward_many_scores_clients_sharing_one_model_once_with_the_same_outputs():
    sim = Simulation(parse_config(digits_config(strategy={"name": "local"})))
    sim.run()
    model = sim.build(sim.clients[0].spec.model)
    a, b = (sim.states[c.id]["model"] for c in sim.clients[:2])
    states = [a, b, a, dict(a)]  # 0, 2 and 3 hold the very same tensors
    xs = [sim.federation.clients[c.id].test.x for c in sim.clients]
    outs = forward_many(model, states, xs)
    for state, x, out in zip(states, xs, outs, strict=True):
        model.load_state_dict(state)
        with torch.no_grad():
            assert out.shape == (len(x), 10)
            assert torch.allclose(model(x), out, atol=1e-5)
