"""DP-SGD on clients (engine/privacy/dpsgd.py, ledger.py): per-record gradients for every
architecture, clipping within the bound, Poisson sampling, the epsilon each client reports equal to
Opacus's accountant for the same history, budgets that stop a client, layers that cannot be
privatised refused before launch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import digits_config
from torch import nn

from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.models import ARCHITECTURES, InputSpec, build_model
from engine.privacy.dpsgd import (
    DPSettings,
    clip,
    fit_private,
    per_sample_grads,
    poisson_batch,
    unprivatisable,
)

pytest.importorskip("opacus")

SPECS = {
    "image": InputSpec("image", (1, 8, 8)),
    "sequence": InputSpec("sequence", (6, 3)),
    "tabular": InputSpec("tabular", (7,)),
}
ARCHS = [(name, kind) for name, arch in ARCHITECTURES.items() for kind in sorted(arch.kinds)[:1]]


def dp_config(privacy: dict, *, rounds: int = 2, count: int = 2, **overrides) -> dict:
    """Digits, 2 DP clients of ~90 records, mlp, one epoch of batch 32 (3 steps) per round."""
    cfg = digits_config(
        rounds=rounds,
        checkpoint_every=0,
        data={"dataset": "digits", "max_samples": 240, "partition": {"method": "iid"}},
        clients=[
            {
                "name": "dp",
                "count": count,
                "model": {"arch": "mlp", "hidden": 16},
                "lr": 0.1,
                "batch_size": 32,
                "privacy": privacy,
            }
        ],
    )
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize(("arch", "kind"), ARCHS, ids=[a for a, _ in ARCHS])
def test_per_record_gradients_equal_one_backward_pass_per_record(arch: str, kind: str) -> None:
    torch.manual_seed(0)
    spec = SPECS[kind]
    model = build_model({"arch": arch}, spec, 8, 3)
    x, y = torch.randn(4, *spec.shape), torch.tensor([0, 1, 2, 1])
    names = [n for n, _ in model.named_parameters()]
    grads, losses = per_sample_grads(model, lambda xb, yb: F.cross_entropy(model(xb), yb), x, y, names)
    for i in range(4):
        model.zero_grad()
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        loss.backward()
        assert math.isclose(float(losses[i]), float(loss.detach()), rel_tol=1e-5)
        for n, p in model.named_parameters():
            assert torch.allclose(grads[n][i], p.grad, atol=1e-5), (arch, n)


def test_clipped_per_record_gradient_norms_never_exceed_the_bound() -> None:
    g = torch.Generator().manual_seed(1)
    grads = {"a": torch.randn(64, 5, 3, generator=g), "b": torch.randn(64, 7, generator=g)}
    grads["a"][:8] *= 1e4  # some huge records, some tiny
    grads["b"][8:16] *= 1e-4
    for bound in (0.01, 0.5, 3.0):
        clipped, norms = clip(grads, bound)
        after = torch.cat([clipped["a"].reshape(64, -1), clipped["b"]], 1).norm(dim=1)
        assert float(after.max()) <= bound * (1 + 1e-6)
        small = norms < bound  # records already within the bound are left alone
        assert torch.allclose(after[small], norms[small], rtol=1e-5)
        assert bool((after[~small] > bound * 0.999).all())


def test_a_noiseless_private_step_moves_the_model_by_at_most_the_clipped_sum() -> None:
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "hidden": 16}, SPECS["tabular"], 8, 3)
    x, y = torch.randn(50, 7) * 100, torch.randint(0, 3, (50,))  # large inputs: most gradients are clipped
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    g = torch.Generator().manual_seed(3)
    stats = fit_private(
        model,
        x,
        y,
        lambda xb, yb: F.cross_entropy(model(xb), yb),
        opt,
        epochs=1,
        batch_size=10,
        generator=g,
        settings=DPSettings(clip_norm=0.1, noise_multiplier=0.0),
        work_fraction=0.2,
    )  # one step
    assert stats.steps == 1 and stats.clipped > 0.5
    moved = float((torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - before).norm())
    # lr x (sum of clipped gradients) / expected batch size: at most batch x 0.1 / 10
    assert 0 < moved <= stats.samples * 0.1 / 10 * (1 + 1e-5)


def test_batches_are_poisson_sampled_at_the_accountants_rate() -> None:
    g = torch.Generator().manual_seed(0)
    sizes = torch.tensor([len(poisson_batch(200, 0.1, g)) for _ in range(2000)], dtype=torch.float64)
    assert abs(float(sizes.mean()) - 20.0) < 0.5  # binomial(200, 0.1): mean 20, sd of the mean 0.095
    assert abs(float(sizes.var()) - 18.0) < 2.0  # variance n q (1 - q), unlike fixed-size batches
    assert float(sizes.min()) < 14 < 26 < float(sizes.max())


def test_epsilon_reported_equals_opacus_for_the_same_history(store) -> None:
    from opacus.accountants import PRVAccountant, RDPAccountant

    from engine.privacy.accountant import ALPHAS, PRV_EPS_ERROR

    for kind, accountant in (("rdp", RDPAccountant), ("prv", PRVAccountant)):
        sim = Simulation(
            parse_config(dp_config({"clip_norm": 1.0, "noise_multiplier": 1.3, "accountant": kind})),
            store=store,
        )
        sim.run()
        cm = store.client_metrics(sim.run_id)
        for c in sim.clients:
            rows = cm[cm.client_id == c.id].pivot(index="round", columns="key", values="value")
            rate, delta = 32 / c.n_train, 1 / c.n_train
            assert rows["dp_sample_rate"].iloc[0] == pytest.approx(rate)
            assert rows["dp_delta"].iloc[0] == pytest.approx(delta)
            assert list(rows["dp_steps"]) == [math.ceil(c.n_train / 32)] * 2
            acc = accountant()
            for _, row in rows.iterrows():
                acc.history.append((1.3, rate, int(row["dp_steps"])))
                if kind == "rdp":
                    want = acc.get_epsilon(delta, alphas=list(ALPHAS))
                    assert row["epsilon"] == pytest.approx(want, rel=1e-12)
                    # Opacus's default orders stop at 63: never tighter than the wider search
                    assert row["epsilon"] <= _default_rdp(acc.history, delta) + 1e-12
                else:
                    assert row["epsilon"] == pytest.approx(
                        acc.get_epsilon(delta, eps_error=PRV_EPS_ERROR), rel=1e-9
                    )
            assert rows["epsilon"].is_monotonic_increasing and rows["epsilon"].iloc[0] > 0


def _default_rdp(history, delta):
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = list(history)
    return acc.get_epsilon(delta)


def test_a_target_epsilon_calibrates_the_noise_to_spend_it_over_the_run(store) -> None:
    sim = Simulation(
        parse_config(dp_config({"clip_norm": 1.0, "target_epsilon": 2.0}, rounds=3)), store=store
    )
    sim.run()
    last = sim.history[-1].clients
    for c in sim.clients:
        assert 1.8 <= last[c.id]["epsilon"] <= 2.0 + 1e-9  # the noise is searched to 1%
        assert last[c.id]["budget_spent"] == 0.0
    events = store.events(sim.run_id)
    assert events.message.str.contains("calibrated to spend epsilon 2 over 3 round").sum() == 2


def test_a_client_whose_budget_is_spent_stops_with_an_event(store) -> None:
    cfg = dp_config({"clip_norm": 1.0, "noise_multiplier": 1.5, "target_epsilon": 2.0}, rounds=6, count=1)
    cfg["clients"].append({"name": "plain", "model": {"arch": "mlp", "hidden": 16}, "lr": 0.1})
    sim = Simulation(parse_config(cfg), store=store)
    sim.run()
    cm = store.client_metrics(sim.run_id)
    dp = cm[cm.client_id == 0].pivot(index="round", columns="key", values="value")
    trained = dp["dp_steps"].dropna().index.tolist()
    assert 1 <= len(trained) < 6, "the budget should last some rounds but not all"
    assert trained == list(range(1, len(trained) + 1))  # it trains until it stops, then never again
    stop = len(trained) + 1
    assert list(dp["budget_spent"]) == [0.0] * (stop - 1) + [1.0] * (6 - stop + 1)
    assert float(dp["epsilon"].max()) <= 2.0
    assert dp["epsilon"].iloc[-1] == dp["epsilon"].iloc[stop - 2]  # nothing more spent after stopping
    assert not dp.loc[stop:, "local_acc"].isna().any()  # still evaluated
    plain = cm[cm.client_id == 1].pivot(index="round", columns="key", values="value")
    assert plain["steps"].notna().all() and "epsilon" not in plain  # the other client trains on
    events = store.events(sim.run_id)
    stopped = events[events.message.str.contains("stops training: its privacy budget")]
    assert len(stopped) == 1 and int(stopped["round"].iloc[0]) == stop


def test_dp_runs_reproduce_and_differ_from_plain_training() -> None:
    cfg = dp_config({"clip_norm": 1.0, "noise_multiplier": 1.0})
    a, b = Simulation(parse_config(cfg)), Simulation(parse_config(cfg))
    a.run()
    b.run()
    for key in a.states[0]["model"]:
        assert torch.equal(a.states[0]["model"][key], b.states[0]["model"][key])
    plain = dp_config({"clip_norm": 1.0, "noise_multiplier": 1.0})
    for c in plain["clients"]:
        c.pop("privacy")
    p = Simulation(parse_config(plain))
    p.run()
    assert not torch.equal(a.states[0]["model"]["head.weight"], p.states[0]["model"]["head.weight"])


@pytest.mark.parametrize("strategy", ["fedprox", "fedrep", "fml"])
def test_strategies_with_their_own_loss_or_local_training_train_privately(strategy: str) -> None:
    cfg = dp_config({"clip_norm": 1.0, "noise_multiplier": 1.0}, rounds=1, strategy={"name": strategy})
    sim = Simulation(parse_config(cfg))
    sim.run()
    m = sim.history[-1].clients[0]
    assert m["dp_steps"] >= 3 and m["epsilon"] > 0
    if strategy == "fedrep":  # head epochs, then body epochs: every private step is counted
        assert m["dp_steps"] == m["steps"] > 3


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(self.body(x))


def test_layers_that_cannot_be_privatised_are_named_with_a_replacement() -> None:
    found = unprivatisable(BatchNormNet())
    assert len(found) == 1 and "body.2 (BatchNorm1d)" in found[0] and "group norm" in found[0]
    assert unprivatisable(build_model({"arch": "resnet"}, SPECS["image"], 8, 3)) == []  # group norm is fine
    assert unprivatisable(nn.InstanceNorm2d(3, track_running_stats=True))
    assert not unprivatisable(nn.InstanceNorm2d(3))


def test_validation_refuses_batch_norm_and_leaky_strategies_before_launch(monkeypatch) -> None:
    from engine.models.base import ARCHITECTURES as REGISTRY
    from engine.models.base import Architecture
    from engine.validate import validate

    class BN(Architecture):
        kinds = frozenset({"image"})
        description = "test only"

        @classmethod
        def body(cls, params, spec, rep_dim):
            return nn.Sequential(
                nn.Flatten(), nn.Linear(spec.numel, rep_dim), nn.BatchNorm1d(rep_dim), nn.ReLU()
            )

    BN.name = "bn_test"
    monkeypatch.setitem(REGISTRY._entries, "bn_test", BN)
    cfg = dp_config({"clip_norm": 1.0, "noise_multiplier": 1.0})
    cfg["clients"][0]["model"] = {"arch": "bn_test"}
    report = validate(parse_config(cfg))
    assert any(
        "cannot train with DP-SGD" in e and "BatchNorm1d" in e and "group norm" in e for e in report.errors
    )
    plain = validate(parse_config({**cfg, "clients": [{**cfg["clients"][0], "privacy": None}]}))
    assert not any("DP-SGD" in e for e in plain.errors)

    leaky = validate(
        parse_config(dp_config({"clip_norm": 1.0, "noise_multiplier": 1.0}, strategy={"name": "fedproto"}))
    )
    assert any(
        e.startswith("strategy: fedproto sends") and "prototypes" in e and "try fedavg" in e
        for e in leaky.errors
    )
    assert leaky.compatible["fedavg"] is None and leaky.compatible["fd"] and leaky.compatible["centralized"]
    sgd = parse_config(dp_config({"clip_norm": 1.0, "noise_multiplier": 1.0}, strategy={"name": "scaffold"}))
    assert validate(sgd).compatible["scaffold"] is None  # option II from the model change
    adam = dp_config({"clip_norm": 1.0, "noise_multiplier": 1.0}, strategy={"name": "scaffold"})
    adam["clients"][0]["optimizer"] = "adam"
    assert "full gradient" in validate(parse_config(adam)).compatible["scaffold"]


def test_an_unreachable_target_epsilon_is_refused_before_launch() -> None:
    from engine.validate import validate

    report = validate(
        parse_config(dp_config({"clip_norm": 1.0, "target_epsilon": 1e-3, "delta": 1e-5}, rounds=50))
    )
    assert any("cannot be reached" in e and "dp" in e for e in report.errors)


def test_privacy_settings_need_noise_or_a_budget() -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="noise multiplier or a target epsilon"):
        parse_config(dp_config({"clip_norm": 1.0}))


def test_every_executor_and_a_resume_give_the_same_private_run(store) -> None:
    cfg = dp_config(
        {"clip_norm": 1.0, "noise_multiplier": 1.0, "target_epsilon": 3.0}, rounds=3, checkpoint_every=2
    )
    first = Simulation(parse_config(cfg), store=store)
    first.run()
    want = {c: m["epsilon"] for c, m in first.history[-1].clients.items()}
    for executor in ("vectorized", "threads"):
        other = Simulation(parse_config({**cfg, "executor": executor, "checkpoint_every": 0}))
        other.run()
        assert {c: m["epsilon"] for c, m in other.history[-1].clients.items()} == want
        for key, value in first.states[0]["model"].items():
            assert torch.allclose(value, other.states[0]["model"][key], atol=1e-6), (executor, key)
    again = Simulation(parse_config(cfg), store=store, run_id=first.run_id)
    again.run(resume=True)  # from the checkpoint of round 2: the ledger comes back with it
    assert again.history[0].round == 3
    assert {c: m["epsilon"] for c, m in again.history[-1].clients.items()} == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_recurrent_layers_unrolled_for_per_record_gradients_match_torchs(cell) -> None:
    from engine.privacy.recurrent import forward, unrolled

    torch.manual_seed(0)
    rnn = cell(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(4, 6, 3)
    want_out, want_h = rnn(x)
    out, h = forward(rnn, x)
    assert torch.allclose(out, want_out, atol=1e-6)
    for a, b in zip(
        h if isinstance(h, tuple) else (h,), want_h if isinstance(want_h, tuple) else (want_h,), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6)
    with unrolled(rnn) as swapped:
        assert swapped and torch.allclose(rnn(x)[0], want_out, atol=1e-6)
    assert "forward" not in rnn.__dict__  # restored
