"""Each client's validation split (carved from its training data) picks its best round; the
figures and weights kept are that round's, test data never chooses, and a resumed run keeps the
same choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import digits_config

from engine.config import parse_config
from engine.core import training
from engine.core.client import template
from engine.core.simulation import Simulation
from engine.core.state import load_into
from engine.data import build as build_federation
from engine.data.config import DataConfig
from engine.data.federation import client_rows, load_dataset
from engine.tracking.storage import default_data_dir


def test_validation_rows_are_carved_from_training_rows_per_client_and_seeded():
    cfg = DataConfig(
        dataset="digits", partition={"method": "dirichlet", "alpha": 0.5}, validation_fraction=0.2
    )
    fed = build_federation(cfg, ["standardize"] * 4, [None] * 4, 3, default_data_dir())
    again = build_federation(cfg, ["standardize"] * 4, [None] * 4, 3, default_data_dir())
    labels = fed.data.labels
    for c, d in zip(fed.clients, again.clients, strict=True):
        assert torch.equal(c.val.x, d.val.x)
        n = len(c.train) + len(c.val)
        assert len(c.val) == pytest.approx(0.2 * n, abs=len(np.unique(labels)))
    # rows: disjoint, together the client's whole share; one client's do not depend on the others
    data = load_dataset(cfg, default_data_dir())
    idx = np.arange(200)
    train, test, val = client_rows(data, cfg, idx, 3, 1)
    assert not set(train) & set(val) and not set(val) & set(test)
    assert sorted([*train, *val, *test]) == list(range(200))
    assert np.array_equal(client_rows(data, cfg, idx, 3, 1)[2], val)
    _, test0, none = client_rows(data, cfg.model_copy(update={"validation_fraction": 0.0}), idx, 3, 1)
    assert len(none) == 0 and np.array_equal(test0, test)


def test_kept_figures_and_weights_are_those_of_the_best_validation_round():
    sim = Simulation(
        parse_config(
            digits_config(
                rounds=5,
                clients=[
                    {
                        "name": "c",
                        "count": 3,
                        "model": {"arch": "mlp", "hidden": 16},
                        "optimizer": "sgd",
                        "lr": 0.2,
                        "momentum": 0.9,
                        "batch_size": 16,
                    }
                ],
                strategy={"name": "local"},
            )
        )
    )
    sim.run()
    key = sim.primary.key
    for c in sim.clients:
        best = sim.best[c.id]
        history = {r.round: r.clients[c.id] for r in sim.history}
        val = {rnd: m[f"val_{key}"] for rnd, m in history.items()}
        # the kept round is the last one with the highest validation figure (ties: later)
        assert best["round"] == max(r for r, v in val.items() if v == max(val.values()))
        assert best["scores"]["local_acc"] == history[best["round"]]["local_acc"]
        assert (
            sim.history[-1].clients[c.id].get("best_round", best["round"]) == best["round"]
            or "best_round" not in sim.history[-1].clients[c.id]
        )
        # the kept weights reproduce the kept test figure
        model = template(c.spec.model, torch.device("cpu"), sim.build)
        load_into(model, best["model"])
        model.eval()
        data = sim.federation.clients[c.id]
        again = training.metrics(sim.task, training.predict(model, data.test.x), data.test.y)
        assert again["acc"] == pytest.approx(best["scores"]["local_acc"])
    final = sim.history[-1].metrics
    assert final["best_local_acc_mean"] == pytest.approx(
        np.mean([b["scores"]["local_acc"] for b in sim.best.values()])
    )
    assert "local_acc_mean" in final  # the final round's own figure stays, under its own name


def test_server_model_keeps_its_best_validation_round():
    sim = Simulation(parse_config(digits_config(rounds=4)))
    sim.run()
    kept = sim.server_best["all"]
    vals = {r.round: r.metrics["server_val_acc"] for r in sim.history}
    assert kept["round"] == max(r for r, v in vals.items() if v == max(vals.values()))
    assert sim.history[-1].metrics["best_server_acc"] == sim.history[kept["round"] - 1].metrics["server_acc"]


def test_resume_keeps_the_same_best_rounds_and_weights(store):
    config = parse_config(digits_config(rounds=5, checkpoint_every=2))
    first = Simulation(config, store=store, on_round=lambda r: first.cancel.set() if r.round == 3 else None)
    first.run()
    assert store.get_run(first.run_id)["status"] == "cancelled"
    resumed = Simulation(config, store=store, run_id=first.run_id)
    resumed.run(resume=True)
    alone = Simulation(config)
    alone.run()
    assert {c: b["round"] for c, b in resumed.best.items()} == {c: b["round"] for c, b in alone.best.items()}
    for cid, b in alone.best.items():
        for name, tensor in b["model"].items():
            assert torch.allclose(resumed.best[cid]["model"][name], tensor, atol=1e-6), (cid, name)
    assert store.get_run(first.run_id)["summary"]["best_local_acc_mean"] == pytest.approx(
        alone.history[-1].metrics["best_local_acc_mean"]
    )
