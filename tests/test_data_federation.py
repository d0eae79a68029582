"""The federation builder and the Data page helpers: preprocessing fitted on each client's own
training split, determinism from the seed, the partition preview, and natural roster sizing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.data import (
    DataConfig,
    build,
    heterogeneity,
    label_histograms,
    natural_groups,
    partition_preview,
)
from engine.errors import DataError


def test_client_statistics_fit_each_clients_training_split(tmp_path):
    conf = DataConfig(dataset="wine", partition={"method": "dirichlet", "alpha": 0.5}, statistics="client")
    methods = ["standardize", "minmax", "robust", "none"]
    fed = build(conf, methods, [None] * 4, 0, tmp_path)
    standard, minmax, robust, none = fed.clients
    assert torch.allclose(standard.train.x.mean(0), torch.zeros(13), atol=1e-4)
    assert torch.allclose(standard.train.x.std(0, unbiased=False), torch.ones(13), atol=1e-3)
    raw = fed.data.x[torch.as_tensor(standard.index)]
    assert torch.allclose(standard.transform.center, raw.mean(0))  # this client's statistics only
    assert torch.allclose(minmax.train.x.amin(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(minmax.train.x.amax(0), torch.ones(13), atol=1e-5)
    assert torch.allclose(robust.train.x.quantile(0.5, dim=0), torch.zeros(13), atol=1e-5)
    assert torch.equal(none.train.x, fed.data.x[torch.as_tensor(none.index)])
    # local test split transformed with the training statistics, not its own
    assert not torch.allclose(standard.test.x.mean(0), torch.zeros(13), atol=1e-4)
    assert fed.provenance["statistics"] == "client"


def test_federated_statistics_are_the_clients_pooled_training_statistics(tmp_path):
    conf = DataConfig(dataset="wine", partition={"method": "dirichlet", "alpha": 0.5})
    assert conf.statistics == "federated"  # the default
    methods = ["standardize", "standardize", "minmax", "robust"]
    fed = build(conf, methods, [None] * 4, 0, tmp_path)
    raw = torch.cat([fed.data.x[torch.as_tensor(c.index)] for c in fed.clients]).double()
    a, b, minmax, robust = fed.clients
    assert a.transform is b.transform  # one aggregate, one transform for a method
    assert torch.allclose(a.transform.center.double(), raw.mean(0), atol=1e-4)
    assert torch.allclose(a.transform.scale.double(), raw.std(0, unbiased=False), rtol=1e-4)
    assert torch.allclose(minmax.transform.center.double(), raw.amin(0))
    assert torch.allclose(robust.transform.center.double(), raw.quantile(0.5, dim=0), atol=1e-5)
    iqr = raw.quantile(0.75, dim=0) - raw.quantile(0.25, dim=0)
    assert torch.allclose(robust.transform.scale.double(), iqr, rtol=1e-5)
    pooled = torch.cat([a.train.x, b.train.x])
    assert not torch.allclose(pooled.mean(0), torch.zeros(13), atol=1e-3)  # two clients' share, not all
    assert "federated aggregate" in fed.provenance["scaling"]


def test_image_preprocessing_is_per_channel(tmp_path):
    fed = build(DataConfig(dataset="digits"), ["standardize"] * 2, [None] * 2, 0, tmp_path)
    assert fed.clients[0].transform.center.shape == (1, 1, 1)


def test_build_is_deterministic_and_seed_dependent(tmp_path):
    conf = DataConfig(dataset="digits", partition={"method": "dirichlet", "alpha": 0.3}, public_fraction=0.1)
    a = build(conf, ["none"] * 5, [None] * 5, 7, tmp_path)
    b = build(conf, ["none"] * 5, [None] * 5, 7, tmp_path)
    c = build(conf, ["none"] * 5, [None] * 5, 8, tmp_path)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.public is not None and len(a.public) > 0
    everything = np.concatenate([cl.index for cl in a.clients])
    assert len(np.unique(everything)) == len(everything)


def test_partition_preview_matches_build(tmp_path):
    conf = DataConfig(dataset="digits", partition={"method": "dirichlet", "alpha": 0.2})
    preview = partition_preview(conf, 6, None, 3, tmp_path)
    fed = build(conf, ["none"] * 6, [None] * 6, 3, tmp_path)
    assert np.array_equal(np.array(preview["histogram"]), label_histograms(fed))
    assert preview["heterogeneity"] == pytest.approx(heterogeneity(label_histograms(fed)))
    assert [c["train"] for c in preview["clients"]] == [len(c.train) for c in fed.clients]
    assert preview["bins"] == fed.data.classes and preview["global_test"] == len(fed.global_test)
    json.dumps(preview)  # JSON-able for the page


def test_partition_preview_natural_and_regression(tmp_path):
    options = {"target": "volume", "form": "tabular", "cities": 3, "days": 14}
    conf = DataConfig(dataset="traffic", options=options, partition={"method": "natural", "column": "city"})
    preview = partition_preview(conf, None, None, 0, tmp_path)
    assert [c["name"] for c in preview["clients"]] == natural_groups(conf, tmp_path)
    assert preview["task"] == "regression" and len(preview["bins"]) == 10
    assert np.array(preview["histogram"]).shape == (3, 10)
    with pytest.raises(DataError, match="needs exactly 3 clients, it has 2"):
        partition_preview(conf, 2, None, 0, tmp_path)


def test_natural_groups_needs_a_natural_partition(tmp_path):
    with pytest.raises(DataError, match="not 'natural'"):
        natural_groups(DataConfig(dataset="digits"), tmp_path)
    with pytest.raises(DataError, match="has no column 'hospital'"):
        natural_groups(
            DataConfig(dataset="digits", partition={"method": "natural", "column": "hospital"}), tmp_path
        )


def test_shares_are_honoured_and_validated(tmp_path):
    conf = DataConfig(dataset="digits")
    fed = build(conf, ["none"] * 3, [0.6, None, None], 0, tmp_path)
    sizes = [len(c.index) + len(c.test) for c in fed.clients]
    assert sizes[0] > 2.5 * sizes[1]
    with pytest.raises(DataError, match="add up to"):
        build(conf, ["none"] * 2, [0.8, 0.7], 0, tmp_path)
