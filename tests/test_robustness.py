"""Attacks and defences (issue #20 items 4-5).

The maths against hand-computed cases; the combiner (the one seam strategies combine through)
against the plain rules; each attack's effect on the data or the payload; the compatibility
check; runs that show the seams at work (poisoned data, tampered payloads, Krum leaving the
attackers out, the backdoor's success rate). The learning checks (``slow``) are the smallest setups
that tell a working defence from none: 2 of 10 digits clients flipping labels, and a backdoor.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import digits_config

from engine.config import parse_config
from engine.core.aggregate import weighted_mean
from engine.core.simulation import Simulation
from engine.data import ClientData, Split
from engine.data.preprocess import Affine
from engine.errors import ConfigError
from engine.models import InputSpec
from engine.robustness.adversaries import Adversaries
from engine.robustness.aggregate import (
    clip_rows,
    coordinate_median,
    krum_scores,
    krum_select,
    trim_count,
    trimmed_mean,
    weighted_rows_mean,
)
from engine.robustness.attacks import ATTACKS, AttackSetting
from engine.robustness.attacks.backdoor import trigger_mask
from engine.robustness.combine import Combiner, make_combiner
from engine.strategies._distill import merge_class_means
from engine.types import ClientInfo
from engine.validate import validate

DIGITS = InputSpec("image", (1, 8, 8))


# ---- the maths, by hand ------------------------------------------------------------------------------
def test_median_of_odd_and_even_counts() -> None:
    x = torch.tensor([[1.0, 10.0], [3.0, -2.0], [2.0, 100.0]])
    assert coordinate_median(x).tolist() == [2.0, 10.0]
    x4 = torch.tensor([[1.0], [7.0], [3.0], [1000.0]])
    assert coordinate_median(x4).tolist() == [5.0]  # the mean of the two middle values, 3 and 7


def test_trimmed_mean_drops_the_extremes_of_each_coordinate() -> None:
    x = torch.tensor([[0.0, 5.0], [1.0, -100.0], [2.0, 6.0], [3.0, 7.0], [100.0, 8.0]])
    # coordinate 0: drop 0 and 100 -> mean(1, 2, 3) = 2; coordinate 1: drop -100 and 8 -> mean(5, 6, 7) = 6
    assert trimmed_mean(x, 1).tolist() == [2.0, 6.0]
    assert trimmed_mean(x, 0).tolist() == pytest.approx([21.2, -14.8])
    assert trim_count(10, 0.2) == 2 and trim_count(10, 0.25) == 2 and trim_count(3, 0.49) == 1
    assert trim_count(2, 0.4) == 0  # never drops every value
    with pytest.raises(ValueError):
        trimmed_mean(x, 3)


def test_krum_picks_the_client_in_the_thick_of_the_honest_ones() -> None:
    # four honest clients near (0, 0), client 2 in their middle; one attacker far away
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.1], [0.0, 1.0], [50.0, 50.0]])
    # f = 1: each score sums the squared distances to the k - f - 2 = 2 nearest others
    # client 2: distances^2 to 0, 1 = 1.01 each, to 3 = 0.81 -> 0.81 + 1.01 = 1.82 (lowest)
    scores = krum_scores(x, 1)
    assert scores[2] == pytest.approx(0.81 + 1.01)
    assert scores[0] == pytest.approx(
        1.01 + 2.0
    )  # client 0: to 2 (1 + 0.01), to 3 (1 + 1); client 1 is 4 away
    assert scores[4] > 4000  # the attacker's nearest two are honest clients ~70 away
    assert krum_select(x, 1).tolist() == [2]
    assert 4 not in krum_select(x, 1, m=4).tolist()  # multi-Krum leaves the attacker out
    assert krum_select(x, 1, m=4).tolist() == [0, 1, 2, 3]


def test_norm_clipping_scales_only_long_deviations() -> None:
    centre = torch.tensor([1.0, 1.0])
    x = torch.tensor([[4.0, 5.0], [1.5, 1.0]])  # deviations of length 5 and 0.5
    clipped, factor = clip_rows(x, centre, 1.0)
    assert clipped[0].tolist() == pytest.approx([1.6, 1.8])  # 1 + (3, 4) / 5
    assert clipped[1].tolist() == [1.5, 1.0] and factor.tolist() == pytest.approx([0.2, 1.0])


def test_weighted_rows_mean_matches_fedavg() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert weighted_rows_mean(x, torch.tensor([1.0, 3.0])).tolist() == [2.5, 5.0]


# ---- the combiner: the seam ------------------------------------------------------------------------------
def states(k: int = 5, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "w": torch.randn(3, 2, generator=g),
            "b": torch.randn(2, generator=g),
            "n": torch.tensor(i, dtype=torch.long),
        }
        for i in range(k)
    ]


def test_without_a_defence_the_combiner_is_the_plain_rule_bit_for_bit() -> None:
    s, w = states(), [3, 1, 4, 1, 5]
    plain = make_combiner({"name": "none"}).mean(s, w, who=[0, 1, 2, 3, 4])
    expected = weighted_mean(s, w)
    assert all(torch.equal(plain[k], expected[k]) for k in expected)
    means = [torch.randn(4, 3) for _ in range(3)]
    counts = [
        torch.tensor([2.0, 0.0, 1.0, 5.0]),
        torch.tensor([1.0, 3.0, 0.0, 0.0]),
        torch.tensor([0.0, 1.0, 1.0, 2.0]),
    ]
    a, b = Combiner().class_means(means, counts)
    c, d = merge_class_means(means, counts)
    assert torch.equal(a, c) and torch.equal(b, d)


def test_a_defence_combines_whole_states_and_keeps_integer_tensors() -> None:
    s = states()
    out = make_combiner("median").mean(s, [1, 1, 1, 1, 9])
    assert torch.equal(
        out["w"], torch.stack([x["w"] for x in s]).median(0).values
    )  # odd count: the middle value
    assert out["n"].item() == 4  # the heaviest client's counter, as the plain rule does
    assert list(out) == ["w", "b", "n"] and out["w"].shape == (3, 2)


def test_krum_notes_which_clients_it_kept() -> None:
    s = states(6)
    s[5] = {k: (v + 100 if v.is_floating_point() else v) for k, v in s[5].items()}
    combiner = make_combiner({"name": "krum", "attackers": 1})
    combiner.mean(s, [1] * 6, who=[10, 11, 12, 13, 14, 15])
    notes = combiner.take_notes()
    assert notes[15]["defence_kept"] == 0.0
    assert sum(m["defence_kept"] for m in notes.values()) == 1.0  # Krum keeps exactly one
    assert combiner.take_notes() == {}  # handed over once


def test_class_means_are_combined_class_by_class_over_the_clients_that_hold_the_class() -> None:
    means = [torch.full((3, 2), float(v)) for v in (1, 2, 3, 100)]
    counts = [torch.tensor([1.0, 1.0, 0.0])] * 3 + [torch.tensor([1.0, 0.0, 0.0])]
    rows, total = make_combiner("median").class_means(means, counts)
    assert rows[0].tolist() == [2.5, 2.5]  # median of 1, 2, 3, 100
    assert rows[1].tolist() == [2.0, 2.0]  # the attacker holds no sample of class 1
    assert rows[2].tolist() == [0.0, 0.0] and total.tolist() == [4.0, 3.0, 0.0]  # nobody holds class 2


def test_norm_clipping_measures_updates_from_the_reference() -> None:
    reference = {"w": torch.zeros(2)}
    s = [{"w": torch.tensor([1.0, 0.0])}, {"w": torch.tensor([0.0, 1.0])}, {"w": torch.tensor([30.0, 40.0])}]
    out = make_combiner({"name": "norm_clip", "max_norm": 1.0}).mean(s, [1, 1, 1], reference=reference)
    assert out["w"].tolist() == pytest.approx([(1 + 0 + 0.6) / 3, (0 + 1 + 0.8) / 3])
    adaptive = make_combiner("norm_clip").mean(s, [1, 1, 1], reference=reference)  # bound: median length 1
    assert adaptive["w"].tolist() == pytest.approx(out["w"].tolist())


def test_partial_contributions_are_combined_per_group_of_covering_clients() -> None:
    """HeteroFL's nested slices: without a defence the masked mean is HeteroFL's own rule; with the
    median, each entry is the median over the clients that sent it; nobody's entries stay."""
    from engine.strategies.heterofl import aggregate_slices, embed

    old = {"w": torch.zeros(4)}
    plans = [
        {"w": [torch.arange(4)]},
        {"w": [torch.arange(4)]},
        {"w": [torch.arange(2)]},
        {"w": [torch.arange(1)]},
    ]
    parts = [
        {"w": torch.tensor([1.0, 2.0, 3.0, 4.0])},
        {"w": torch.tensor([3.0, 4.0, 5.0, 6.0])},
        {"w": torch.tensor([100.0, 100.0])},
        {"w": torch.tensor([-7.0])},
    ]
    weights = [1.0, 2.0, 3.0, 4.0]
    full = [{"w": embed(p["w"], plan["w"], old["w"].shape)} for p, plan in zip(parts, plans, strict=True)]
    masks = [
        {"w": embed(torch.ones_like(p["w"]), plan["w"], old["w"].shape) > 0}
        for p, plan in zip(parts, plans, strict=True)
    ]
    plain = Combiner().masked_mean(full, masks, weights, old)
    assert torch.allclose(plain["w"], aggregate_slices(old, parts, plans, weights)["w"])
    robust = make_combiner("median").masked_mean(full, masks, weights, old, who=[0, 1, 2, 3])
    # entry 0: median(1, 3, 100, -7) = 2; entry 1: median(2, 4, 100) = 4; entries 2, 3: median(3, 5), (4, 6)
    assert robust["w"].tolist() == [2.0, 4.0, 4.0, 5.0]
    none = [{"w": torch.zeros(4)}] * 2
    kept = make_combiner("median").masked_mean(
        none, [{"w": torch.tensor([True, False, False, False])}] * 2, [1.0, 1.0], {"w": torch.full((4,), 9.0)}
    )
    assert kept["w"].tolist() == [0.0, 9.0, 9.0, 9.0]


# ---- poisoned knowledge is resisted by the robust variants -----------------------------------------------
def attack(name: str, **params):
    cls = ATTACKS.get(name)
    return cls(cls.Params(**params), AttackSetting(0, "classification", 10, DIGITS, 0))


def test_poisoned_logits_are_resisted_by_the_robust_class_means() -> None:
    """FD's per-class logit tables from 8 honest clients (each class's own logit high) and 2 that
    send them reversed and confident: the plain mean favours the wrong class for every class, the
    robust rules keep every class right and stay near the honest mean."""
    g = torch.Generator().manual_seed(0)
    honest = [5 * torch.eye(10) + 0.5 * torch.randn(10, 10, generator=g) for _ in range(10)]
    counts = [torch.full((10,), 20.0)] * 10
    poison = attack("poisoned_logits", mode="flip", scale=5.0)
    sent = honest[:8] + [poison.poison_knowledge(t, g) for t in honest[8:]]
    truth = merge_class_means(honest[:8], counts[:8])[0]
    plain = Combiner().class_means(sent, counts)[0]
    spread = max(float((t - truth).norm()) for t in honest[:8])
    assert (plain.argmax(1) != torch.arange(10)).all()
    for defence in ("median", "trimmed_mean", "krum", "multi_krum"):
        robust = make_combiner(
            {"name": defence, **({"attackers": 2} if "krum" in defence else {})}
        ).class_means(sent, counts)[0]
        assert (robust.argmax(1) == torch.arange(10)).all(), defence
        # within the honest clients' own spread around their mean (the plain mean is 3x beyond it)
        assert (robust - truth).norm() <= spread < (plain - truth).norm() / 3, defence


def test_poisoned_public_logits_are_resisted_by_the_robust_mean() -> None:
    """FedMD's scores on a public subset: 2 of 10 clients send them reversed."""
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(10, (50,), generator=g)
    honest = [
        4 * torch.nn.functional.one_hot(labels, 10).float() + torch.randn(50, 10, generator=g)
        for _ in range(10)
    ]
    poison = attack("poisoned_logits", mode="flip", scale=5.0)
    sent = [{"scores": t} for t in honest[:8]] + [
        {"scores": poison.poison_knowledge(t, g)} for t in honest[8:]
    ]
    plain = Combiner().mean(sent, [1.0] * 10)["scores"]
    robust = make_combiner("median").mean(sent, [1.0] * 10)["scores"]
    assert float((plain.argmax(1) == labels).float().mean()) < 0.5
    assert float((robust.argmax(1) == labels).float().mean()) == 1.0


@pytest.mark.parametrize("mode", ["flip", "scale", "noise"])
def test_poisoned_prototypes_are_resisted_by_the_robust_class_means(mode: str) -> None:
    g = torch.Generator().manual_seed(2)
    centres = 3 * torch.randn(10, 16, generator=g)
    honest = [centres + 0.3 * torch.randn(10, 16, generator=g) for _ in range(10)]
    counts = [torch.full((10,), 15.0)] * 10
    poison = attack("poisoned_prototypes", mode=mode, scale=10.0, std=10.0)
    sent = honest[:8] + [poison.poison_knowledge(t, g) for t in honest[8:]]
    truth = merge_class_means(honest[:8], counts[:8])[0]
    plain = Combiner().class_means(sent, counts)[0]
    spread = max(float((t - truth).norm()) for t in honest[:8])
    for defence in ("median", "trimmed_mean", "krum", "multi_krum"):
        robust = make_combiner(
            {"name": defence, **({"attackers": 2} if "krum" in defence else {})}
        ).class_means(sent, counts)[0]
        nearest = torch.cdist(robust, centres).argmin(1)
        assert (nearest == torch.arange(10)).all(), (mode, defence)
        assert (robust - truth).norm() <= spread < (plain - truth).norm() / 2, (mode, defence)


# ---- each attack where it acts ---------------------------------------------------------------------------
def client_data(n: int = 40) -> ClientData:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(n, 1, 8, 8, generator=g) * 16
    y = torch.arange(n) % 10
    return ClientData(Split(x, y), Split(x[:5], y[:5]))


def test_label_flipping_swaps_classes_with_their_mirror_or_one_class_for_another() -> None:
    data = client_data()
    out = attack("label_flip").poison(data, None, torch.Generator())
    assert torch.equal(out.train.y, 9 - data.train.y)
    assert torch.equal(out.train.x, data.train.x) and torch.equal(
        out.test.y, data.test.y
    )  # its test stays clean
    assert torch.equal(data.train.y, torch.arange(40) % 10)  # the original is untouched
    targeted = attack("label_flip", source=7, target=1).poison(data, None, torch.Generator())
    assert torch.equal(targeted.train.y, torch.where(data.train.y == 7, 1, data.train.y))
    half = attack("label_flip", share=0.5).poison(data, None, torch.Generator().manual_seed(0))
    assert 10 < int((half.train.y != data.train.y).sum()) < 30


def test_update_attacks_change_the_update_not_the_model() -> None:
    received = {"w": torch.tensor([1.0, 1.0]), "other": torch.ones(3)}
    trained = {"w": torch.tensor([1.5, 0.0]), "counts": torch.tensor([4.0])}  # 'counts' was not received
    sent, n = attack("sign_flip").tamper(trained, received, None, torch.Generator())
    assert sent["w"].tolist() == [0.5, 2.0] and n == 1 and sent["counts"] is trained["counts"]
    sent, _ = attack("scaled_update", boost=10).tamper(trained, received, None, torch.Generator())
    assert sent["w"].tolist() == [6.0, -9.0]
    a, _ = attack("gaussian_noise", std=2.0).tamper(trained, received, None, torch.Generator().manual_seed(5))
    b, _ = attack("gaussian_noise", std=2.0).tamper(trained, received, None, torch.Generator().manual_seed(5))
    assert torch.equal(a["w"], b["w"]) and not torch.equal(
        a["w"], trained["w"]
    )  # seeded noise around the received
    assert attack("sign_flip", start_round=3).active(2) is False


def test_backdoor_trigger_sits_where_it_says_and_survives_preprocessing() -> None:
    mask = trigger_mask("image", (1, 8, 8), 3, None, 0)
    assert mask.sum() == 9 and mask[0, 5:, 5:].all()
    tab = trigger_mask("tabular", (20,), 4, None, 0)
    assert tab.sum() == 4 and torch.equal(tab, trigger_mask("tabular", (20,), 4, None, 0))  # seeded
    assert trigger_mask("tabular", (20,), 4, [0, 19], 0).nonzero().flatten().tolist() == [0, 19]
    data = client_data()
    scale = Affine(center=torch.full((1, 1, 1), 8.0), scale=torch.full((1, 1, 1), 4.0))
    data = ClientData(Split(scale(data.train.x), data.train.y), data.test, transform=scale)
    fed = type("F", (), {"data": type("D", (), {"x": torch.rand(10, 1, 8, 8) * 16})()})()
    backdoor = attack("backdoor", target=3, share=0.5)
    out = backdoor.poison(data, fed, torch.Generator().manual_seed(0))
    changed = (out.train.y != data.train.y) | (out.train.x != data.train.x).flatten(1).any(1)
    poisoned = out.train.y == 3
    assert changed.sum() > 5 and (out.train.y[changed] == 3).all()
    # in the client's preprocessed units the patch equals the preprocessed trigger of the raw data
    raw = torch.rand(4, 1, 8, 8) * 16
    triggered, target = backdoor.triggered(raw, fed)
    assert target == 3 and torch.equal(triggered[:, 0, :5], raw[:, 0, :5])
    patch = out.train.x[poisoned & changed][0, 0, 5:, 5:]
    assert torch.allclose(patch, scale(triggered)[0, 0, 5:, 5:])


# ---- config and compatibility ----------------------------------------------------------------------------
def roster(attack_spec, n_bad: int = 2, n: int = 10) -> list[dict]:
    base = {"model": {"arch": "mlp", "hidden": 16}}
    return [
        {"name": "honest", "count": n - n_bad, **base},
        {"name": "bad", "count": n_bad, **base, "adversary": attack_spec},
    ]


def test_config_names_the_client_and_the_valid_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"clients\.1\.adversary: unknown attack 'flip'; valid attack names: backdoor"
    ):
        parse_config(digits_config(clients=roster("flip")))
    with pytest.raises(ConfigError, match="give both source and target"):
        parse_config(digits_config(clients=roster({"attack": "label_flip", "target": 2})))
    with pytest.raises(ConfigError, match="defence 'krum': atackers: unknown name; valid names: attackers"):
        parse_config(digits_config(defence={"name": "krum", "atackers": 2}))
    cfg = parse_config(digits_config(clients=roster("backdoor"), defence="median"))
    assert cfg.clients[1].adversary.params()["target"] == 0 and cfg.defence.name == "median"
    assert parse_config(cfg.model_dump(mode="json")) == cfg


def check(**over):
    return validate(parse_config(digits_config(**over)))


def test_the_check_says_where_an_attack_or_a_defence_cannot_apply_and_why() -> None:
    r = check(clients=roster("sign_flip"), strategy="fd")
    # rows numbered as the roster table shows them: eight honest clients, then rows 8 and 9
    assert any(
        "client rows 8-9 (bad): sign flipping changes its model update, but fd sends logits" in e
        for e in r.errors
    )
    assert r.compatible["fedavg"] is None and "poisoned_logits" in r.compatible["fd"]
    assert (
        r.compatible["local"] is None and r.compatible["centralized"] is None
    )  # references: warned, not refused
    r = check(clients=roster("poisoned_prototypes"), strategy="fedproto", defence="median")
    assert r.ok and "fedavg" in r.compatible and r.compatible["fedavg"] is not None
    r = check(clients=roster({"attack": "backdoor", "target": 10}))
    assert any("target 10 is not a class (classes 0..9)" in e for e in r.errors)
    for name in ("fedtgp", "fedgh", "centralized", "local"):
        assert check(defence="trimmed_mean").compatible[name] is not None, name
    r = check(clients=roster("label_flip", n_bad=2, n=5), defence={"name": "krum", "attackers": 2})
    assert any("needs at least 7 contributions per round" in w for w in r.warnings)
    r = check(clients=roster("label_flip", n_bad=3), defence={"name": "trimmed_mean", "trim": 0.2})
    assert any("raise its trim to at least 0.3" in w for w in r.warnings)
    r = check(clients=roster("label_flip"), strategy="local")
    assert r.ok and any("harms only its own model" in w for w in r.warnings)


def test_a_defence_that_needs_each_update_is_refused_with_secure_aggregation() -> None:
    r = check(defence="median", secure_aggregation={"threshold": 0.5})
    assert any("secure aggregation shows the server only their sum" in e for e in r.errors)
    r = check(defence="norm_clip", server_dp={"noise_multiplier": 1.0})
    assert any("server-side differential privacy" in e for e in r.errors)


# ---- the seams in a run --------------------------------------------------------------------------------
def small(**over) -> dict:
    return digits_config(
        rounds=over.pop("rounds", 2),
        checkpoint_every=0,
        data={"dataset": "digits", "partition": {"method": "iid"}, "max_samples": 600},
        **over,
    )


def test_a_sign_flipping_client_sends_the_reversed_update_through_any_strategy_hook() -> None:
    """One client, FedAvg: the server's model after round 1 is the received model minus the
    client's honest update (its own stored model is the honestly trained one)."""
    cfg = parse_config(
        small(
            rounds=1,
            clients=[{"name": "bad", "model": {"arch": "mlp", "hidden": 16}, "adversary": "sign_flip"}],
        )
    )
    sim = Simulation(cfg)
    sim.run()
    start, trained = sim.initial[0], sim.states[0]["model"]
    server = sim.strategy.state["global"]["all"]
    for k in start:
        assert torch.allclose(server[k], 2 * start[k] - trained[k], atol=1e-6), k


def test_poisoned_data_is_what_the_attacker_trains_on_with_every_executor() -> None:
    clients = roster("label_flip", n_bad=1, n=3)
    clean = Simulation(parse_config(small(rounds=1, clients=copy.deepcopy(roster(None, n_bad=1, n=3)))))
    clean.setup()
    results = {}
    for executor in ("sequential", "vectorized"):
        sim = Simulation(parse_config(small(rounds=1, clients=clients, executor=executor)))
        sim.run()
        assert torch.equal(sim.federation.clients[2].train.y, 9 - clean.federation.clients[2].train.y)
        assert torch.equal(sim.federation.clients[0].train.y, clean.federation.clients[0].train.y)
        results[executor] = sim.strategy.state["global"]["all"]
    for k, v in results["sequential"].items():
        assert torch.allclose(v, results["vectorized"][k], atol=1e-5), k


def test_krum_leaves_sign_flipping_attackers_out_and_says_so() -> None:
    cfg = parse_config(
        small(
            clients=roster({"attack": "sign_flip", "scale": 4}, n_bad=2, n=8),
            defence={"name": "krum", "attackers": 2},
        )
    )
    sim = Simulation(cfg)
    sim.run()
    for record in sim.history:
        assert record.metrics["defence_kept_attackers"] == 0.0
        assert record.metrics["defence_kept_honest"] == pytest.approx(1 / 6)
        assert sum(m.get("defence_kept", 0) for m in record.clients.values()) == 1


def test_the_backdoor_success_rate_is_measured_per_client_and_for_the_server_model() -> None:
    sim = Simulation(parse_config(small(clients=roster({"attack": "backdoor", "target": 2}, n_bad=1, n=4))))
    final = sim.run()["final"]
    assert 0 <= final["backdoor_asr"] <= 1 and "server_backdoor_asr" in final
    per_client = sim.history[-1].clients
    assert all("backdoor_asr" in per_client[c] for c in range(4))
    assert final["backdoor_asr"] == pytest.approx(sum(per_client[c]["backdoor_asr"] for c in range(3)) / 3)


def test_a_personalised_strategy_scores_each_client_and_fedproto_resists_with_the_median() -> None:
    """FedProto: each client its own model (its own success rate); poisoned prototypes go through
    the class-means seam, where the median holds."""
    cfg = parse_config(
        small(clients=roster("poisoned_prototypes", n_bad=1, n=4), strategy="fedproto", defence="median")
    )
    sim = Simulation(cfg)
    sim.run()
    assert sim.strategy.state["prototypes"].shape == (10, 64)
    assert not sim.events or all("found nothing to change" not in m for _, m in sim.events)


def heterofl_config(defence: str, attack: bool, rounds: int = 8) -> dict:
    """Six HeteroFL clients on digits (four full width, two half width), one full-width client
    sending its update reversed five times over."""
    base = {
        "model": {"arch": "mlp", "hidden": 32},
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "epochs": 2,
    }
    bad = {**base, "adversary": {"attack": "sign_flip", "scale": 5}} if attack else base
    return digits_config(
        rounds=rounds,
        checkpoint_every=0,
        strategy="heterofl",
        defence=defence,
        data={"dataset": "digits", "partition": {"method": "iid"}},
        clients=[
            {"name": "wide", "count": 3, **base},
            {"name": "narrow", "count": 2, **base, "model": {**base["model"], "width": 0.5}},
            {"name": "bad", **bad},
        ],
    )


def test_heterofl_takes_a_defence_on_its_nested_slices() -> None:
    cfg = parse_config(heterofl_config("median", True, rounds=1))
    assert validate(cfg).ok
    final = Simulation(cfg).run()["final"]
    assert 0 <= final["server_acc[mlp]"] <= 1


@pytest.mark.slow
def test_heterofl_with_the_median_resists_a_sign_flipping_client() -> None:
    undefended = Simulation(parse_config(heterofl_config("none", True))).run()["final"]["server_acc[mlp]"]
    defended = Simulation(parse_config(heterofl_config("median", True))).run()["final"]["server_acc[mlp]"]
    assert undefended < 0.2 < 0.5 < defended, (undefended, defended)  # ten classes: chance is 0.1


# ---- learning checks: the smallest setups that separate --------------------------------------------------
def flip_config(defence: str, attack: bool, seed: int = 0) -> dict:
    """Ten digits clients (iid), two of them compromised: they flip every label and train 5 local
    epochs (an attacker does not keep to the protocol's settings); honest clients train 2."""
    base = {
        "model": {"arch": "mlp", "hidden": 32},
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "epochs": 2,
    }
    bad = {**base, "epochs": 5, "adversary": "label_flip"} if attack else base
    return digits_config(
        seed=seed,
        rounds=20,
        checkpoint_every=0,
        defence=defence,
        data={"dataset": "digits", "partition": {"method": "iid"}},
        clients=[{"name": "honest", "count": 8, **base}, {"name": "bad", "count": 2, **bad}],
    )


@pytest.mark.slow
def test_two_label_flippers_cost_fedavg_ten_points_and_the_median_or_trimmed_mean_win_them_back() -> None:
    acc = {}
    for name, defence, attack_on in (
        ("clean", "none", False),
        ("fedavg", "none", True),
        ("median", "median", True),
        ("trimmed", "trimmed_mean", True),
    ):
        acc[name] = Simulation(parse_config(flip_config(defence, attack_on))).run()["final"]["server_acc"]
    assert acc["clean"] - acc["fedavg"] >= 0.10, acc
    assert max(acc["median"], acc["trimmed"]) >= acc["clean"] - 0.03, acc


@pytest.mark.slow
def test_the_backdoor_succeeds_without_a_defence_where_it_should() -> None:
    """Two of ten clients put a 3x3 bright patch on half their samples labelled 0: the global
    model learns the rule (most triggered non-0 digits become 0) while a clean federation's model,
    measured with the same trigger, does not."""
    base = {
        "model": {"arch": "mlp", "hidden": 32},
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "epochs": 2,
    }
    cfg = digits_config(
        rounds=20,
        checkpoint_every=0,
        data={"dataset": "digits", "partition": {"method": "iid"}},
        clients=[
            {"name": "honest", "count": 8, **base},
            {"name": "bad", "count": 2, **base, "adversary": {"attack": "backdoor", "target": 0}},
        ],
    )
    attacked = Simulation(parse_config(cfg)).run()["final"]
    clean_cfg = copy.deepcopy(cfg)
    clean_cfg["clients"][1].pop("adversary")
    clean = Simulation(parse_config(clean_cfg))
    clean.run()
    # the clean run's models, measured with the attacked run's trigger
    specs = parse_config(cfg).roster()
    probe = Adversaries(
        [
            ClientInfo(c.id, c.name, spec, c.n_train, c.n_test)
            for c, spec in zip(clean.clients, specs, strict=True)
        ],
        clean.federation,
        clean.strategy,
        0,
    )
    _, baseline = probe.scores(clean.clients, clean.states, clean.devices, clean.build)
    assert attacked["backdoor_asr"] >= 0.6, attacked
    assert baseline["backdoor_asr"] <= 0.25, baseline
    assert attacked["server_acc"] >= clean.summary()["final"]["server_acc"] - 0.1  # the attack hides
