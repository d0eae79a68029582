"""Lists defined once (issue #18): the optimisers and the headline's order are read, not spelled
again, by the config, the training loop, the memory estimate, the HTML report and the pages."""

from __future__ import annotations

import typing

import pytest
import torch

from engine.config import ClientSpec
from engine.core.metrics import METRICS, headline, headline_keys
from engine.core.optimizers import OPTIMIZER_NAMES, OPTIMIZERS
from engine.core.training import make_optimizer
from engine.design import choices
from engine.hardware.devices import optimizer_copies
from engine.reporting.report import primary_metric


def test_the_config_and_the_pages_offer_exactly_the_defined_optimisers() -> None:
    assert typing.get_args(ClientSpec.model_fields["optimizer"].annotation) == OPTIMIZER_NAMES
    assert choices.OPTIMIZERS == OPTIMIZER_NAMES


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_each_optimiser_keeps_the_weight_copies_the_memory_estimate_counts(
    name: str, momentum: float
) -> None:
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(name, model.parameters(), lr=0.1, momentum=momentum, weight_decay=0.01)
    assert type(opt).__name__ == OPTIMIZERS[name].torch_class
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    state = opt.state[model.weight]
    tensors = [k for k, v in state.items() if torch.is_tensor(v) and v.shape == model.weight.shape]
    assert len(tensors) == optimizer_copies(name, momentum)


def test_every_headline_reads_one_order() -> None:
    acc = METRICS["acc"]
    both = {"best_local_acc_mean": 0.8, "local_acc_mean": 0.7, "server_acc": 0.6, "global_acc_mean": 0.5}
    assert headline(both, acc) == ("best_local_acc_mean", 0.8)  # pages, CLI, exports
    assert primary_metric(set(both)) == "local_acc_mean"  # the report's curves: the round's own figure
    assert primary_metric(set(both) - {"local_acc_mean"}) == "best_local_acc_mean"
    assert primary_metric({"server_acc", "global_acc_mean"}) == "server_acc"
    assert headline({"global_acc_mean": 0.5}, acc) == ("global_acc_mean", 0.5)
    rest = ("server_acc", "global_acc_mean")
    assert headline_keys(acc)[2:] == headline_keys(acc, best_first=False)[2:] == rest
