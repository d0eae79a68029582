"""From a data config and a roster to a :class:`Federation`: per-client train/test splits, a global
test set and an optional unlabelled public/proxy set, all determined by the run seed.

Order of the cuts, each seeded from the run seed: (1) optional stratified subsample
(``max_samples``); (2) the global test set; (3) the public set; (4) the partitioner deals the rest
to clients, and its optional per-client feature shift (``Partitioner.transform_client``, e.g.
``feature``) is applied to each client's samples - never to the global test or public sets;
(5) each client's rows are assigned to its training, validation and local test splits
(:func:`client_rows`: the local test split first, then the validation split carved from what is
left for training); (6) each client's preprocessing is fitted and applied to its splits (the
global test set is transformed per client at evaluation time). Its statistics come
from the federation's aggregate of the clients' training splits, the client's own training split,
or (labelled, off by default) the whole file, as ``data.statistics`` says
(:func:`engine.data.preprocess.fit_clients`); :attr:`Federation.provenance` records which.

A file with a split column (``data.split_column``) replaces the random draws of (2) and (5): the
partitioner deals every row, each client's test rows become its local test split, its train rows
its training split (validation rows are kept out of both, for the validation split), and the
global test set is all the test rows together - the file's own test set, which the clients'
local test splits partition. The public set, if any, is drawn from train rows only.

The validation split picks each client's best round (early stopping in :mod:`engine.core.simulation`):
it is never trained on, and test data never decides anything.

:func:`partition_preview` runs steps (1)-(5) only, for the Data page; :func:`natural_groups` lists
the clients a ``natural`` partition makes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import Tensor

from engine.access import confine
from engine.core.seeding import numpy_rng
from engine.data import preprocess
from engine.data.base import DATASETS, PARTITIONERS, Dataset, stratified_split
from engine.data.config import DataConfig
from engine.errors import ConfigError, DataError, validation_problems
from engine.models.base import InputSpec


@dataclass
class Split:
    """Features and targets of one split."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


def _empty_split() -> Split:
    return Split(torch.zeros(0), torch.zeros(0, dtype=torch.long))


@dataclass
class ClientData:
    """One client's data: preprocessed train, local test and validation splits and the fitted
    transform, which evaluation applies to the global test and public sets before this client's
    model sees them."""

    train: Split
    test: Split
    transform: preprocess.Affine = field(default_factory=preprocess.Affine)
    index: np.ndarray = field(default_factory=lambda: np.arange(0))
    val: Split = field(default_factory=_empty_split)
    """Rows held out of training to choose the client's best round (may be empty)."""
    test_index: np.ndarray = field(default_factory=lambda: np.arange(0))
    """Dataset positions of the local test rows (``index`` holds the training rows'): a Flower
    export writes each site's rows from them."""


@dataclass
class Federation:
    """Everything the round loop needs about the data."""

    data: Dataset
    clients: list[ClientData]
    global_test: Split
    public: Split | None
    fingerprint: str
    reference: preprocess.Affine = field(default_factory=preprocess.Affine)
    target_mean: float = 0.0
    target_std: float = 1.0
    provenance: dict[str, Any] = field(default_factory=dict)
    """Where every preprocessing statistic came from (recorded in the run's manifest)."""

    @property
    def input_spec(self) -> InputSpec:
        return self.data.input_spec

    @property
    def task(self) -> str:
        return self.data.task

    @property
    def n_outputs(self) -> int:
        return self.data.n_outputs

    def pooled_train(self) -> Split:
        """Every client's (preprocessed) training split together: the data a ``centralized`` run
        would see if the sites pooled what they hold."""
        import torch

        return Split(
            torch.cat([c.train.x for c in self.clients]), torch.cat([c.train.y for c in self.clients])
        )


def partition_params(data_cfg: DataConfig) -> Any:
    """Validated parameters of the configured partitioner.

    :raises ConfigError: unknown method or bad parameters.
    """
    part = PARTITIONERS.get(data_cfg.partition.method)
    try:
        return part.Params(**data_cfg.partition.params())
    except ValidationError as exc:
        raise ConfigError(f"data.partition ({part.name}): {'; '.join(validation_problems(exc))}") from None


@lru_cache(maxsize=8)
def _load_cached(cfg_json: str, root: str, file_key: str) -> Dataset:
    cfg = DataConfig.model_validate_json(cfg_json)
    return DATASETS.get(cfg.dataset).load(cfg, Path(root))


def load_dataset(data_cfg: DataConfig, root: Path) -> Dataset:
    """Load (and cache per process) the configured dataset. Loading ignores the partition (except
    a ``natural`` column, which a CSV keeps out of its features) and the split fractions, so
    changing those in the pages does not reload the file; a changed file (size or mtime) does.

    :raises AccessError: ``data.path`` lies outside the allowed roots (:mod:`engine.access`).
    """
    data_cfg = confine(data_cfg, root)
    key = data_cfg.model_dump(
        mode="json",
        exclude={
            "partition",
            "test_fraction",
            "statistics",
            "validation_fraction",
            "global_test_fraction",
            "public_fraction",
        },
    )
    natural = data_cfg.natural_column()
    if natural is not None:
        key["partition"] = {"method": "natural", "column": natural}
    file_key = ""
    if data_cfg.path:
        for candidate in (Path(data_cfg.path), Path(root) / data_cfg.path):
            if candidate.exists():
                stat = candidate.stat()
                file_key = f"{candidate.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
                break
    return _load_cached(json.dumps(key, sort_keys=True), str(root), file_key)


@dataclass
class Deal:
    """Sample positions of every split, before any preprocessing."""

    global_idx: np.ndarray
    public_idx: np.ndarray | None
    parts: list[np.ndarray]
    partitioner: Any


def deal_rows(
    data: Dataset, data_cfg: DataConfig, n_clients: int, shares: Sequence[float | None], seed: int
) -> Deal:
    """Steps (1)-(4) of the module docstring: subsample, global test, public, partition."""
    labels = data.labels
    classification = data.task == "classification"
    pool = np.arange(len(data))
    if data_cfg.max_samples is not None and data_cfg.max_samples < len(pool):
        frac = 1 - data_cfg.max_samples / len(pool)
        pool, _ = stratified_split(labels, frac, numpy_rng(seed, "data", "subsample"))
    if data.split is not None:  # the file's own split: every test row is global test data
        global_idx = pool[data.split[pool] == "test"]
        if len(global_idx) == 0:
            raise DataError(
                "the split column marks no row as test; mark some rows test, or clear the split "
                "column (data.split_column) to draw test sets at random"
            )
        candidates = pool[data.split[pool] == "train"]
    else:
        rel_keep, rel_test = stratified_split(
            labels[pool],
            data_cfg.global_test_fraction,
            numpy_rng(seed, "data", "global_test"),
            classification,
        )
        global_idx, pool = pool[rel_test], pool[rel_keep]
        candidates = pool
    public_idx = None
    if data_cfg.public_fraction > 0:
        rel_keep, rel_pub = stratified_split(
            labels[candidates], data_cfg.public_fraction, numpy_rng(seed, "data", "public"), classification
        )
        public_idx = candidates[rel_pub]
        pool = np.setdiff1d(pool, public_idx, assume_unique=True)
    if n_clients < 1:
        raise DataError("the roster has no clients; add at least one")
    if n_clients > len(pool):
        raise DataError(
            f"{n_clients} clients but only {len(pool)} training samples after the held-out sets; "
            f"use at most {len(pool)} clients or a larger dataset"
        )
    partitioner = PARTITIONERS.get(data_cfg.partition.method)(partition_params(data_cfg))
    parts = partitioner.split(data, pool, n_clients, numpy_rng(seed, "data", "partition"), list(shares))
    if len(parts) != n_clients:
        raise DataError(
            f"partition '{partitioner.name}' produced {len(parts)} clients but the roster has "
            f"{n_clients}; make the roster match (for 'natural', one client per distinct value)"
        )
    for i, idx in enumerate(parts):
        if len(idx) == 0:
            raise DataError(f"client {i} received no samples; use fewer clients or a milder partition")
        if data.split is not None and not (data.split[idx] == "train").any():
            raise DataError(
                f"client {i} received no train rows of the split column (only test or validation "
                f"rows); use fewer clients or a milder partition"
            )
    return Deal(global_idx, public_idx, parts, partitioner)


def _local_split(
    labels: np.ndarray, idx: np.ndarray, fraction: float, classification: bool, seed: int, i: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (within ``idx``) of client ``i``'s train and local test splits, drawn at random."""
    rng = numpy_rng(seed, "data", "client", i, "local_test")
    counts = np.unique(labels[idx], return_counts=True)[1]
    stratify = classification and counts.min() >= 2
    rel_train, rel_test = stratified_split(labels[idx], fraction, rng, stratify)
    if len(rel_train) == 0:
        rel_train, rel_test = rel_test, rel_train
    return rel_train, rel_test


def client_rows(
    data: Dataset, data_cfg: DataConfig, idx: np.ndarray, seed: int, i: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step (5), the one place that assigns a client's rows: positions (within ``idx``) of client
    ``i``'s train, local test and validation rows (the Data page preview and :func:`build` both
    call it).

    As the file's split column says when it has one. Otherwise drawn: the local test split first
    (``test_fraction``, stratified when every class has two rows), then ``validation_fraction``
    of the rest becomes the validation split, stratified the same way and seeded per client (it
    does not depend on the other clients); at least one training row always remains.
    """
    if data.split is not None:
        role = data.split[idx]
        return (
            np.flatnonzero(role == "train"),
            np.flatnonzero(role == "test"),
            np.flatnonzero(role == "validation"),
        )
    classification = data.task == "classification"
    rel_train, rel_test = _local_split(data.labels, idx, data_cfg.test_fraction, classification, seed, i)
    fraction = data_cfg.validation_fraction
    if fraction <= 0 or len(rel_train) < 2:
        return rel_train, rel_test, rel_train[:0]
    train_labels = data.labels[idx[rel_train]]
    counts = np.unique(train_labels, return_counts=True)[1]
    keep, held = stratified_split(
        train_labels,
        fraction,
        numpy_rng(seed, "data", "client", i, "validation"),
        classification and counts.min() >= 2,
    )
    if len(keep) == 0:  # a tiny client: keep one row to train on
        keep, held = held[:1], held[1:]
    return rel_train[keep], rel_test, rel_train[held]


def build(
    data_cfg: DataConfig, preprocessing: Sequence[str], shares: Sequence[float | None], seed: int, root: Path
) -> Federation:
    """Split the dataset for ``len(preprocessing)`` clients.

    :param preprocessing: each client's preprocessing method.
    :param shares: each client's requested data share (``None`` where unset).
    :raises DataError: an impossible split, with what to change (for ``natural``: the number of
        clients the roster needs).
    """
    data = load_dataset(data_cfg, root)
    n_clients = len(preprocessing)
    deal = deal_rows(data, data_cfg, n_clients, shares, seed)
    partitioner = deal.partitioner
    raw = []
    for i, idx in enumerate(deal.parts):
        rel_train, rel_test, rel_val = client_rows(data, data_cfg, idx, seed, i)
        x = data.x[torch.as_tensor(idx)]
        x = partitioner.transform_client(i, n_clients, x, numpy_rng(seed, "data", "client", i, "shift"))
        raw.append(tuple((x[torch.as_tensor(rel)], idx[rel]) for rel in (rel_train, rel_test, rel_val)))
    fitted = preprocess.fit_clients(list(preprocessing), [r[0][0] for r in raw], data, data_cfg.statistics)
    clients = [
        ClientData(
            Split(t(x_tr), data.y[tr]), Split(t(x_te), data.y[te]), t, tr, Split(t(x_va), data.y[va]), te
        )
        for t, ((x_tr, tr), (x_te, te), (x_va, va)) in zip(fitted.transforms, raw, strict=True)
    ]
    digest = hashlib.sha256()
    public_idx = deal.public_idx
    for part in [deal.global_idx, public_idx if public_idx is not None else np.arange(0), *deal.parts]:
        digest.update(np.asarray(part, dtype=np.int64).tobytes() + b"|")
    if partitioner.shifts_features:
        digest.update(json.dumps(data_cfg.partition.model_dump(mode="json"), sort_keys=True).encode())
    public = None if public_idx is None else Split(data.x[public_idx], data.y[public_idx])
    fed = Federation(
        data,
        clients,
        Split(data.x[deal.global_idx], data.y[deal.global_idx]),
        public,
        digest.hexdigest()[:16],
        fitted.reference,
        provenance=fitted.provenance,
    )
    if data.task == "regression":
        _standardize_targets(fed, data_cfg.statistics)
    return fed


def _standardize_targets(fed: Federation, source: str) -> None:
    """Regression targets in standard units, so one learning rate suits any target scale: two
    numbers shared by every client - the federated aggregate (sum, sum of squares, count) of the
    clients' training targets, or the whole file's with ``centralized`` statistics. Metrics convert
    MSE and MAE back to the data's own units (:func:`engine.core.training.metrics` takes ``target_std``)."""
    y = fed.data.y if source == "centralized" else torch.cat([c.train.y for c in fed.clients])
    y = y.to(torch.float64)
    mean, std = float(y.mean()), float(y.std(unbiased=False))
    std = std if std > 1e-12 else 1.0
    fed.target_mean, fed.target_std = mean, std
    fed.provenance["target scaling"] = (
        preprocess.SOURCE_TEXT["centralized"]
        if source == "centralized"
        else "federated aggregate of the clients' training targets (sum, sum of squares, count)"
    )

    def scaled(split: Split) -> Split:
        return Split(split.x, (split.y - mean) / std)

    for c in fed.clients:
        c.train, c.test, c.val = scaled(c.train), scaled(c.test), scaled(c.val)
    fed.global_test = scaled(fed.global_test)
    if fed.public is not None:
        fed.public = scaled(fed.public)
