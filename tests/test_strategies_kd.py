"""Knowledge-sharing strategies: FedMD, FedDF, FD, FedProto, FML, FedKD, FedGH, FedTGP.

Mechanism tests run one or two rounds of a tiny mixed roster (mlp, cnn, gru) on digits and check
what crosses the network (keys, shapes, bytes) against direct computations on the clients' models.
The learning tests (``slow``) run six small mixed clients on digits (Dirichlet 0.3) for 8 rounds
against ``local``, paired client by client; the personalised methods' learning check is
tests/test_learning.py.
"""

from __future__ import annotations

import io
import math
import statistics
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import digits_config

from bench import personalised
from engine.config import parse_config
from engine.core.aggregate import weighted_mean
from engine.core.simulation import Simulation
from engine.core.state import nbytes
from engine.errors import CompatibilityError, ConfigError
from engine.models import InputSpec, build_model
from engine.strategies import STRATEGIES
from engine.strategies._distill import (
    class_means,
    distill,
    evaluate_outputs,
    kd_loss,
    keep_missing,
    merge_class_means,
)
from engine.strategies.fedkd import compress_state, decompress_state, svd_compress, svd_decompress
from engine.strategies.fedtgp import PrototypeGenerator, adaptive_margin, margin_contrastive_loss

DIGITS = InputSpec("image", (1, 8, 8))
KD = ["fedmd", "feddf", "fd", "fedproto", "fml", "fedkd", "fedgh", "fedtgp"]
SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 1, "batch_size": 32}
ADAM = {"optimizer": "adam", "lr": 0.005, "epochs": 1, "batch_size": 32}
ROSTER = [
    {"name": "mlp", "count": 2, "model": {"arch": "mlp", "hidden": 32}, **SGD},
    {"name": "cnn", "count": 1, "model": {"arch": "cnn", "channels": 4, "depth": 1}, **ADAM},
    {"name": "gru", "count": 1, "model": {"arch": "gru", "hidden": 16}, **ADAM},
]


def config(strategy: dict, rounds: int = 1, public: float = 0.2, clients=None, **over) -> dict:
    cfg = digits_config(
        rounds=rounds,
        checkpoint_every=0,
        clients=clients or ROSTER,
        strategy=strategy,
        data={
            "dataset": "digits",
            "partition": {"method": "dirichlet", "alpha": 0.5},
            "public_fraction": public,
            "max_samples": 700,
        },
    )
    cfg.update(over)
    return cfg


def run(strategy: dict, monkeypatch=None, **kw) -> tuple[Simulation, list]:
    """Run a config; with ``monkeypatch``, also return every aggregate call as
    ``(round, results, server state before)``."""
    captured: list = []
    if monkeypatch is not None:
        cls = STRATEGIES.get(strategy["name"])
        original = cls.aggregate

        def spy(self, results):
            before = {k: v for k, v in self.state.items()}
            captured.append((self.server.round, list(results), before))
            return original(self, results)

        monkeypatch.setattr(cls, "aggregate", spy)
    sim = Simulation(parse_config(config(strategy, **kw)))
    sim.run()
    return sim, captured


def client_model(sim: Simulation, cid: int, state: dict | None = None) -> torch.nn.Module:
    """Client ``cid``'s model with its current (post-training) weights, in eval mode."""
    fed = sim.federation
    model = build_model(sim.clients[cid].spec.model, fed.input_spec, sim.config.rep_dim, fed.n_outputs)
    model.load_state_dict(state if state is not None else sim.states[cid]["model"])
    return model.eval()


# ---- the maths ------------------------------------------------------------------------------------------
def test_class_means_match_a_loop_and_merge_weights_by_counts():
    torch.manual_seed(0)
    v, y = torch.randn(20, 3), torch.tensor([0, 2] * 10)
    means, counts = class_means(v, y, 4)
    assert counts.tolist() == [10, 0, 10, 0]
    assert torch.allclose(means[0], v[y == 0].mean(0)) and torch.allclose(means[2], v[y == 2].mean(0))
    assert torch.all(means[1] == 0)
    m2, c2 = torch.ones(4, 3), torch.tensor([30.0, 5.0, 0.0, 0.0])
    merged, total = merge_class_means([means, m2], [counts, c2])
    assert torch.allclose(merged[0], (10 * means[0] + 30 * m2[0]) / 40)
    assert torch.allclose(merged[1], m2[1]) and torch.allclose(merged[2], means[2])
    assert total.tolist() == [40, 5, 10, 0]
    old, old_counts = torch.full((4, 3), 7.0), torch.tensor([1.0, 1.0, 1.0, 1.0])
    kept, kept_counts = keep_missing(merged, total, old, old_counts)
    assert torch.all(kept[3] == 7.0) and kept_counts[3] == 1  # nobody reported class 3: keep it
    assert torch.allclose(kept[0], merged[0])


def test_kd_loss_is_zero_at_the_teacher_and_only_trains_the_student():
    torch.manual_seed(0)
    s, t = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4, requires_grad=True)
    assert float(kd_loss(t.detach(), t.detach(), 2.0)) == pytest.approx(0.0, abs=1e-6)
    loss = kd_loss(s, t, 2.0)
    manual = 4.0 * (F.softmax(t / 2, 1) * (F.log_softmax(t / 2, 1) - F.log_softmax(s / 2, 1))).sum(1).mean()
    assert float(loss.detach()) == pytest.approx(float(manual.detach()), rel=1e-5)
    loss.backward()
    assert s.grad is not None and t.grad is None
    assert float(kd_loss(s, t, task="regression").detach()) == pytest.approx(float(F.mse_loss(s, t).detach()))


def test_distill_pulls_a_model_towards_the_teacher():
    torch.manual_seed(1)
    model = build_model({"arch": "mlp", "hidden": 16}, DIGITS, 8, 10)
    other = build_model({"arch": "mlp", "hidden": 32}, DIGITS, 8, 10)
    x = torch.rand(64, 1, 8, 8)
    teacher = 5 * evaluate_outputs(other, x)  # a confident teacher the student can imitate
    initial = float(kd_loss(evaluate_outputs(model, x), teacher))
    done = distill(
        model,
        x,
        teacher,
        steps=150,
        lr=0.01,
        batch_size=32,
        temperature=1.0,
        task="classification",
        generator=torch.Generator().manual_seed(0),
        cosine=True,
    )
    assert done.before == pytest.approx(initial, rel=1e-5)
    assert done.after < 0.5 * done.before
    assert done.after == pytest.approx(float(kd_loss(evaluate_outputs(model, x), teacher)), rel=1e-5)
    assert done.steps == done.best_step == 150 and done.val_after is None


def test_distill_early_stopping_keeps_the_best_weights_on_validation():
    """A model that already knows the labels and a teacher that is confidently wrong about them:
    distilling only worsens the validation score, so the starting weights are kept and training
    stops after ``patience`` steps. An untrained model and a teacher that agrees with the labels:
    the distilled weights are kept."""
    torch.manual_seed(1)
    x = torch.rand(96, 1, 8, 8)
    y = torch.arange(96) % 10
    right, wrong = 6 * F.one_hot(y, 10).float(), 6 * F.one_hot((y + 1) % 10, 10).float()
    untrained = build_model({"arch": "mlp", "hidden": 16}, DIGITS, 8, 10)
    trained = build_model({"arch": "mlp", "hidden": 16}, DIGITS, 8, 10)
    distill(
        trained,
        x,
        right,
        steps=300,
        lr=0.01,
        batch_size=32,
        temperature=1.0,
        task="classification",
        generator=torch.Generator().manual_seed(2),
    )
    for teacher, start_model, kept_start in ((wrong, trained, True), (right, untrained, False)):
        start = {k: v.clone() for k, v in start_model.state_dict().items()}
        model = build_model({"arch": "mlp", "hidden": 16}, DIGITS, 8, 10)
        model.load_state_dict(start)
        done = distill(
            model,
            x,
            teacher,
            steps=200,
            lr=0.01,
            batch_size=32,
            temperature=1.0,
            task="classification",
            generator=torch.Generator().manual_seed(0),
            cosine=True,
            validation=(x[:32], y[:32]),
            eval_every=10,
            patience=30,
        )
        if kept_start:
            assert done.best_step == 0 and done.steps == 30
            assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
        else:
            assert done.best_step > 0 and done.val_after > done.val_before


def test_svd_compression_keeps_the_energy_asked_for_and_falls_back_to_dense():
    torch.manual_seed(0)
    low_rank = torch.randn(40, 3) @ torch.randn(3, 30) + 0.01 * torch.randn(40, 30)
    packed = svd_compress(low_rank, 0.95)
    assert isinstance(packed, dict) and packed["s"].numel() <= 3
    assert nbytes(packed) < nbytes(low_rank) / 4
    rebuilt = svd_decompress(packed, low_rank.shape)
    assert (rebuilt.pow(2).sum() / low_rank.pow(2).sum()) >= 0.95
    assert torch.allclose(rebuilt, low_rank, atol=0.1)
    bias = torch.randn(30)
    assert svd_compress(bias, 0.95) is bias  # vectors go dense
    full_rank = torch.randn(6, 6)
    assert isinstance(svd_compress(full_rank, 0.999), torch.Tensor)  # factors would not be smaller
    conv = torch.randn(8, 4, 3, 3)
    state = {"w": conv, "b": bias}
    back = decompress_state(compress_state(state, 0.9999), state)
    assert back["w"].shape == conv.shape and torch.allclose(back["w"], conv, atol=1e-3)
    assert torch.equal(back["b"], bias)


def test_adaptive_margin_and_contrastive_loss():
    protos = torch.tensor([[0.0, 0.0], [0.0, 0.2], [3.0, 0.0], [3.0, 0.2], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    # class centres (0, .1), (3, .1), (0, 5): nearest-other gaps 3, 3, 4.9 -> max 4.9, capped by threshold
    assert adaptive_margin(protos, labels, 3, 100.0) == pytest.approx(math.dist((0, 0.1), (0, 5)), rel=1e-5)
    assert adaptive_margin(protos, labels, 3, 1.0) == 1.0
    assert adaptive_margin(protos[:2], labels[:2], 3, 1.0) == 0.0
    centres = torch.tensor([[0.0, 0.1], [3.0, 0.1], [0.0, 5.0]])
    assert margin_contrastive_loss(protos, labels, centres, 0.0) < margin_contrastive_loss(
        protos, labels, centres, 2.0
    )


# ---- compatibility -----------------------------------------------------------------------------------------
def test_registration_and_compatibility_flags():
    from engine.config import ClientSpec

    roster = [ClientSpec(model={"arch": "mlp"}), ClientSpec(model={"arch": "cnn"})]
    for name in KD:
        cls = STRATEGIES.get(name)
        assert cls.family == "knowledge distillation" and not cls.same_architecture, name
        assert cls.paper and cls.url.startswith("https://arxiv.org/abs/"), name
        assert cls.incompatibility(roster, "classification", has_public=True) is None, name
    for name in ("fedmd", "feddf"):
        why = STRATEGIES.get(name).incompatibility(roster, "classification", has_public=False)
        assert why is not None and "public_fraction" in why
    for name in ("fd", "fedproto", "fml", "fedkd", "fedgh", "fedtgp"):
        assert STRATEGIES.get(name).incompatibility(roster, "classification", has_public=False) is None
    for name in ("fd", "fedproto", "fedgh", "fedtgp"):
        assert "classification" in STRATEGIES.get(name).incompatibility(roster, "regression", True)
    for name in ("fedmd", "feddf", "fml", "fedkd"):
        assert STRATEGIES.get(name).incompatibility(roster, "regression", True) is None


def test_shared_model_spec_is_validated():
    with pytest.raises(ConfigError, match="shared_model"):
        parse_config(config({"name": "fml", "shared_model": {"arch": "mlp", "hidden": 1}}))
    with pytest.raises(ConfigError, match="shared_model"):
        parse_config(config({"name": "fedkd", "shared_model": {"arch": "nosuch"}}))
    cfg = parse_config(config({"name": "fml", "shared_model": "mlp"}))
    assert cfg.strategy.params()["shared_model"]["hidden"] == 128  # knobs filled in
    wine = digits_config(
        rounds=1,
        data={"dataset": "wine", "partition": {"method": "iid"}},
        strategy={"name": "fml", "shared_model": {"arch": "cnn"}},
        clients=[{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 8}}],
    )
    with pytest.raises(CompatibilityError, match="cannot read tabular"):
        Simulation(parse_config(wine)).run()


# ---- FD ------------------------------------------------------------------------------------------------
def test_fd_sends_per_class_mean_logits_and_counts(monkeypatch):
    sim, calls = run({"name": "fd", "kd_weight": 0.5}, monkeypatch, rounds=2, public=0.0)
    (_, first, _), (_, second, before) = calls
    for r in first:
        cid = r.client.id
        assert set(r.payload) == {"class_logits", "class_counts"}
        assert r.payload["class_logits"].shape == (10, 10)
        train = sim.federation.clients[cid].train
        assert r.payload["class_counts"].tolist() == torch.bincount(train.y, minlength=10).float().tolist()
    # the round-2 payloads come from the final models: compare with a direct computation
    for r in second:
        train = sim.federation.clients[r.client.id].train
        logits = client_model(sim, r.client.id)(train.x).detach()
        for c in range(10):
            rows = train.y == c
            if rows.any():
                assert torch.allclose(r.payload["class_logits"][c], logits[rows].mean(0), atol=1e-4)
    # the server's table after round 1 is the count-weighted merge of round 1's tables
    merged, counts = merge_class_means(
        [r.payload["class_logits"] for r in first], [r.payload["class_counts"] for r in first]
    )
    assert torch.allclose(before["class_logits"], merged) and torch.equal(before["class_counts"], counts)
    up = sim.history[0].clients
    assert all(up[c]["bytes_up"] == 10 * 10 * 4 + 10 * 4 for c in up)
    assert sim.history[0].metrics["bytes_down"] == 0  # nothing known before round 1
    assert all(sim.history[1].clients[c]["bytes_down"] == 440 for c in up)
    assert all("kd_loss" in sim.history[1].clients[c] for c in up)


def test_fd_loss_adds_the_pull_towards_the_global_logit_of_the_class():
    from engine.strategies.fd import FD

    torch.manual_seed(0)
    table = torch.randn(3, 3)
    counts = torch.tensor([4.0, 0.0, 2.0])  # class 1 unknown: no pull for its samples
    out = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 2])

    ctx = SimpleNamespace(
        received={"class_logits": table, "class_counts": counts},
        model=lambda x: out,
        task="classification",
        loss=F.cross_entropy,
    )
    strategy = FD(FD.Params(kd_weight=2.0, temperature=1.5), server=None)
    known = torch.tensor([True, False, True, True])
    expected = F.cross_entropy(out, y) + 2.0 * kd_loss(out[known], table[y[known]], 1.5) * 0.75
    assert float(strategy.local_loss(ctx, None, y).detach()) == pytest.approx(
        float(expected.detach()), rel=1e-6
    )


# ---- FedProto ----------------------------------------------------------------------------------------------
def test_fedproto_payload_prototypes_are_class_means_of_the_trained_features(monkeypatch):
    sim, calls = run({"name": "fedproto"}, monkeypatch, rounds=2, public=0.0)
    (_, first, _), (_, second, before) = calls
    for r in second:
        train = sim.federation.clients[r.client.id].train
        feats = client_model(sim, r.client.id).features(train.x).detach()
        assert r.payload["prototypes"].shape == (10, sim.config.rep_dim)
        for c in range(10):
            rows = train.y == c
            if rows.any():
                assert torch.allclose(r.payload["prototypes"][c], feats[rows].mean(0), atol=1e-4)
            else:
                assert r.payload["proto_counts"][c] == 0
    merged, _ = merge_class_means(
        [r.payload["prototypes"] for r in first], [r.payload["proto_counts"] for r in first]
    )
    assert torch.allclose(before["prototypes"], merged)
    assert sim.history[0].clients[0]["bytes_up"] == 10 * (sim.config.rep_dim + 1) * 4


def test_fedproto_prototype_inference_picks_the_nearest_global_prototype():
    sim, _ = run({"name": "fedproto", "inference": "prototype"}, rounds=1, public=0.0)
    strategy, cid = sim.strategy, 0
    model = client_model(sim, cid)
    x = sim.federation.clients[cid].test.x
    out = strategy.predict(sim.clients[cid], model, sim.states[cid], x)
    feats = model.features(x)
    dist = torch.cdist(feats, strategy.state["prototypes"])
    dist[:, strategy.state["proto_counts"] == 0] = float("inf")
    assert torch.equal(out.argmax(1), dist.argmin(1))
    head = STRATEGIES.get("fedproto")(STRATEGIES.get("fedproto").Params(inference="head"), sim.server)
    head.state = strategy.state
    assert torch.equal(head.predict(sim.clients[cid], model, sim.states[cid], x), model(x))


# ---- FedMD -------------------------------------------------------------------------------------------------
def test_fedmd_scores_one_public_subset_digests_the_consensus_and_revisits(monkeypatch):
    sim, calls = run(
        {"name": "fedmd", "public_size": 50, "digest_epochs": 3, "pretrain_epochs": 1}, monkeypatch, rounds=2
    )
    (_, first, _), (_, second, before) = calls
    n_public = len(sim.federation.public)
    assert n_public > 50
    assert all(r.payload["scores"].shape == (50, 10) for r in first)
    # the consensus of round 1 is the plain mean of the scores and is sent with its subset in round 2
    assert torch.allclose(before["consensus"], torch.stack([r.payload["scores"] for r in first]).mean(0))
    subset = before["consensus_subset"].long()
    assert len(set(subset.tolist())) == 50 and int(subset.max()) < n_public
    # round 2's scores are the final models' outputs on round 2's subset of the public set
    latest = sim.strategy.state["consensus_subset"].long()
    assert not torch.equal(latest, subset)  # a fresh subset each round
    for r in second:
        direct = client_model(sim, r.client.id)(sim.federation.public.x[latest]).detach()
        assert torch.allclose(r.payload["scores"], direct, atol=1e-4)
    m = sim.history[1].clients
    for cid in m:
        assert m[cid]["digest_gap_after"] < m[cid]["digest_gap_before"]  # digest moved towards consensus
        assert m[cid]["bytes_up"] == 50 * 10 * 4
        assert m[cid]["bytes_down"] == 50 * 10 * 4 + 2 * 50 * 4  # consensus + two int32 index lists
    assert sim.history[0].clients[0]["bytes_down"] == 50 * 4  # round 1: only this round's subset


@pytest.mark.parametrize("labels", [True, False])
def test_fedmd_transfer_learning_on_the_labelled_public_set_runs_in_the_first_round_only(labels, monkeypatch):
    """public_labels: a client's first turn trains on the public set with its labels (the paper's
    first step) before its private data; later turns and public_labels off do not."""
    from engine.strategies.fedmd import FedMD

    seen = []
    original = FedMD.transfer

    def spy(self, ctx):
        before = len(ctx.fit_stats)
        original(self, ctx)
        seen.append((ctx.round, ctx.client.id, ctx.fit_stats[before:]))

    monkeypatch.setattr(FedMD, "transfer", spy)
    sim, _ = run(
        {
            "name": "fedmd",
            "public_labels": labels,
            "transfer_epochs": 2,
            "digest_epochs": 1,
            "pretrain_epochs": 0,
        },
        rounds=2,
    )
    n_public = len(sim.federation.public)
    assert {r for r, _, _ in seen} == {1} and len(seen) == len(sim.clients)
    for _, cid, stats in seen:
        assert [s.samples for s in stats] == ([2 * n_public] if labels else [])
        assert ("transfer_loss" in sim.history[0].clients[cid]) == labels
        assert math.isfinite(sim.history[0].clients[cid].get("transfer_loss", 0.0))


# ---- FedDF -------------------------------------------------------------------------------------------------
def test_feddf_distillation_reduces_the_kl_to_the_ensemble(monkeypatch):
    sim, calls = run(
        {"name": "feddf", "distill_steps": 40, "distill_lr": 0.003, "validation_fraction": 0},
        monkeypatch,
        rounds=2,
    )
    groups = {c.arch_key for c in sim.clients}
    assert set(sim.strategy.state["distill"]) == groups
    for g, d in sim.strategy.state["distill"].items():
        assert d["round"] == 2 and d["after"] < 0.7 * d["before"], g
        assert d["kept"] == d["steps"] == 40  # no validation slice: fixed steps, the last weights
    # direct check on the public set: the distilled models are closer to the ensemble than the averages
    _, results, _ = calls[-1]
    x = sim.federation.public.x
    with torch.no_grad():
        ensemble = torch.stack([client_model(sim, r.client.id, r.payload)(x) for r in results]).mean(0)
        for g in groups:
            members = [r for r in results if r.client.arch_key == g]
            averaged = weighted_mean([r.payload for r in members], [r.n_samples for r in members])
            cid = members[0].client.id
            kl_avg = float(kd_loss(client_model(sim, cid, averaged)(x), ensemble))
            kl_distilled = float(
                kd_loss(client_model(sim, cid, sim.strategy.state["global"][g])(x), ensemble)
            )
            assert kl_distilled < kl_avg
    metrics = sim.history[-1].metrics
    assert {"server_acc[mlp]", "server_acc[cnn]", "server_acc[gru]"} <= set(metrics)
    # clients of one architecture start the next round from the same distilled model
    mlp_ids = [c.id for c in sim.clients if c.arch == "mlp"]
    states = [sim.strategy.eval_state(sim.clients[i], sim.states[i]) for i in mlp_ids]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_feddf_early_stopping_scores_a_labelled_slice_of_the_public_set_and_never_keeps_worse(monkeypatch):
    """The validation slice is validation_fraction of the public set, the same each round, scored
    with its labels at the start and every eval_every steps; the rest is distilled on."""
    from engine.strategies import _distill
    from engine.strategies.feddf import FedDF

    scored = []
    original = _distill.validation_score

    def spy(model, x, y, task):
        out = original(model, x, y, task)
        scored.append((len(x), out))
        return out

    monkeypatch.setattr(_distill, "validation_score", spy)
    splits = []
    original_split = FedDF.public_split
    monkeypatch.setattr(FedDF, "public_split", lambda self: splits.append(original_split(self)) or splits[-1])
    sim, _ = run(
        {"name": "feddf", "distill_steps": 30, "eval_every": 5, "patience": 10, "validation_fraction": 0.25},
        rounds=2,
    )
    n_public = len(sim.federation.public)
    n_val = round(0.25 * n_public)
    (x1, (xv1, yv1)), (x2, (xv2, yv2)) = splits
    assert len(xv1) == n_val and len(x1) == n_public - n_val
    assert torch.equal(xv1, xv2) and torch.equal(yv1, yv2)
    assert {n for n, _ in scored} == {n_val}
    for d in sim.strategy.state["distill"].values():
        assert d["kept"] <= d["steps"] <= 30 and d["kept"] % 5 == 0


# ---- FML / FedKD -------------------------------------------------------------------------------------------
def test_fml_shares_only_the_meme_model(monkeypatch):
    shared = {"arch": "mlp", "hidden": 32}  # the same spec as the mlp clients' private models
    sim, calls = run({"name": "fml", "shared_model": shared}, monkeypatch, rounds=2, public=0.0)
    _, results, before = calls[-1]
    meme_bytes = nbytes(before["shared"])
    for r in results:
        assert set(r.payload) == set(before["shared"])  # the meme model's weights, nothing private
        assert sim.history[-1].clients[r.client.id]["bytes_up"] == meme_bytes
        assert sim.history[-1].clients[r.client.id]["bytes_down"] == meme_bytes
    # the server's meme model is the sample-weighted mean, identical for everyone next round
    avg = weighted_mean([r.payload for r in results], [r.n_samples for r in results])
    assert all(torch.allclose(sim.strategy.state["shared"][k], avg[k]) for k in avg)
    messages = [sim.strategy.configure(c) for c in sim.clients]
    assert all(m is messages[0] for m in messages)
    # private models stay private: the two mlp clients differ, and differ from the meme model
    a, b = sim.states[0]["model"], sim.states[1]["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], sim.strategy.state["shared"][k]) for k in a)
    assert sim.strategy.eval_state(sim.clients[0], sim.states[0]) is sim.states[0]["model"]
    assert "server_acc[mlp]" in sim.history[-1].metrics
    assert all("kd_loss" in m for m in sim.history[-1].clients.values())


def test_fedkd_loss_scales_each_samples_distillation_by_its_task_losses():
    from engine.strategies.fedkd import FedKD
    from engine.strategies.fml import Pair

    torch.manual_seed(0)
    spec = DIGITS
    t = build_model({"arch": "mlp", "hidden": 16}, spec, 8, 10)
    s = build_model({"arch": "mlp", "hidden": 8}, spec, 8, 10)
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    with torch.no_grad():  # confident, varied predictions: task losses differ from sample to sample
        for model in (t, s):
            for p in model.parameters():
                p.mul_(4.0)

    ctx = SimpleNamespace(task="classification", loss=F.cross_entropy)
    strategy = FedKD(FedKD.Params(hidden_weight=0.5, temperature=2.0), server=None)
    got = float(strategy.pair_loss(ctx, Pair(t, s), x, y).detach())
    with torch.no_grad():
        ht, hs = t.features(x), s.features(x)
        ot, os_ = t.head(ht), s.head(hs)
        expected = 0.0
        for i in range(len(x)):  # the paper's per-sample equations, one sample at a time
            oti, osi, hti, hsi, yi = ot[i : i + 1], os_[i : i + 1], ht[i : i + 1], hs[i : i + 1], y[i : i + 1]
            ce_t, ce_s = F.cross_entropy(oti, yi), F.cross_entropy(osi, yi)
            kd = (
                kd_loss(oti, osi, 2.0)
                + 0.5 * F.mse_loss(hti, hsi)
                + kd_loss(osi, oti, 2.0)
                + 0.5 * F.mse_loss(hsi, hti)
            )
            expected += float(ce_t + ce_s + kd / max(float(ce_t + ce_s), 0.1)) / len(x)
        # a weight from the batch's mean losses gives a different loss: the weighting is per sample
        ce_t, ce_s = F.cross_entropy(ot, y), F.cross_entropy(os_, y)
        kd = (
            kd_loss(ot, os_, 2.0)
            + 0.5 * F.mse_loss(ht, hs)
            + kd_loss(os_, ot, 2.0)
            + 0.5 * F.mse_loss(hs, ht)
        )
        batch_weighted = float(ce_t + ce_s + kd / (ce_t + ce_s))
    assert got == pytest.approx(expected, rel=1e-5)
    assert got != pytest.approx(batch_weighted, rel=1e-3)


def test_fedkd_svd_shrinks_the_bytes_and_keeps_clients_in_sync(monkeypatch):
    shared = {"arch": "mlp", "hidden": 64}
    dense, _ = run({"name": "fedkd", "shared_model": shared}, rounds=2, public=0.0)
    sim, calls = run(
        {"name": "fedkd", "shared_model": shared, "svd_energy": 0.8}, monkeypatch, rounds=2, public=0.0
    )
    for rnd in (0, 1):
        assert sim.history[rnd].metrics["bytes_up"] < 0.6 * dense.history[rnd].metrics["bytes_up"]
    assert sim.history[0].metrics["bytes_down"] == dense.history[0].metrics["bytes_down"]  # dense first
    assert sim.history[1].metrics["bytes_down"] < 0.6 * dense.history[1].metrics["bytes_down"]
    # every client rebuilt exactly the server's round-1 mentee from the factors it received
    _, results, before = calls[-1]
    for r in results:
        held = sim.states[r.client.id]["extra"]["shared_global"]
        assert all(torch.allclose(held[k], before["shared"][k], atol=1e-6) for k in held)
        assert "update" in r.payload
    # the private mentors are evaluated, never the mentee
    assert sim.strategy.eval_state(sim.clients[2], sim.states[2]) is sim.states[2]["model"]


# ---- FedGH / FedTGP ----------------------------------------------------------------------------------------
def test_fedgh_trains_one_global_head_on_the_prototypes(monkeypatch):
    sim, calls = run({"name": "fedgh"}, monkeypatch, rounds=2, public=0.0)
    _, results, before = calls[-1]
    head = sim.strategy.state["head"]
    assert set(head) == {"head.weight", "head.bias"} and head["head.weight"].shape == (10, sim.config.rep_dim)
    protos = torch.cat([r.payload["prototypes"][r.payload["proto_counts"] > 0] for r in results])
    labels = torch.cat([torch.nonzero(r.payload["proto_counts"] > 0).flatten() for r in results])

    def ce(h):
        return float(F.cross_entropy(protos @ h["head.weight"].T + h["head.bias"], labels))

    assert ce(head) < ce(before["head"])
    for c in sim.clients:  # every client is evaluated with its own body and the global head
        state = sim.strategy.eval_state(c, sim.states[c.id])
        assert torch.equal(state["head.weight"], head["head.weight"])
        assert all(
            torch.equal(v, sim.states[c.id]["model"][k]) for k, v in state.items() if k.startswith("body.")
        )
    assert sim.history[-1].clients[0]["bytes_down"] == nbytes(head)
    assert sim.history[-1].clients[0]["bytes_up"] == 10 * (sim.config.rep_dim + 1) * 4


def test_fedtgp_server_learns_prototypes_that_separate_the_classes():
    from engine.types import ClientResult

    sim, _ = run({"name": "fedtgp"}, rounds=1, public=0.0)
    strategy, rep = sim.strategy, sim.config.rep_dim
    gen = torch.Generator().manual_seed(0)
    centres = 2.0 * torch.randn(10, rep, generator=gen)
    results = []
    for c in sim.clients:  # each client holds 6 of the 10 classes; noisy copies of the class centres
        counts = torch.zeros(10)
        counts[torch.randperm(10, generator=gen)[:6]] = 5.0
        protos = (centres + 0.3 * torch.randn(10, rep, generator=gen)) * (counts > 0).float().unsqueeze(1)
        results.append(ClientResult(c, {"prototypes": protos, "proto_counts": counts}, 30, {}))
    protos = torch.cat([r.payload["prototypes"][r.payload["proto_counts"] > 0] for r in results])
    labels = torch.cat([torch.nonzero(r.payload["proto_counts"] > 0).flatten() for r in results])
    before = strategy.state["generator"]
    strategy.aggregate(results)
    state = strategy.state

    def generate(generator_state):
        g = PrototypeGenerator(10, rep, strategy.params.hidden)
        g.load_state_dict(generator_state)
        return g().detach()

    assert state["margin"] == strategy.params.margin_threshold  # the centres are far apart: capped
    assert torch.allclose(state["prototypes"], generate(state["generator"]), atol=1e-6)  # what is sent
    loss_before = float(margin_contrastive_loss(protos, labels, generate(before), state["margin"]))
    assert state["server_loss"] < 0.2 * loss_before
    assert torch.equal(torch.cdist(protos, state["prototypes"]).argmin(1), labels)
    assert (state["proto_counts"] > 0).sum() == int(
        (torch.stack([r.payload["proto_counts"] for r in results]).sum(0) > 0).sum()
    )


def test_fedtgp_clients_receive_the_learned_prototypes(monkeypatch):
    sim, calls = run({"name": "fedtgp"}, monkeypatch, rounds=2, public=0.0)
    assert sim.strategy.state["prototypes"].shape == (10, sim.config.rep_dim)
    assert 0 < sim.strategy.state["margin"] <= sim.strategy.params.margin_threshold
    _, _, before = calls[-1]
    message = sim.strategy.configure(sim.clients[0])
    assert set(message) == {"prototypes", "proto_counts"}
    assert sim.history[1].clients[0]["bytes_down"] == 10 * (sim.config.rep_dim + 1) * 4
    assert sim.history[0].metrics["bytes_down"] == 0
    assert not torch.equal(before["prototypes"], sim.strategy.state["prototypes"])  # re-learned each round


@pytest.mark.parametrize(
    "strategy",
    [
        {"name": "fml", "shared_model": {"arch": "mlp", "hidden": 32}},
        {"name": "fedkd", "svd_energy": 0.9},
        {"name": "fedmd"},
    ],
)
def test_threads_executor_gives_the_sequential_result(strategy):
    sequential, _ = run(strategy, rounds=2)
    threads, _ = run(strategy, rounds=2, executor="threads", executor_options={"workers": 2})
    for a, b in zip(sequential.history, threads.history, strict=True):
        for key in ("local_acc_mean", "global_acc_mean", "bytes_up", "bytes_down"):
            assert a.metrics[key] == b.metrics[key], key


# ---- every strategy: checkpoints and regression ------------------------------------------------------------
@pytest.mark.parametrize("name", KD)
def test_server_state_checkpoints_with_weights_only(name):
    sim, _ = run({"name": name}, rounds=1)
    buffer = io.BytesIO()
    torch.save({"strategy": sim.strategy.state_dict(), "states": sim.states}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded["strategy"].keys() == sim.strategy.state_dict().keys()


@pytest.mark.parametrize("name", ["fedmd", "feddf", "fml", "fedkd"])
def test_output_distillation_runs_on_regression(name):
    cfg = digits_config(
        rounds=2,
        checkpoint_every=0,
        strategy={"name": name},
        data={
            "dataset": "traffic",
            "options": {"target": "volume", "form": "tabular", "cities": 2, "days": 14},
            "partition": {"method": "iid"},
            "public_fraction": 0.2,
        },
        clients=[
            {"name": "a", "count": 2, "model": {"arch": "mlp", "hidden": 16}, **SGD, "lr": 0.01},
            {"name": "b", "count": 1, "model": {"arch": "cnn1d", "channels": 4}, **ADAM},
        ],
    )
    sim = Simulation(parse_config(cfg))
    sim.run()
    assert sim.task == "regression"
    assert math.isfinite(sim.history[-1].metrics["local_r2_mean"])


# ---- learning on digits (slow) -----------------------------------------------------------------------------
# The smallest federation that still shows the effect: six sites, three architectures (two each), small
# models, Dirichlet(0.3) label skew, 20% of the data held out as the unlabelled public set (for every run,
# so all share one split and one ``local`` baseline), 8 rounds. The paired unit is the client: its late
# mean accuracy on the global test set minus ``local``'s; the noise is the standard error over clients.
LEARN_ROUNDS = 8


def small_roster(sgd: dict, adam: dict, batch_size: int = 16) -> list[dict]:
    return [
        {"name": n, "count": 2, "model": m, "epochs": 2, "batch_size": batch_size, **o}
        for n, m, o in (
            ("mlp", {"arch": "mlp", "hidden": 64}, sgd),
            ("cnn", {"arch": "cnn", "channels": 8}, adam),
            ("gru", {"arch": "gru", "hidden": 32}, adam),
        )
    ]


LEARN_ROSTER = small_roster(
    {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}, {"optimizer": "adam", "lr": 0.003}
)


def learn(strategy: str, clients: list[dict], public: float) -> Simulation:
    return learn_with(strategy, clients, public)


def learn_with(strategy: str, clients: list[dict], public: float, **params) -> Simulation:
    cfg = digits_config(
        seed=0,
        rounds=LEARN_ROUNDS,
        eval_every=2,
        checkpoint_every=0,
        clients=clients,
        strategy={"name": strategy, **params},
        data={
            "dataset": "digits",
            "partition": {"method": "dirichlet", "alpha": 0.3},
            "public_fraction": public,
        },
    )
    sim = Simulation(parse_config(cfg))
    sim.run()
    return sim


def paired_gain(sim: Simulation, alone: Simulation, key: str) -> tuple[float, float]:
    """Mean over clients of (``sim`` - ``alone``) in each client's late mean of ``key`` (e.g.
    ``global_acc``), and its standard error over clients."""
    assert sim.federation.fingerprint == alone.federation.fingerprint
    ours = personalised.late_means_per_client(sim.history, key, LEARN_ROUNDS)
    base = personalised.late_means_per_client(alone.history, key, LEARN_ROUNDS)
    diffs = [ours[c] - base[c] for c in base]
    return sum(diffs) / len(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))


def assert_far_above(name: str, gain: float, se: float, key: str) -> None:
    """Far above: at least 15 points of accuracy on average, and above zero by more than two
    standard errors over clients (the clients' spread cannot explain it)."""
    assert gain >= 0.15 and gain - 2 * se > 0, (
        f"{name}: {key} {100 * gain:+.1f} points over local (se {100 * se:.1f})"
    )


@pytest.fixture(scope="module")
def local_run() -> Simulation:
    return learn("local", LEARN_ROSTER, 0.2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fedmd", "feddf"])
def test_public_set_distillation_lifts_global_accuracy_far_above_local(name, local_run):
    """Global test set, paired over the six clients (points, +- se), measured when written: fedmd
    +22.3 +- 3.9, feddf +34.8 +- 5.3 over local's 0.506. Local models know only their few classes;
    the public set is how knowledge of the others crosses. Broken, measured: FedDF with its
    distillation off (distill_steps 0, per-architecture averaging only) +9.1 +- 4.4, fails. FedMD's
    labelled transfer round alone (digest_epochs 0) gives +15.3 +- 3.1, so FedMD is also held to
    beat that ablation beyond noise: the digest adds +7.1 +- 2.6 (a digest that does nothing: 0)."""
    sim = learn(name, LEARN_ROSTER, 0.2)
    gain, se = paired_gain(sim, local_run, "global_acc")
    assert_far_above(name, gain, se, "global accuracy")
    if name == "fedmd":  # most of FedMD's lift is its labelled transfer round: the digest must add to it
        undigested = learn_with(name, LEARN_ROSTER, 0.2, digest_epochs=0)
        more, se = paired_gain(sim, undigested, "global_acc")
        assert more - 2 * se > 0, f"the digest adds {100 * more:+.1f} points (se {100 * se:.1f})"


def test_feddf_charts_its_distillation_loss_per_round():
    from conftest import digits_config

    from engine.config import parse_config
    from engine.core.simulation import Simulation

    cfg = digits_config(
        rounds=2,
        data={"dataset": "digits", "partition": {"method": "iid"}, "public_fraction": 0.1},
        clients=[
            {**digits_config()["clients"][0], "count": 2},
            {
                **digits_config()["clients"][0],
                "name": "k",
                "count": 2,
                "model": {"arch": "cnn", "channels": 8},
            },
        ],
        strategy={"name": "feddf", "distill_steps": 5},
    )
    sim = Simulation(parse_config(cfg))
    sim.run()
    for record in sim.history:
        for arch in ("mlp", "cnn"):
            assert (
                record.metrics[f"distill_kl_after[{arch}]"]
                <= record.metrics[f"distill_kl_before[{arch}]"] + 1e-6
            )


# ---- robust under plain SGD (slow) -------------------------------------------------------------------------
# Issue 15's setting: every client on SGD lr 0.05 without momentum, 2 epochs, batch 32; digits,
# Dirichlet(0.3), 10% public set. There (4 mlp + 3 cnn + 3 gru, 20 rounds) FedDF's models fell to
# chance (0.100 global accuracy against local's 0.240) and FedMD stayed below local. Here on the six
# small clients, 8 rounds.
PLAIN_SGD = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.0}
PLAIN_ROSTER = small_roster(PLAIN_SGD, PLAIN_SGD, batch_size=32)


@pytest.fixture(scope="module")
def plain_local() -> Simulation:
    return learn("local", PLAIN_ROSTER, 0.1)


@pytest.mark.slow
def test_feddf_distillation_lifts_global_accuracy_far_above_local_with_plain_sgd(plain_local):
    """Measured when written (points over local on the global test set, paired over clients, +- se):
    feddf +25.3 +- 7.2; with distillation off (distill_steps 0) +1.9 +- 3.6, flagged at chance.
    On the 20-round ten-client setup: local 0.326, feddf 0.649; before the fix (torch's default
    initialisation, fixed-step distillation) feddf fell to 0.10."""
    sim = learn("feddf", PLAIN_ROSTER, 0.1)
    gain, se = paired_gain(sim, plain_local, "global_acc")
    assert_far_above("feddf", gain, se, "global accuracy")
    assert not sim.health.warned, "the run was flagged as stuck at chance"


@pytest.mark.slow
def test_fedmd_is_no_worse_than_local_with_plain_sgd(plain_local):
    """FedMD's digest under plain SGD (issue 15: it fell below local). Measured when written (points
    over local, paired over clients, +- se): global test set +2.8 +- 2.8, own test splits +4.6 +- 5.5
    (with the digest off: +6.1 +- 3.7 and +3.6 +- 2.9: the digest's lift is checked above). Eight rounds
    of six small clients cannot resolve a gain that size, so the check is parity: not below local by
    more than two standard errors on either, and not stuck at chance. On the 20-round ten-client
    setup: global local 0.326, fedmd 0.430; own test splits local 0.746, fedmd 0.801.
    FedMD's models stay far below its consensus: each round's revisit on skewed private data takes
    much of the digest back (fedmd.py)."""
    sim = learn("fedmd", PLAIN_ROSTER, 0.1)
    for key in ("global_acc", "local_acc"):
        gain, se = paired_gain(sim, plain_local, key)
        assert gain >= -2 * se, f"fedmd: {key} {100 * gain:+.1f} points against local (se {100 * se:.1f})"
    assert not sim.health.warned, "the run was flagged as stuck at chance"
