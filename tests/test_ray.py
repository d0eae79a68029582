"""The Ray executor on a local Ray instance started by the test (2 CPUs): the same numbers as
the sequential executor, and a dying worker is retried, then its client dropped for the round."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import digits_config

from engine.config import parse_config
from engine.core.simulation import Simulation

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'fedmosaic[ray]'")

pytestmark = pytest.mark.slow

RAY = {"ray_address": "local", "init_options": {"num_cpus": 2}}


@pytest.fixture(scope="module", autouse=True)
def _ray_instance():
    yield
    if ray.is_initialized():
        ray.shutdown()


def test_ray_gives_the_sequential_numbers():
    seq = Simulation(parse_config(digits_config(rounds=2)))
    seq.run()
    remote = Simulation(parse_config(digits_config(rounds=2, executor="ray", executor_options=RAY)))
    remote.run()
    for a, b in zip(seq.history, remote.history, strict=True):
        for key, value in a.metrics.items():
            if "wall_s" not in key:
                assert value == b.metrics[key], key
    for cid in seq.states:
        for name, tensor in seq.states[cid]["model"].items():
            assert torch.equal(tensor, remote.states[cid]["model"][name])


def test_a_dying_worker_is_retried_then_its_client_dropped(store):
    sim = Simulation(parse_config(digits_config(rounds=2, executor="ray", executor_options=RAY)), store=store)
    sim.setup()
    base = type(sim.strategy)

    class DiesOnClientOne(base):  # defined here so Ray ships it by value
        def local_update(self, ctx):
            if ctx.client.id == 1:
                os._exit(1)
            super().local_update(ctx)

    sim.strategy.__class__ = DiesOnClientOne
    record = sim.round(1)
    sim.executor.close()
    assert record.metrics["n_selected"] == 4
    assert record.metrics["n_completed"] == 3
    assert record.clients[1]["completed"] == 0.0
    events = store.events(sim.run_id)["message"]
    assert events.str.contains("c-2: its Ray worker died").any()


def test_missing_ray_gives_the_install_hint(monkeypatch):
    import builtins

    from engine.errors import ConfigError
    from engine.executors.ray import RayExecutor

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match="pip install 'fedmosaic\\[ray\\]'"):
        RayExecutor()
