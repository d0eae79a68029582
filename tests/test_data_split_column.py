"""A user's own split (``data.split_column``): every row marked test is in exactly one client's
test split and in the global test set, every train row in exactly one client's training split,
validation rows in neither - for every partition method."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.data import PARTITIONERS, DataConfig, build, inspect_csv, load_dataset, partition_preview
from engine.errors import DataError

METHODS = {
    "iid": {},
    "dirichlet": {"alpha": 1.0},
    "feature": {"offset": 0.5},
    "quantity": {},
    "shards": {"classes_per_client": 2},
    "natural": {"column": "site"},
}


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "site": np.repeat(["north", "south", "east"], n // 3),
            "x1": rng.normal(size=n).round(2),
            "x2": rng.integers(0, 9, n),
            "Set": rng.choice(["Train", "test", "validation", "TRAIN"], n, p=[0.4, 0.25, 0.15, 0.2]),
            "y": rng.choice(["a", "b", "c"], n),
        }
    )


def test_every_partition_method_honours_the_split_exactly(tmp_path):
    assert set(METHODS) == set(PARTITIONERS.names())  # a new partitioner must be added here
    df = _frame()
    path = tmp_path / "split.csv"
    df.to_csv(path, index=False)
    role = df["Set"].str.lower().to_numpy()
    for method, params in METHODS.items():
        conf = DataConfig(
            dataset="csv",
            path=str(path),
            target="y",
            split_column="Set",
            partition={"method": method, **params},
            test_fraction=0.5,
            global_test_fraction=0.3,
        )
        fed = build(conf, ["standardize"] * 3, [None] * 3, 0, tmp_path)
        train = np.concatenate([c.index for c in fed.clients])
        assert len(np.unique(train)) == len(train) and set(role[train]) == {"train"}, method
        assert sorted(train.tolist()) == np.flatnonzero(role == "train").tolist(), method
        assert len(fed.global_test) == (role == "test").sum(), method
        assert sum(len(c.test) for c in fed.clients) == (role == "test").sum(), method
        assert sum(len(c.val) for c in fed.clients) == (role == "validation").sum(), (
            method
        )  # validation split
        if method == "natural":  # a site's test rows test that site's model
            for c in fed.clients:
                assert len(set(df["site"].to_numpy()[c.index])) == 1
    data = load_dataset(conf, tmp_path)
    assert data.report["split_counts"] == {
        "test": int((role == "test").sum()),
        "train": int((role == "train").sum()),
        "validation": int((role == "validation").sum()),
    }
    assert "Set" not in data.feature_names
    preview = partition_preview(
        conf.model_copy(update={"partition": DataConfig(partition="iid").partition}), 3, None, 0, tmp_path
    )
    assert preview["global_test"] == (role == "test").sum()
    assert sum(c["train"] for c in preview["clients"]) == (role == "train").sum()


def test_the_page_finds_a_split_column_and_bad_values_are_named(tmp_path):
    df = _frame()
    path = tmp_path / "split.csv"
    df.to_csv(path, index=False)
    assert inspect_csv(path)["split_candidates"] == ["Set"]
    df.loc[7, "Set"] = "holdout"
    df.to_csv(path, index=False)
    assert inspect_csv(path)["split_candidates"] == []
    with pytest.raises(
        DataError, match="split column 'Set' has 'holdout' at line 9.*train, test or validation"
    ):
        load_dataset(DataConfig(dataset="csv", path=str(path), target="y", split_column="Set"), tmp_path)
    df["Set"] = "train"
    df.to_csv(path, index=False)
    conf = DataConfig(dataset="csv", path=str(path), target="y", split_column="Set")
    with pytest.raises(DataError, match="marks no row as test"):
        build(conf, ["none"] * 2, [None] * 2, 0, tmp_path)
