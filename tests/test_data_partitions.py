"""Every partitioner: the parts are disjoint and cover the pool, parameters move heterogeneity the
right way, impossible splits end quickly with a DataError, and feature shifts are deterministic."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from engine.data import PARTITIONERS, DataConfig, Dataset, build, heterogeneity, label_histograms
from engine.data.partitioners.natural import NaturalParams, groups_of
from engine.errors import DataError
from engine.models.base import InputSpec


def toy(n: int = 600, classes: int = 6, groups: int = 4, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    y = torch.as_tensor(np.arange(n) % classes, dtype=torch.long)
    x = torch.as_tensor(rng.normal(size=(n, 5)), dtype=torch.float32)
    site = np.array([f"site{i % groups}" for i in rng.permutation(n)])
    return Dataset(
        "toy",
        x,
        y,
        InputSpec("tabular", (5,)),
        classes=[str(c) for c in range(classes)],
        columns={"site": site},
    )


def split(method: str, data: Dataset, n_clients: int, seed: int = 0, shares=None, **params):
    part = PARTITIONERS.get(method)(PARTITIONERS.get(method).Params(**params))
    index = np.arange(len(data))
    return part.split(data, index, n_clients, np.random.default_rng(seed), shares or [None] * n_clients)


def hist(data: Dataset, parts: list[np.ndarray]) -> np.ndarray:
    return np.stack([np.bincount(data.labels[p], minlength=len(data.classes)) for p in parts])


CASES = [
    ("iid", {}),
    ("dirichlet", {"alpha": 0.3}),
    ("shards", {"classes_per_client": 2}),
    ("quantity", {}),
    ("quantity", {"distribution": "powerlaw"}),
    ("feature", {"noise": 0.2}),
    ("natural", {"column": "site"}),
]


@pytest.mark.parametrize(("method", "params"), CASES)
def test_parts_are_disjoint_and_cover_the_pool(method, params):
    data = toy()
    n_clients = 4
    parts = split(method, data, n_clients, **params)
    assert len(parts) == n_clients and all(len(p) > 0 for p in parts)
    joined = np.concatenate(parts)
    assert len(joined) == len(np.unique(joined)) == len(data)
    again = split(method, data, n_clients, **params)  # same seed, same split
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_every_partitioner_is_tested():
    assert {m for m, _ in CASES} == set(PARTITIONERS.names())


def test_alpha_moves_heterogeneity_the_right_way():
    data = toy(n=1200)
    scores = [
        np.mean(
            [
                heterogeneity(hist(data, split("dirichlet", data, 8, seed=s, alpha=a, min_size=1)))
                for s in range(3)
            ]
        )
        for a in (0.05, 0.5, 100.0)
    ]
    assert scores[0] > scores[1] > scores[2]
    assert scores[2] < 0.05


def test_shards_give_k_classes_per_client():
    data = toy(n=600, classes=6)
    for k in (1, 2, 3):
        parts = split("shards", data, 6, classes_per_client=k)
        assert all(len(np.unique(data.labels[p])) == k for p in parts)
    scores = [heterogeneity(hist(data, split("shards", data, 6, classes_per_client=k))) for k in (1, 3, 6)]
    assert scores[0] > scores[1] > scores[2]
    with pytest.raises(DataError, match="raise classes_per_client to at least 3"):
        split("shards", data, 2, classes_per_client=2)


def test_quantity_sizes_skewed_and_shares_honoured():
    data = toy(n=1000)
    sizes = [len(p) for p in split("quantity", data, 10, sigma=2.0, min_size=5)]
    assert min(sizes) >= 5 and max(sizes) > 5 * min(sizes) and sum(sizes) == 1000
    shares = [0.5, 0.3, None, None]
    sizes = [len(p) for p in split("quantity", data, 4, shares=shares, distribution="shares")]
    assert sizes[0] == pytest.approx(500, abs=5) and sizes[1] == pytest.approx(300, abs=5)
    assert abs(sizes[2] - sizes[3]) <= 1
    with pytest.raises(DataError, match="min_size"):
        split("quantity", data, 100, min_size=20)


def test_natural_one_client_per_value_and_roster_check():
    data = toy(groups=4)
    parts = split("natural", data, 4, column="site")
    for name, part in zip(["site0", "site1", "site2", "site3"], parts, strict=True):
        assert set(data.columns["site"][part]) == {name}
    with pytest.raises(DataError, match="the roster needs exactly 4 clients, it has 3"):
        split("natural", data, 3, column="site")
    with pytest.raises(DataError, match="has no column 'city'"):
        split("natural", data, 4, column="city")


def test_natural_small_values_error_drop_or_merge():
    data = toy(n=100, groups=4)
    data.columns["site"][:3] = ["tiny1", "tiny2", "tiny2"]
    with pytest.raises(DataError, match="fewer than min_size=5"):
        groups_of(data, NaturalParams(column="site", min_size=5))
    names, assign = groups_of(data, NaturalParams(column="site", min_size=5, small="drop"))
    assert names == ["site0", "site1", "site2", "site3"] and (assign[:3] == -1).all()
    names, _ = groups_of(data, NaturalParams(column="site", min_size=5, small="merge"))
    assert names[-1] == "other"
    parts = split("natural", data, 4, column="site", min_size=5, small="drop")
    assert sum(len(p) for p in parts) == 97


def test_impossible_dirichlet_ends_quickly():
    data = toy(n=200)
    start = time.perf_counter()
    with pytest.raises(DataError, match="raise alpha"):
        split("dirichlet", data, 50, alpha=0.001, min_size=3, max_tries=200)
    assert time.perf_counter() - start < 5


def test_feature_shift_is_per_client_deterministic_and_spares_global_test(tmp_path):
    conf = DataConfig(
        dataset="digits", partition={"method": "feature", "noise": 0.3, "scale": 0.5, "rotate": 30}
    )
    fed = build(conf, ["none"] * 4, [None] * 4, 3, tmp_path)
    again = build(conf, ["none"] * 4, [None] * 4, 3, tmp_path)
    raw = fed.data.x
    # client 0 is unshifted (linear spread), the others are not
    assert torch.equal(fed.clients[0].train.x, raw[torch.as_tensor(fed.clients[0].index)])
    for c in fed.clients[1:]:
        assert not torch.allclose(c.train.x, raw[torch.as_tensor(c.index)])
    for a, b in zip(fed.clients, again.clients, strict=True):
        assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    plain = build(DataConfig(dataset="digits", partition="iid"), ["none"] * 4, [None] * 4, 3, tmp_path)
    assert torch.equal(fed.global_test.x, plain.global_test.x)
    assert fed.fingerprint != plain.fingerprint


def test_feature_shift_on_tabular_scales_features(tmp_path):
    conf = DataConfig(dataset="wine", partition={"method": "feature", "scale": 1.0, "offset": 1.0})
    fed = build(conf, ["none"] * 3, [None] * 3, 0, tmp_path)
    last = fed.clients[-1]
    assert not torch.allclose(last.train.x.mean(0), fed.data.x[torch.as_tensor(last.index)].mean(0))


def test_label_skew_partitions_raise_build_heterogeneity(tmp_path):
    iid = build(DataConfig(dataset="digits", partition="iid"), ["none"] * 5, [None] * 5, 0, tmp_path)
    skew = build(
        DataConfig(dataset="digits", partition={"method": "shards", "classes_per_client": 2}),
        ["none"] * 5,
        [None] * 5,
        0,
        tmp_path,
    )
    assert heterogeneity(label_histograms(skew)) > heterogeneity(label_histograms(iid)) + 0.3
