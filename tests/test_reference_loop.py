"""The hand-written reference loop (bench/reference_loop.py) runs every algorithm on a tiny image
task, and the knowledge-sharing ones really exchange what they claim, when they claim to."""

from __future__ import annotations

import pytest
import torch

from bench.images import ReferenceFedAvgCNN
from bench.reference_loop import ALGORITHMS, DEFAULTS, MLP, ClientSplit, federate, low_rank

CLASSES = 3


def images(labels: list[int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """1x28x28 images: a bright 8x8 square whose place says the class, on noise."""
    y = torch.tensor(labels)
    x = 0.3 * torch.rand(len(labels), 1, 28, 28, generator=gen)
    for i, c in enumerate(labels):
        x[i, 0, 2 + 8 * c : 10 + 8 * c, 4:12] += 0.7
    return x, y


def task() -> list[ClientSplit]:
    """Two clients with skewed classes (client 0 mostly 0 and 1, client 1 mostly 1 and 2)."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for mix in ([0, 0, 0, 1, 1, 2], [2, 2, 2, 1, 1, 0]):
        x_train, y_train = images(mix * 4, gen)
        x_test, y_test = images(mix * 2, gen)
        out.append(ClientSplit(x_train, y_train, x_test, y_test))
    return out


def make_model() -> ReferenceFedAvgCNN:
    return ReferenceFedAvgCNN(1, CLASSES, 1024)


def make_shared() -> MLP:
    return MLP(28 * 28, CLASSES, hidden=16, rep_dim=512)


def outcome(algorithm: str, rounds: int, **params):
    return federate(
        algorithm, task(), make_model, rounds=rounds, seed=0, make_shared=make_shared, params=params or None
    )


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [(a, {}) for a in ALGORITHMS]
    + [("fedproto", {"inference": "prototype"}), ("fedkd", {"svd_energy": 0.9})],
)
def test_every_algorithm_runs_and_scores_accuracies(algorithm: str, params: dict) -> None:
    curve = outcome(algorithm, 2, **params).curve
    assert len(curve) == 2 and all(0.0 <= a <= 1.0 for a in curve), curve


@pytest.mark.parametrize("algorithm", ["fedproto", "fd"])
def test_tables_are_exchanged_from_round_two(algorithm: str) -> None:
    """Round 1 has nothing to receive, so each client trains as alone; then the server holds the
    per-class table of every training sample, and from round 2 it pulls the clients' training, so
    their models leave local's."""
    first = outcome(algorithm, 1)
    for a, b in zip(first.models, outcome("local", 1).models, strict=True):
        assert same(a, b)
    labels = torch.cat([c.y_train for c in task()])
    assert torch.equal(first.server["counts"], torch.bincount(labels, minlength=CLASSES).float())
    width = 512 if algorithm == "fedproto" else CLASSES  # prototypes: the representation; fd: logits
    assert first.server["table"].shape == (CLASSES, width)
    for a, b in zip(outcome(algorithm, 2).models, outcome("local", 2).models, strict=True):
        assert not same(a, b)


@pytest.mark.parametrize("algorithm", ["fml", "fedkd"])
def test_the_shared_model_teaches_the_private_one_and_is_averaged(algorithm: str) -> None:
    """The private model learns from the shared one within round 1 (so it leaves local's, and
    the algorithm's parameter changes it); the server holds the mean of the clients' shared models
    (equal training sizes here)."""
    first = outcome(algorithm, 1)
    for a, b in zip(first.models, outcome("local", 1).models, strict=True):
        assert not same(a, b)
    states = [s.state_dict() for s in first.shared]
    assert len(states) == 2 and not same(*first.shared)
    for k, v in first.server.items():
        assert torch.allclose(v, (states[0][k] + states[1][k]) / 2, atol=1e-6), k
    other = outcome(algorithm, 1, **({"alpha": 1.0} if algorithm == "fml" else {"hidden_weight": 0.0}))
    assert not same(other.models[0], first.models[0])


def test_fedkd_compression_changes_what_is_averaged() -> None:
    dense, compressed = outcome("fedkd", 1), outcome("fedkd", 1, svd_energy=0.5)
    assert any(not torch.allclose(dense.server[k], compressed.server[k]) for k in dense.server)
    assert not same(outcome("fedkd", 2).models[0], outcome("fedkd", 2, svd_energy=0.5).models[0])


def test_low_rank_keeps_the_fewest_singular_values_reaching_the_share_asked() -> None:
    gen = torch.Generator().manual_seed(0)
    rank_one = torch.outer(torch.randn(16, generator=gen), torch.randn(16, generator=gen))
    assert torch.allclose(low_rank(rank_one, 0.95), rank_one, atol=1e-5)
    noisy = torch.randn(16, 16, generator=gen)
    k = int(torch.linalg.matrix_rank(low_rank(noisy, 0.5)))
    share = torch.cumsum(torch.linalg.svdvals(noisy).pow(2), 0) / noisy.pow(2).sum()
    assert 1 <= k < 16 and share[k - 1] >= 0.5 and (k == 1 or share[k - 2] < 0.5)
    bias = torch.randn(16, generator=gen)
    assert torch.equal(low_rank(bias, 0.5), bias)


def test_unknown_parameters_and_a_missing_shared_model_are_refused() -> None:
    with pytest.raises(ValueError, match="lam"):
        federate("fd", task(), make_model, rounds=1, params={"lam": 1.0})
    with pytest.raises(ValueError, match="make_shared"):
        federate("fml", task(), make_model, rounds=1)


def test_bench_peers_passes_fedmosaics_defaults() -> None:
    """The loop takes exactly the parameters FedMosaic's strategies have (a new one fails here),
    and the shared model bench.peers builds has the parameter shapes of FedMosaic's default."""
    from bench.peers import REP_DIM, hand_options
    from engine.models import InputSpec, build_model
    from engine.strategies import STRATEGIES

    for name in DEFAULTS:
        options = hand_options(name, [1, 28, 28], he=True)
        assert set(options["params"]) == set(DEFAULTS[name])
        if name in ("fml", "fedkd"):
            spec = STRATEGIES.get(name).Params().shared_model
            ours = build_model(spec, InputSpec("image", (1, 28, 28)), REP_DIM, 10)
            theirs = options["make_shared"]()
            assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    assert hand_options("fedrep", [1, 28, 28], he=True) == {
        "head_epochs": STRATEGIES.get("fedrep").Params().head_epochs
    }
