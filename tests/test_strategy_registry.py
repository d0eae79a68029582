"""Every registered strategy, including ones added later, on a tiny mixed federation and a tiny
homogeneous one: it runs and records finite figures with bytes equal to what was exchanged, or
the compatibility check refuses it with a reason. Plus the compatibility check itself."""

from __future__ import annotations

import math

import pytest
from conftest import digits_config

from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.core.state import nbytes
from engine.strategies import STRATEGIES
from engine.validate import compatibility, compatibility_matrix, validate

TRAIN = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 1, "batch_size": 32}
DATA = {
    "dataset": "digits",
    "partition": {"method": "dirichlet", "alpha": 0.5},
    "public_fraction": 0.1,
    "max_samples": 600,
}
MIXED = [
    {"name": "mlp", "count": 2, "model": {"arch": "mlp", "hidden": 16}, **TRAIN},
    {"name": "cnn", "count": 1, "model": {"arch": "cnn", "channels": 4}, **TRAIN},
    {"name": "gru", "count": 2, "model": {"arch": "gru", "hidden": 8}, **TRAIN},
]
HOMOGENEOUS = [{"name": "mlp", "count": 4, "model": {"arch": "mlp", "hidden": 16}, **TRAIN}]


def config(name: str, clients: list[dict], **overrides):
    base = {"rounds": 2, "data": DATA, "clients": clients, "strategy": {"name": name}}
    return parse_config(digits_config(**{**base, **overrides}))


class Exchange:
    """Records the bytes of every message a client received and every payload it sent, by
    (round, client), by wrapping the strategy's ``receive`` and ``payload`` hooks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: type) -> None:
        self.down: dict[tuple[int, int], int] = {}
        self.up: dict[tuple[int, int], int] = {}
        receive, payload = cls.receive, cls.payload

        def spy_receive(strategy, ctx):
            self.down[(ctx.round, ctx.client.id)] = nbytes(ctx.received)
            return receive(strategy, ctx)

        def spy_payload(strategy, ctx):
            out = payload(strategy, ctx)
            self.up[(ctx.round, ctx.client.id)] = nbytes(out)
            return out

        monkeypatch.setattr(cls, "receive", spy_receive)
        monkeypatch.setattr(cls, "payload", spy_payload)


def run_and_check(store, monkeypatch, name: str, clients: list[dict]) -> Simulation:
    exchange = Exchange(monkeypatch, STRATEGIES.get(name))
    sim = Simulation(config(name, clients), store=store)
    sim.run()
    assert store.get_run(sim.run_id)["status"] == "finished"
    rm = store.round_metrics(sim.run_id)
    assert sorted(rm["round"].unique()) == [1, 2]
    assert rm["value"].map(math.isfinite).all(), rm[~rm["value"].map(math.isfinite)]
    cm = store.client_metrics(sim.run_id)
    assert cm["value"].map(math.isfinite).all(), cm[~cm["value"].map(math.isfinite)]
    n = len(sim.clients)
    for key in ("local_acc", "global_acc"):
        assert sorted(cm[(cm["round"] == 2) & (cm["key"] == key)]["client_id"]) == list(range(n)), key
    for key, seen in (("bytes_down", exchange.down), ("bytes_up", exchange.up)):
        rows = cm[cm["key"] == key]
        counted = {
            (int(r), int(c)): v
            for r, c, v in zip(rows["round"], rows["client_id"], rows["value"], strict=True)
        }
        assert counted == {k: float(seen.get(k, 0)) for k in counted}, key
        assert all(k in counted for k in seen)
        for rnd in (1, 2):
            total = rm[(rm["round"] == rnd) & (rm["key"] == key)]["value"].item()
            assert total == sum(v for (r, _), v in counted.items() if r == rnd)
    return sim


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_runs_a_mixed_federation_or_says_why_not(store, monkeypatch, name):
    reason = compatibility(config(name, MIXED), "classification")[name]
    cls = STRATEGIES.get(name)
    if reason is not None:
        assert reason.strip() and name in reason
        return
    assert not cls.same_architecture
    run_and_check(store, monkeypatch, name, MIXED)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_runs_a_homogeneous_federation(store, monkeypatch, name):
    assert compatibility(config(name, HOMOGENEOUS), "classification")[name] is None
    run_and_check(store, monkeypatch, name, HOMOGENEOUS)


def _part(prefix: str):
    return lambda state: nbytes({k: v for k, v in state.items() if k.startswith(prefix)})


EXPECTED_UP = {  # bytes a client sends, from its model state: an independent cross-check
    "fedavg": nbytes,
    "fedprox": nbytes,
    "fedadam": nbytes,
    "fedyogi": nbytes,
    "fedavgm": nbytes,
    "heterofl": nbytes,
    "fedavg_by_arch": nbytes,
    "scaffold": lambda state: 2 * nbytes(state),
    "fedper": _part("body."),
    "fedrep": _part("body."),
    "lg_fedavg": _part("head."),
    "local": lambda state: 0,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_UP))
def test_bytes_up_are_what_the_strategy_shares(store, name):
    clients = MIXED if not STRATEGIES.get(name).same_architecture and name != "heterofl" else HOMOGENEOUS
    sim = Simulation(config(name, clients), store=store)
    sim.run()
    cm = store.client_metrics(sim.run_id)
    for c in sim.clients:
        up = cm[(cm["client_id"] == c.id) & (cm["key"] == "bytes_up")]["value"]
        assert len(up) == 2 and (up == EXPECTED_UP[name](sim.states[c.id]["model"])).all(), c.name


# ---- the compatibility check ---------------------------------------------------------------------
def test_compatibility_reasons_name_the_clients_and_the_alternatives():
    roster = [
        {"name": "gru", "count": 2, "model": {"arch": "gru", "hidden": 8}, **TRAIN},
        {"name": "cnn", "count": 2, "model": {"arch": "cnn", "channels": 4}, **TRAIN},
    ]
    reasons = compatibility(config("fedavg", roster), "classification")
    why = reasons["fedavg"]
    assert why.startswith(
        "clients 0 (gru-1) and 2 (cnn-1) use gru and cnn: fedavg needs one architecture; try "
    )
    offered = why.split("; try ")[1].split(", ")
    assert {"fedavg_by_arch", "fedper", "lg_fedavg"} <= set(offered)
    assert all(reasons[n] is None for n in offered)
    assert "local" not in offered and "centralized" not in offered
    for name, cls in STRATEGIES.items():
        if cls.same_architecture:
            assert "needs one architecture" in reasons[name], name


def test_strategies_that_need_a_public_set_say_so_and_whether_it_exists():
    needing = [n for n, cls in STRATEGIES.items() if cls.needs_public]
    without = compatibility_matrix(
        config("fedavg", HOMOGENEOUS, data={**DATA, "public_fraction": 0.0}), "classification"
    )
    with_public = compatibility_matrix(config("fedavg", HOMOGENEOUS), "classification")
    for name, entry in without.items():
        assert set(entry) >= {"ok", "reason", "caveat", "family", "needs_public", "has_public"}
        assert entry["ok"] == (entry["reason"] is None)
        assert entry["has_public"] is False and with_public[name]["has_public"] is True
        assert entry["needs_public"] == (name in needing)
    for name in needing:
        assert not without[name]["ok"] and "public_fraction" in without[name]["reason"]
        assert with_public[name]["ok"], with_public[name]["reason"]


def test_the_matrix_lists_collaborative_strategies_first_and_regression_limits():
    matrix = compatibility_matrix(config("fedavg", HOMOGENEOUS), "regression")
    names = list(matrix)
    assert names.index("fedavg") < names.index("local") and names[-2:] == ["centralized", "local"]
    for name, cls in STRATEGIES.items():
        assert matrix[name]["ok"] == ("regression" in cls.tasks), name


def test_validate_warns_when_a_group_by_model_strategy_leaves_a_client_alone():
    cfg = config("fedper", MIXED)
    report = validate(cfg)
    assert report.ok, report.errors
    lonely = "client 2 (cnn, cnn) uses a model nobody else uses: its body is shared with nobody"
    assert any(lonely in w for w in report.warnings), report.warnings
    assert not validate(config("fedper", HOMOGENEOUS)).warnings
