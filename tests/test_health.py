"""Runs that go wrong say so (engine/health.py): a model stuck at chance gets one warning event
with the likely cause, shown on Results; a strategy far below its paired ``local`` gets a warning."""

from __future__ import annotations

import math

import pytest
from conftest import digits_config

from engine import health
from engine.config import parse_config
from engine.core.simulation import Simulation


def test_chance_is_the_most_common_label_share():
    assert health.chance_accuracy([0, 1, 1, 2]) == 0.5
    assert health.chance_accuracy([]) == 0.0


@pytest.mark.parametrize(
    ("losses", "trend"),
    [
        ([2.3, 2.0, 1.5, 1.0, 0.8], "falling"),
        ([2.3, 2.3, 2.29, 2.3, 2.29], "flat"),
        ([2.3, 2.0, 5.0, 40.0, 900.0], "diverged"),
        ([2.3, float("nan")], "diverged"),
        ([2.3], "falling"),
    ],
)
def test_training_trend(losses, trend):
    assert health.training_trend(losses) == trend


def test_monitor_warns_once_after_the_first_rounds_naming_what_is_at_chance_and_the_cause():
    monitor = health.Monitor("classification", chance=0.11, strategy="feddf", pitfalls="its own note.")
    flat = {
        "train_loss_mean": 2.30,
        "global_acc_mean": 0.12,
        "local_acc_mean": 0.60,
        "server_acc[mlp]": 0.10,
        "server_acc[cnn]": 0.55,
    }
    assert all(monitor.round(r, flat) == [] for r in range(1, health.MIN_ROUNDS))
    [message] = monitor.round(health.MIN_ROUNDS, flat)
    assert message.startswith(health.AT_CHANCE)
    assert "the clients' models on the global test set (0.120)" in message
    assert "the server's mlp model (0.100)" in message
    assert "own test splits" not in message and "cnn" not in message
    assert health.TREND_ADVICE["flat"] in message and message.endswith("About feddf: its own note.")
    assert monitor.round(health.MIN_ROUNDS + 1, flat) == []  # once per run


def test_one_evaluation_at_chance_is_not_a_stuck_run():
    monitor = health.Monitor("classification", chance=0.11, strategy="feddf")
    for r, gru in zip(range(5, 30, 5), (0.30, 0.10, 0.53, 0.11, 0.12), strict=True):
        found = monitor.round(r, {"train_loss_mean": 2.0 / r, "global_acc_mean": 0.5, "server_acc[gru]": gru})
        assert (found != []) == (r == 25), (
            r,
            found,
        )  # 0.10 at round 10 recovered; 20 and 25 in a row did not


def test_monitor_is_quiet_above_chance_and_judges_regression_by_r2():
    monitor = health.Monitor("classification", chance=0.11, strategy="fedavg")
    for r in range(1, 10):
        assert monitor.round(r, {"train_loss_mean": 2.3 / r, "global_acc_mean": 0.11 + 0.03 * r}) == []
    regression = health.Monitor("regression", chance=0.0, strategy="fedavg")
    for r in range(1, health.MIN_ROUNDS):
        assert regression.round(r, {"train_loss_mean": 1.0 * 10**r, "local_r2_mean": -0.4}) == []
    [message] = regression.round(health.MIN_ROUNDS, {"train_loss_mean": 1e9, "local_r2_mean": -0.4})
    assert "R² 0" in message and health.TREND_ADVICE["diverged"] in message


def test_below_local_needs_a_large_difference_beyond_noise():
    assert health.below_local("lg_fedavg", -0.02) is None
    assert health.below_local("lg_fedavg", -0.087, -0.15, 0.01) is None  # the interval reaches 0
    message = health.below_local("lg_fedavg", -0.087, -0.12, -0.05, pitfalls="heads are averaged.")
    assert message is not None and "8.7 points" in message and "(95% CI -12.0 to -5.0)" in message
    assert message.endswith("Likely cause: heads are averaged.")
    assert health.below_local("fedmd", -0.2) is not None  # one run, no interval: the size decides
    assert health.below_local("fedmd", math.nan) is None


def small(optimizer: dict, strategy: str = "fedavg") -> dict:
    return digits_config(
        rounds=health.MIN_ROUNDS,
        checkpoint_every=0,
        strategy={"name": strategy},
        data={"dataset": "digits", "partition": {"method": "iid"}, "max_samples": 400},
        clients=[
            {
                "name": "c",
                "count": 3,
                "model": {"arch": "mlp", "hidden": 16},
                "epochs": 1,
                "batch_size": 32,
                **optimizer,
            }
        ],
    )


def test_a_run_that_cannot_learn_records_the_warning_and_results_can_read_it(store):
    stuck = Simulation(parse_config(small({"optimizer": "sgd", "lr": 1e-6})), store=store)
    stuck.run()
    [message] = health.run_warnings(store, stuck.run_id)
    assert "fedavg" in message and health.TREND_ADVICE["flat"] in message
    assert "About fedavg:" in message  # the strategy's own note
    fine = Simulation(parse_config(small({"optimizer": "adam", "lr": 0.01})), store=store)
    fine.run()
    assert fine.history[-1].metrics["global_acc_mean"] > 0.5
    assert health.run_warnings(store, fine.run_id) == []


def test_verdict_warning_reads_a_paired_verdict_against_local():
    from types import SimpleNamespace as NS

    from engine.strategies import STRATEGIES

    def verdict(mean, low, high, n=3, baseline="local", scale=100):
        return NS(
            strategy="lg_fedavg",
            baseline=baseline,
            interval=NS(mean=mean, low=low, high=high, n=n),
            metric=NS(label="balanced accuracy", scale=scale),
        )

    message = health.verdict_warning(verdict(-0.087, -0.12, -0.05))
    assert "8.7 points of balanced accuracy" in message
    assert message.endswith(STRATEGIES.get("lg_fedavg").pitfalls)
    assert health.verdict_warning(verdict(-0.087, -0.12, 0.02)) is None
    assert health.verdict_warning(verdict(-0.087, -0.12, -0.05, baseline="centralized")) is None
    assert health.verdict_warning(verdict(-0.4, -0.5, -0.3, scale=1)) is None  # R²: not points
