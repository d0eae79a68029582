"""Preprocessing statistics a federation can compute (engine.data.stats) and the isolation they
give: with client statistics, changing one client's rows never changes another client's
preprocessing or data; with federated statistics, the others see that client only through the
aggregate (equal to what the sites' shared sums and counts give), never its rows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from engine.data import DataConfig, build, preprocess
from engine.data.stats import Feature, Site, aggregate, pooled_quantiles


def _sites(*arrays: np.ndarray) -> list[Site]:
    return [Site(torch.as_tensor(a, dtype=torch.float64)) for a in arrays]


def test_quantiles_from_counts_equal_the_pooled_quantiles():
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 4)).round(2) for n in (7, 1, 30)]
    parts[0][:, 1] = 0.0  # ties, zeros
    parts[2][::3, 2] = np.nan  # missing values
    parts[1][:, 3] = -1e9
    sites = _sites(*parts)
    pooled = torch.as_tensor(np.concatenate(parts), dtype=torch.float64)
    stats = aggregate(sites, None, quantiles=(0.25, 0.5, 0.75))
    for q in (0.25, 0.5, 0.75):
        assert torch.allclose(stats.quantile(q), torch.nanquantile(pooled, q, dim=0), rtol=1e-12, atol=1e-12)
    assert torch.allclose(stats.mean, torch.nanmean(pooled, 0))
    assert torch.equal(stats.count, (~torch.isnan(pooled)).sum(0))
    one = pooled_quantiles(sites, torch.tensor([2]), stats.count, stats.low, stats.high, 0.9)
    assert torch.allclose(one, torch.nanquantile(pooled[:, 2:3], 0.9, dim=0), rtol=1e-12, atol=1e-12)
    odd = aggregate(_sites(parts[0], parts[2][:24]), None, quantiles=(0.5,)).quantile(0.5)  # 31 values:
    assert torch.equal(odd, torch.nanquantile(pooled[np.r_[0:7, 8:32]], 0.5, dim=0))  # an order statistic


def test_fill_values_follow_each_features_kind():
    schema = [
        Feature("age", "age", "numeric", "median"),
        Feature("bmi", "bmi", "numeric", "mean"),
        Feature("smoker", "smoker", "binary", "most_frequent"),
        Feature("stage", "stage", "code", "most_frequent"),
        Feature("c=a", "c", "onehot", "most_frequent"),
        Feature("c=b", "c", "onehot", "most_frequent"),
        Feature("c=z", "c", "onehot", "most_frequent"),
    ]
    nan = np.nan
    a = np.array([[1, 20, 1, 2, 1, 0, 0], [nan, 22, 0, 2, 0, 1, 0], [5, nan, 1, nan, nan, nan, nan]])
    b = np.array([[3, 30, 1, 0, 0, 1, 0], [9, nan, nan, 1, 0, 1, 0]])
    stats = aggregate(_sites(a, b), schema, impute=torch.ones(7, dtype=torch.bool))
    assert stats.fill.tolist() == [4.0, 24.0, 1.0, 2.0, 0.0, 1.0, 0.0]  # median 1,3,5,9; mean; mode
    assert stats.seen.tolist() == [True] * 6 + [False]  # category z: no training row had it
    only_a = aggregate(_sites(a), schema, impute=torch.ones(7, dtype=torch.bool))
    assert only_a.fill.tolist() == [3.0, 21.0, 1.0, 2.0, 1.0, 0.0, 0.0]  # ties: the first category


# ---- isolation, on a small multi-site table ------------------------------------------------------


def _table(seed: int = 0, n: int = 90) -> pd.DataFrame:
    """Three sites; integer or half-integer values so sums are exact in any order."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "site": np.repeat(["A", "B", "C"], n // 3),
            "age": rng.integers(20, 90, n).astype(float),
            "chol": (rng.integers(300, 600, n) / 2.0),
            "sex": rng.choice(["F", "M"], n),
            "ward": rng.choice(["icu", "general", "day"], n),
            "smoker": rng.choice(["yes", "no"], n),
        }
    )
    df.loc[rng.random(n) < 0.2, "age"] = np.nan
    df.loc[rng.random(n) < 0.1, "ward"] = np.nan
    df["y"] = np.where(df["age"].fillna(50) + rng.normal(0, 15, n) > 55, "pos", "neg")
    return df


def _build(tmp_path: Path, df: pd.DataFrame, name: str, statistics: str, methods=("standardize",) * 3):
    path = tmp_path / name
    df.to_csv(path, index=False)
    conf = DataConfig(
        dataset="csv",
        path=str(path),
        target="y",
        statistics=statistics,
        partition={"method": "natural", "column": "site"},
    )
    return build(conf, list(methods), [None] * 3, 0, tmp_path)


def _same_client(a, b) -> bool:
    ta, tb = a.transform, b.transform
    parts = [(ta.center, tb.center), (ta.scale, tb.scale), (ta.fill, tb.fill), (ta.keep, tb.keep)]
    same_t = all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y)) for x, y in parts
    )
    return (
        same_t
        and np.array_equal(a.index, b.index)
        and torch.equal(a.train.x, b.train.x)
        and torch.equal(a.test.x, b.test.x)
        and torch.equal(a.train.y, b.train.y)
    )


def _change_site_b(df: pd.DataFrame) -> pd.DataFrame:
    """Site B's feature values changed (numbers scaled, more missing, categories moved); labels and
    the schema (columns, types, categories) unchanged."""
    out = df.copy()
    b = out["site"] == "B"
    out.loc[b, "age"] = out.loc[b, "age"] * 10
    out.loc[b & (out.index % 4 == 0), "chol"] = np.nan
    out.loc[b, "ward"] = "icu"
    out.loc[b, "smoker"] = "yes"
    return out


def test_client_statistics_isolate_every_client(tmp_path):
    df = _table()
    before = _build(tmp_path, df, "before.csv", "client", ("standardize", "robust", "none"))
    after = _build(tmp_path, _change_site_b(df), "after.csv", "client", ("standardize", "robust", "none"))
    a, b, c = 0, 1, 2
    assert _same_client(before.clients[a], after.clients[a]) and _same_client(
        before.clients[c], after.clients[c]
    )
    assert not _same_client(before.clients[b], after.clients[b])
    assert before.provenance["statistics"] == "client"
    # the same change does reach the others with federated statistics - through the aggregate
    fed_before = _build(tmp_path, df, "before.csv", "federated")
    fed_after = _build(tmp_path, _change_site_b(df), "after.csv", "federated")
    assert not torch.equal(fed_before.clients[a].transform.center, fed_after.clients[a].transform.center)


def test_client_statistics_never_lend_one_clients_transform_to_another(monkeypatch):
    """Clients with the same method and each its own statistics each get the transform of their own
    rows. Clients used to be matched by ``id()`` of their statistics, which CPython hands to the next
    object once one is freed: now and then a client got the previous client's transform, so the
    clinical benchmark's 'client statistics' figures moved from run to run (4 distinct transforms of
    5 on the messy table). ``id`` answering the same for every object forces that reuse here."""
    xs = [torch.tensor([[1.0, 2.0], [3.0, float("nan")], [5.0, 8.0]]) * (k + 1) + 10 * k for k in range(3)]
    data = SimpleNamespace(input_spec=SimpleNamespace(kind="tabular"), features=None, x=torch.cat(xs))
    alone = [preprocess.fit_clients(["standardize"], [x], data, "client").transforms[0] for x in xs]
    for reused_ids in (False, True):
        if reused_ids:
            monkeypatch.setattr(preprocess, "id", lambda obj: 0, raising=False)
        fitted = preprocess.fit_clients(["standardize"] * 3, xs, data, "client")
        for got, own in zip(fitted.transforms, alone, strict=True):
            assert torch.equal(got.center, own.center) and torch.equal(got.scale, own.scale)
            assert torch.equal(got.fill, own.fill)
        shared = preprocess.fit_clients(["standardize"] * 3, xs, data, "federated").transforms
        assert shared[0] is shared[1] is shared[2]  # one aggregate, one transform for all


def test_federated_statistics_see_a_client_only_through_its_aggregate(tmp_path):
    df = _table(1)
    before = _build(tmp_path, df, "before.csv", "federated")
    # shuffle each feature independently among site B's training rows: its rows change, but every
    # sum, count and sorted column it shares stays the same
    rows = before.clients[1].index  # dataset positions = file rows (no row was dropped)
    rng = np.random.default_rng(5)
    shuffled = df.copy()
    for col in ("age", "chol", "sex", "ward", "smoker"):
        shuffled.loc[rows, col] = df.loc[rng.permutation(rows), col].to_numpy()
    after = _build(tmp_path, shuffled, "after.csv", "federated")
    assert not torch.equal(before.clients[1].train.x, after.clients[1].train.x)  # B's rows did change
    for i in (0, 2):
        assert _same_client(before.clients[i], after.clients[i])
    # and what every client uses is the aggregate of the clients' training rows, nothing else
    raw = torch.cat([before.data.x[torch.as_tensor(c.index)] for c in before.clients]).double()
    t = before.clients[0].transform
    assert all(c.transform is t for c in before.clients)
    assert torch.allclose(t.center.double(), torch.nanmean(raw, 0), atol=1e-5)
    age = before.data.feature_names.index("age")
    assert float(t.fill[age]) == float(torch.nanquantile(raw[:, age], 0.5))


def test_centralized_statistics_are_the_whole_files_and_labelled(tmp_path):
    df = _table(2)
    fed = _build(tmp_path, df, "data.csv", "centralized")
    age = fed.data.feature_names.index("age")
    assert float(fed.clients[0].transform.fill[age]) == pytest.approx(df["age"].median())
    assert "not possible in a real federation" in fed.provenance["imputation"]


def test_a_sites_constant_or_missing_column_cannot_explode_on_other_sites(tmp_path):
    """Site B writes 0 for a missing cholesterol (constant there) and almost never records bmi:
    with its own statistics its model sees inputs in the hundreds on the global test set; with
    the federation's it sees standard units."""
    df = _table(3, n=150)
    b = df["site"] == "B"
    df.loc[b, "chol"] = 0.0
    df["bmi"] = np.random.default_rng(0).normal(27, 4, len(df)).round(1)
    df.loc[b & (df.index % 50 != 0), "bmi"] = np.nan
    scale = {}
    for statistics in ("client", "federated"):
        fed = _build(tmp_path, df, f"{statistics}.csv", statistics)
        scale[statistics] = float(fed.clients[1].transform(fed.global_test.x).abs().max())
    assert scale["client"] > 100 and scale["federated"] < 10


def test_the_run_manifest_says_where_each_statistic_came_from(tmp_path, store):
    from engine.config import parse_config
    from engine.core.simulation import Simulation
    from engine.reporting import tables

    path = tmp_path / "sites.csv"
    _table(4).to_csv(path, index=False)
    cfg = parse_config(
        {
            "name": "m",
            "seed": 0,
            "rounds": 1,
            "data": {
                "dataset": "csv",
                "path": str(path),
                "target": "y",
                "partition": {"method": "natural", "column": "site"},
            },
            "clients": [
                {"name": n, "model": {"arch": "mlp", "hidden": 8}, "preprocessing": "standardize"}
                for n in "ABC"
            ],
            "strategy": {"name": "fedavg"},
        }
    )
    sim = Simulation(cfg, store=store, root=tmp_path)
    sim.run()
    m = tables.manifest(store, sim.run_id)
    assert m["preprocessing"]["statistics"] == "federated"
    assert (
        "federated aggregate" in m["preprocessing"]["imputation"]
        and "standardize x3" in m["preprocessing"]["scaling"]
    )
    assert m["dataset"] == "sites.csv"


def test_validate_warns_about_centralized_statistics(tmp_path):
    from engine.config import parse_config
    from engine.validate import validate

    path = tmp_path / "sites.csv"
    _table(5).to_csv(path, index=False)
    design = {
        "name": "m",
        "seed": 0,
        "rounds": 1,
        "data": {
            "dataset": "csv",
            "path": str(path),
            "target": "y",
            "statistics": "centralized",
            "partition": {"method": "natural", "column": "site"},
        },
        "clients": [{"name": n} for n in "ABC"],
        "strategy": {"name": "fedavg"},
    }
    report = validate(parse_config(design), tmp_path)
    assert report.ok and any("not possible in a real federation" in w for w in report.warnings)
    design["data"]["statistics"] = "federated"
    assert not any("centralized" in w for w in validate(parse_config(design), tmp_path).warnings)
