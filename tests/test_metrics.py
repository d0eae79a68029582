"""The task metrics against scikit-learn, the trivial-predictor references, and the choice of the
primary metric (engine.core.metrics: the one place they are defined)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

from engine.core import metrics, primary, scores

pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true:UserWarning")


def _pairs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    outs, ys = [], []
    for n in (37, 1, 64, 25):
        o = torch.randn(n, 4, generator=g)
        o[: min(n, 6)] = o[0]  # tied scores: AUC counts them half
        outs.append(o)
        ys.append(torch.randint(0, 4, (n,), generator=g))
    ys[3] = torch.where(ys[3] >= 2, torch.zeros_like(ys[3]), ys[3])  # only classes 0 and 1 present
    return outs, ys


def test_classification_metrics_of_many_splits_at_once_equal_sklearn_per_split():
    outs, ys = _pairs()
    for o, y, got in zip(outs, ys, scores.scores_many("classification", outs, ys), strict=True):
        yy, pred = y.numpy(), o.argmax(1).numpy()
        prob = torch.softmax(o.double(), 1).numpy()
        assert got["acc"] == pytest.approx(accuracy_score(yy, pred))
        assert got["f1"] == pytest.approx(f1_score(yy, pred, average="macro"))
        if len(yy) > 1:
            assert got["bacc"] == pytest.approx(balanced_accuracy_score(yy, pred))
        present = np.unique(yy)
        if len(present) >= 2:  # one-vs-rest over the classes present, each by its probability
            expected = np.mean([roc_auc_score(yy == c, prob[:, c]) for c in present])
            assert got["auc"] == pytest.approx(expected)
        else:
            assert math.isnan(got["auc"])
        assert got["loss"] == pytest.approx(torch.nn.functional.cross_entropy(o, y).item(), rel=1e-5)


def test_binary_auc_ranks_by_the_positive_margin_with_ties_half():
    g = torch.Generator().manual_seed(1)
    o = torch.randn(50, 2, generator=g)
    o[10:20] = o[10]  # ten tied samples
    y = torch.randint(0, 2, (50,), generator=g)
    got = scores.scores("classification", o, y)["auc"]
    assert got == pytest.approx(roc_auc_score(y.numpy(), (o[:, 1] - o[:, 0]).numpy()))
    perfect = scores.scores("classification", torch.stack([-y.float(), y.float()], 1), y)["auc"]
    assert perfect == 1.0


def test_regression_metrics_are_in_data_units():
    g = torch.Generator().manual_seed(2)
    y = torch.randn(40, generator=g)
    out = (y + 0.3 * torch.randn(40, generator=g)).unsqueeze(1)
    std = 7.5  # targets are trained in standard units; errors are reported in the data's
    got = scores.scores("regression", out, y, std)
    assert got["r2"] == pytest.approx(r2_score(y.numpy(), out[:, 0].numpy()), abs=1e-6)
    assert got["mae"] == pytest.approx(mean_absolute_error(y.numpy(), out[:, 0].numpy()) * std, rel=1e-5)
    assert got["rmse"] == pytest.approx(math.sqrt(got["mse"]), rel=1e-9)
    assert got["rmse"] == pytest.approx(float(((out[:, 0] - y) ** 2).mean().sqrt()) * std, rel=1e-5)


def test_empty_split_has_no_figures():
    out = scores.scores_many(
        "classification",
        [torch.zeros(0, 3), torch.randn(2, 3)],
        [torch.zeros(0, dtype=torch.long), torch.tensor([0, 2])],
    )
    assert out[0] == {} and set(out[1]) == set(metrics.TASK_METRICS["classification"])


def test_reference_is_the_majority_class_or_the_mean():
    train = torch.tensor([1] * 8 + [0] * 2)
    test = torch.tensor([1, 1, 1, 0, 2])
    ref = scores.reference_scores("classification", [train], [test], 3)[0]
    assert ref["acc"] == pytest.approx(3 / 5)  # always "1"
    assert ref["bacc"] == pytest.approx(1 / 3)  # 1/K over the classes present
    assert ref["auc"] == pytest.approx(0.5)  # constant scores
    reg = scores.reference_scores(
        "regression", [torch.tensor([0.0, 2.0])], [torch.tensor([0.0, 1.0, 5.0])], 1
    )[0]
    assert reg["r2"] <= 0 and reg["mae"] == pytest.approx((1 + 0 + 4) / 3)


def test_auto_primary_metric_is_balanced_accuracy_when_a_client_is_mostly_one_class():
    balanced = [[50, 50], [40, 60]]
    skewed = [[50, 50], [6, 94]]
    assert primary.choose_primary("auto", "classification", balanced).key == "acc"
    chosen = primary.choose_primary("auto", "classification", skewed, ["north", "south"])
    assert chosen.key == "bacc" and "south" in chosen.reason and "94%" in chosen.reason
    assert primary.choose_primary("auto", "classification", [[70, 30]]).key == "acc"  # exactly 70%: not over
    assert primary.choose_primary("auto", "regression").key == "r2"
    assert primary.choose_primary("macro_f1", "classification", skewed).key == "f1"
    with pytest.raises(ValueError, match="regression"):
        primary.choose_primary("auc", "regression")


def test_record_keys_name_their_metric_and_direction():
    assert metrics.base_metric("best_local_bacc_worst10").key == "bacc"
    assert metrics.base_metric("server_val_auc[cnn]").key == "auc"
    assert metrics.base_metric("ref_global_rmse").key == "rmse"
    assert metrics.higher_is_better("local_auc") and not metrics.higher_is_better("global_rmse_mean")
    assert not metrics.higher_is_better("train_loss") and not metrics.higher_is_better("local_acc_std")
    assert metrics.headline_key("bacc") == "best_local_bacc_mean"
    assert metrics.reference_key("best_local_bacc_mean") == "ref_local_bacc_mean"
    assert metrics.reference_key("server_auc[cnn]") == "ref_global_auc"
    assert metrics.reference_key("local_acc_std") is None and metrics.reference_key("cum_bytes_up") is None
    assert metrics.headline_key(metrics.METRICS["r2"], best=False) == "local_r2_mean"


def test_a_stored_run_names_its_primary_metric():
    assert metrics.run_primary({"summary": {"primary_metric": "bacc"}}).key == "bacc"
    assert metrics.run_primary({"manifest": {"primary_metric": "f1"}}).key == "f1"
    assert metrics.run_primary({"config": {"primary_metric": "rmse"}}).key == "rmse"
    # runs recorded before primary metrics: accuracy, or R^2 when they hold regression figures
    assert metrics.run_primary({"summary": {"local_r2_mean": 0.5}}).key == "r2"
    assert metrics.run_primary({}).key == "acc"
    runs = [{"summary": {"primary_metric": k}} for k in ("acc", "bacc", "bacc")]
    assert metrics.shared_primary(runs).key == "bacc"


def test_differences_read_in_points_or_units():
    assert metrics.METRICS["bacc"].diff_text(0.0241) == "+2.4 points"
    assert metrics.METRICS["rmse"].diff_text(-1.5) == "-1.500 data units"


def test_a_primary_metric_of_the_other_task_is_refused_before_launch():
    from conftest import digits_config

    from engine.config import parse_config
    from engine.validate import validate

    report = validate(parse_config(digits_config(primary_metric="rmse")))
    assert any("primary metric" in e and "classification" in e for e in report.errors)
    assert validate(parse_config(digits_config(primary_metric="auc"))).ok
