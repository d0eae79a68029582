"""Server-side privacy (engine/privacy/server.py, secagg.py): secure aggregation's masked sum
equals the plain one and its uploads reveal nothing per client, dropouts are recovered or the round
says why not; DP-FedAvg's clipping bounds one client's influence, adaptive clipping follows the
updates' norms, clients are Poisson-sampled and the epsilon is the accountant's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import digits_config

from engine.config import parse_config
from engine.core.aggregate import weighted_mean
from engine.privacy import secagg
from engine.privacy.server import PrivateAggregation
from engine.types import ClientInfo

pytest.importorskip("opacus")


class OneGroup:
    def group(self, client):
        return "all"


def private(n: int, **overrides) -> tuple[PrivateAggregation, list[ClientInfo]]:
    cfg = parse_config(
        digits_config(clients=[{"name": "c", "count": n, "model": {"arch": "mlp", "hidden": 8}}], **overrides)
    )
    clients = [ClientInfo(i, s.name, s, 100, 20) for i, s in enumerate(cfg.roster())]
    return PrivateAggregation(cfg, clients, OneGroup()), clients


def states(k: int, seed: int = 0, scale: float = 1.0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "body.w": torch.randn(6, 5, generator=g) * scale,
            "head.b": torch.randn(3, generator=g) * scale,
            "count": torch.tensor(7),
        }
        for _ in range(k)
    ]


def test_the_masked_sum_equals_the_plain_sum_and_recovers_dropouts() -> None:
    g = torch.Generator().manual_seed(0)
    vectors = {u: torch.randn(500, generator=g, dtype=torch.float64) * 3 for u in (0, 2, 3, 5)}
    members = [0, 1, 2, 3, 4, 5]  # 1 and 4 shared keys, then dropped out
    out = secagg.secure_sum(vectors, members, run_seed=7, rnd=3, group="all", threshold=0.5, keep_masked=True)
    plain = torch.stack(list(vectors.values())).sum(0)
    assert out.dropped == [1, 4] and out.survivors == [0, 2, 3, 5]
    assert torch.allclose(out.total, plain, atol=4 * 2**-24)
    for u, y in out.masked.items():  # each upload alone is uniform noise over the ring
        shown = secagg.decode(y)
        assert float((shown - vectors[u]).abs().median()) > 1e9
        assert abs(float(torch.corrcoef(torch.stack([shown, vectors[u]]))[0, 1])) < 0.2
        assert 0.4 < float((y >= secagg.MODULUS // 2).double().mean()) < 0.6


def test_a_round_with_too_few_survivors_says_why_it_cannot_complete() -> None:
    vectors = {0: torch.ones(4, dtype=torch.float64), 1: torch.ones(4, dtype=torch.float64)}
    with pytest.raises(
        secagg.SecureAggregationFailed, match="only 2 of 5 selected clients reported.*at least 3"
    ):
        secagg.secure_sum(vectors, range(5), 0, 1, "all", threshold=0.5)
    with pytest.raises(secagg.SecureAggregationFailed, match="a sum of one reveals"):
        secagg.secure_sum({0: torch.ones(4, dtype=torch.float64)}, [0], 0, 1, "all", threshold=0.5)
    with pytest.raises(secagg.SecureAggregationFailed, match="NaN"):
        secagg.encode(torch.tensor([1.0, float("nan")]))


def test_the_secure_mean_equals_fedavgs_weighted_mean() -> None:
    agg, clients = private(4, secure_aggregation={"threshold": 0.5})
    agg.begin(1, clients, clients)
    payloads, weights = states(4, scale=2.0), [10.0, 55.0, 3.0, 32.0]
    ref = states(1, seed=9)[0]
    out = agg.mean(payloads, weights, ref, [0, 1, 2, 3])
    want = weighted_mean(payloads, weights)
    for k in ("body.w", "head.b"):
        assert torch.allclose(out[k], want[k], atol=1e-6) and out[k].dtype == want[k].dtype
    assert int(out["count"]) == 7 and not agg.failures


def test_secure_aggregation_bytes_cover_keys_shares_and_the_masked_ring() -> None:
    up, down = secagg.traffic(n_members=5, n_survivors=4, elements=1001)
    masked = 1001 * 8 - 1000 * 4  # ring elements vs float32 values
    assert up == 2 * 32 + 4 * secagg.SHARE_BYTES + masked + 4 * secagg.UNMASK_SHARE_BYTES
    assert down == 5 * 64 + 4 * secagg.SHARE_BYTES + 5 * secagg.ID_BYTES
    assert secagg.dropout_traffic(5)[0] < up


def test_dp_fedavg_bounds_one_clients_influence_on_the_noisy_mean() -> None:
    agg, clients = private(10, server_dp={"noise_multiplier": 1.0, "clip_norm": 0.5}, fraction=0.5)
    agg.begin(1, clients, clients[:5])
    ref = states(1, seed=1)[0]
    honest = states(5, seed=2, scale=0.01)
    a = agg.mean(honest, [1.0] * 5, ref, [0, 1, 2, 3, 4])
    agg.begin(1, clients, clients[:5])  # the same round: the same noise
    wild = [*honest[:4], {k: v * 1e6 if v.is_floating_point() else v for k, v in honest[4].items()}]
    b = agg.mean(wild, [1.0] * 5, ref, [0, 1, 2, 3, 4])
    diff = torch.cat([(a[k] - b[k]).reshape(-1) for k in ("body.w", "head.b")]).norm()
    expected = 0.5 * 10  # fraction x clients
    assert 0 < float(diff) <= 2 * 0.5 / expected  # replacing one client moves the mean by at most 2C / (q N)
    assert agg.client_figures[4]["update_clipped"] == 1.0


def test_adaptive_clipping_moves_the_norm_towards_the_updates_quantile() -> None:
    agg, clients = private(
        40,
        server_dp={
            "noise_multiplier": 0.5,
            "clip_norm": 0.01,
            "clipping": "adaptive",
            "target_quantile": 0.5,
            "count_noise": 0.5,
            "clip_lr": 0.5,
        },
    )
    ref = {"w": torch.zeros(50)}
    g = torch.Generator().manual_seed(0)
    norms = []
    for rnd in range(1, 41):
        agg.begin(rnd, clients, clients)
        ups = [
            {"w": torch.randn(50, generator=g) * (2.0 / math.sqrt(50)) * (0.5 + i / 40)} for i in range(40)
        ]
        agg.mean(ups, [1.0] * 40, ref, list(range(40)))
        norms.append(agg.clip["all"])
    assert norms[0] > 0.01 and 1.0 < norms[-1] < 3.0  # from far below to about the median norm (~2)


def test_poisson_sampling_and_the_server_epsilon_are_the_accountants() -> None:
    from opacus.accountants import RDPAccountant

    from engine.privacy.accountant import ALPHAS

    agg, clients = private(50, server_dp={"noise_multiplier": 1.2}, fraction=0.2, rounds=30)
    rng = np.random.default_rng(0)
    counts = [len(agg.select(clients, rng, 0.2)) for _ in range(2000)]
    assert abs(np.mean(counts) - 10) < 0.3 and np.std(counts) > 2  # binomial, not a fixed 10
    for _ in range(30):
        agg.record({}, {})
    acc = RDPAccountant()
    acc.history = [(1.2, 0.2, 30)]
    assert agg.epsilon() == pytest.approx(acc.get_epsilon(1 / 50, alphas=list(ALPHAS)), rel=1e-12)


def test_a_target_epsilon_calibrates_the_servers_noise() -> None:
    agg, _ = private(20, server_dp={"target_epsilon": 3.0, "delta": 1e-3}, fraction=0.5, rounds=10)
    agg.steps = 10
    assert 2.7 < agg.epsilon() <= 3.0 + 1e-9 and agg.calibrated


def test_compatibility_names_the_strategies_server_privacy_covers() -> None:
    from engine.validate import compatibility, validate

    data = {"dataset": "digits", "public_fraction": 0.1, "partition": {"method": "iid"}}
    for extra in ({"secure_aggregation": {}}, {"server_dp": {"noise_multiplier": 1.0}}):
        cfg = parse_config(digits_config(data=data, **extra))
        reasons = compatibility(cfg, "classification")
        for ok in ("fedavg", "fedprox", "fedavgm", "fedadam", "fedper", "lg_fedavg", "fedavg_by_arch"):
            assert reasons[ok] is None, ok
        for refused in ("scaffold", "heterofl", "fedproto", "fedmd", "feddf", "local"):
            assert reasons[refused] and "only averages models" in reasons[refused], refused
    bad = validate(
        parse_config(digits_config(server_dp={"noise_multiplier": 1.0}, selection="deadline_aware"))
    )
    assert any("deadline-aware selection" in e for e in bad.errors)
    weak = validate(parse_config(digits_config(server_dp={"noise_multiplier": 1.0})))
    assert any("delta is 0.25" in w for w in weak.warnings) and any(
        "many clients per round" in w for w in weak.warnings
    )
