"""The issue's learning check for the personalised strategies: the smallest setup of
:mod:`bench.personalised` that still tells a working method from a broken one.

The multi-seed measurement (seeds 3-7, 30 rounds, docs/personalised.md) is the bench's job. Here: the
bench's federation (ten clients mixing mlp/cnn/gru on digits, Dirichlet(0.3)), one seed, ``ROUNDS``
rounds, each strategy paired with ``local`` on the same split. The paired unit is the client: per
client, its late mean accuracy (evaluated rounds of the second half) minus ``local``'s on the same
client; the noise is the standard error of that difference over the ten clients, computed in the test.
"""

from __future__ import annotations

import math
import statistics

import pytest

from bench import personalised as setup

pytestmark = pytest.mark.slow

SEED = 3
ROUNDS = 12
PARITY = ("fedper", "fedrep", "lg_fedavg", "fedproto", "fd", "fml")
"""Methods held to "no worse than local beyond noise" on this setup (FedKD: see its own test)."""


@pytest.fixture(scope="module")
def runs() -> dict:
    return {name: setup.run_one((name, SEED, ROUNDS)) for name in ("local", *setup.METHODS)}


def paired(runs: dict, name: str, key: str) -> tuple[float, float]:
    """Mean over clients of ``name`` minus ``local`` on the per-client late mean of ``key``, and its
    standard error over clients."""
    ours, alone = runs[name]["clients"][key], runs["local"]["clients"][key]
    assert ours.keys() == alone.keys()
    diffs = [ours[c] - alone[c] for c in alone]
    return statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))


def test_every_run_is_paired_on_one_split(runs):
    assert len({r["fingerprint"] for r in runs.values()}) == 1
    assert len(runs["local"]["clients"]["local_acc"]) == 10


def test_local_training_learns_well_above_chance(runs):
    """Each client knows a few classes (Dirichlet 0.3): on its own test split local training reaches
    ~0.94 (chance 0.1); on the global test set, where most classes are foreign to it, ~0.46."""
    assert runs["local"]["late_local_acc_mean"] >= 0.8
    assert runs["local"]["late_global_acc_mean"] >= 0.3


@pytest.mark.parametrize("name", PARITY)
def test_personalised_method_is_no_worse_than_local_on_the_local_tests(name, runs):
    """Measured at seed 3, 12 rounds (points, mean over clients of the paired gain +- se over clients):
    fedper -1.0 +- 1.2, fedrep -0.4 +- 1.2, lg_fedavg -0.6 +- 0.7, fedproto -0.1 +- 0.5, fd +0.7 +- 0.9,
    fml +0.3 +- 0.9. The multi-seed figures at 30 rounds (docs/personalised.md) are +0.4 to +1.8
    points; one seed and 12 rounds cannot resolve gains that small, so the check here is parity: the
    mean gain must not fall below local by more than two standard errors. Broken, measured: an
    aggregation that keeps the heaviest client's state instead of the mean puts lg_fedavg at
    -8.6 +- 4.2 (fails; fedper and fedrep recover through their personal parts and pass); a
    distillation loss that pairs each sample with its neighbour's teacher puts fd at -2.8 +- 1.1
    (fails)."""
    mean, se = paired(runs, name, "local_acc")
    assert mean >= -2 * se, f"{name}: {100 * mean:+.2f} points against local (se {100 * se:.2f})"


def test_fedkd_private_models_stay_near_local(runs):
    """FedKD's private models lag local early in a run and reach parity only later: measured at seed
    3 (points, paired over clients) -2.5 +- 0.7 at 12 rounds, -1.3 +- 0.6 at 16, and -0.3 +- 0.7
    over seeds 3-7 at 30 rounds (docs/personalised.md). So the one-seed check here is a loose one:
    within 5 points of local. It catches a collapse of the private models, not a regression of a
    point or two: that is bench/personalised.py's to measure."""
    mean, se = paired(runs, "fedkd", "local_acc")
    assert mean >= -0.05, f"fedkd: {100 * mean:+.2f} points against local (se {100 * se:.2f})"


@pytest.mark.parametrize("name", ["fml", "fedkd"])
def test_the_shared_model_learns_from_everyone(name, runs):
    """FML's and FedKD's shared model is what generalises: on the global test set it beats the local
    models' mean by far more than the clients' spread (measured at seed 3, 12 rounds: fml 0.94,
    fedkd 0.93 against local's 0.46, whose standard error over clients is 0.06). Broken, measured:
    an aggregation that keeps the heaviest client's state instead of the mean leaves FML's shared
    model at 0.74, below local + 5 se (fails)."""
    shared = runs[name][f"late_{setup.SHARED_MODEL}"]
    alone = runs["local"]["clients"]["global_acc"]
    se = statistics.stdev(alone.values()) / math.sqrt(len(alone))
    margin = max(0.15, 5 * se)
    assert shared >= statistics.fmean(alone.values()) + margin, (shared, statistics.fmean(alone.values()), se)
