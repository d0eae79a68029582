"""A hand-written federated loop in the reference libraries' protocol, to check FedMosaic's engine
against on the same split: what PFLlib and HtFLlib do for FedAvg, local training, LG-FedAvg, FedPer
and FedRep, written out plainly (no FedMosaic code but the data it is given).

Protocol (PFLlib's ``serverbase``/``clientbase``, read, not copied): every round the server sends
its global parameters (all of them for FedAvg, the head for LG-FedAvg, nothing for local); each
client is evaluated right after receiving them, on its own test split (the round's personalised
accuracy, sample-weighted over clients); each client then trains ``epochs`` epochs of SGD over
shuffled mini-batches of its training split (FedRep: first ``head_epochs`` of the output layer with
the rest frozen, then ``epochs`` of the rest with the output layer frozen); the server averages
what it sent (FedPer and FedRep: everything but the output layer), weighted by
training samples. Round ``r``'s accuracy is measured after ``r`` rounds of training and
aggregation, as FedMosaic's round ``r`` is. Models are torch-default-initialised; every client
starts from the same initial model (FedAvg and LG-FedAvg send it in round 1).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ClientSplit:
    """One client's training and test tensors."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def shared_keys(model: nn.Module, algorithm: str) -> list[str]:
    """Parameter names the server averages: all (fedavg), the output layer (lg_fedavg), all but the
    output layer (fedper, fedrep), none (local)."""
    names = list(model.state_dict())
    head = names[-2:]  # the last Linear: weight and bias
    if algorithm == "fedavg":
        return names
    if algorithm == "lg_fedavg":
        return head
    if algorithm in ("fedper", "fedrep"):
        return names[:-2]
    if algorithm == "local":
        return []
    raise ValueError(f"unknown algorithm '{algorithm}': fedavg, lg_fedavg, fedper, fedrep or local")


def run(
    algorithm: str,
    clients: list[ClientSplit],
    make_model: Callable[[], nn.Module],
    *,
    rounds: int,
    lr: float = 0.005,
    batch_size: int = 10,
    epochs: int = 1,
    seed: int = 0,
    same_start: bool = True,
    head_epochs: int = 1,
) -> list[float]:
    """Personalised sample-weighted test accuracy after each round (``rounds`` values).

    :param same_start: every client starts from one model, as the libraries do; ``False``: each
        client's model is initialised on its own (the server's start is still what it sends in
        round 1).
    :param head_epochs: FedRep's epochs of the output layer before the body's ``epochs``."""
    torch.manual_seed(seed)
    start = make_model()
    models = [copy.deepcopy(start) if same_start else make_model() for _ in clients]
    keys = shared_keys(start, algorithm)
    global_state = {k: v.clone() for k, v in start.state_dict().items() if k in keys}
    gen = torch.Generator().manual_seed(seed)
    curve = []
    for _ in range(rounds):
        for model in models:  # send
            model.load_state_dict(global_state, strict=False)
        for model, c in zip(models, clients, strict=True):  # train
            model.train()
            params = list(model.parameters())
            phases = [(params, epochs)]
            if algorithm == "fedrep":  # the output layer on the frozen body, then the body
                phases = [(params[-2:], head_epochs), (params[:-2], epochs)]
            for trained, n_epochs in phases:
                for p in params:
                    p.requires_grad_(any(p is t for t in trained))
                opt = torch.optim.SGD(trained, lr=lr)
                for _ in range(n_epochs):
                    order = torch.randperm(len(c.y_train), generator=gen)
                    for i in range(0, len(order), batch_size):
                        idx = order[i : i + batch_size]
                        opt.zero_grad()
                        F.cross_entropy(model(c.x_train[idx]), c.y_train[idx]).backward()
                        opt.step()
            for p in params:
                p.requires_grad_(True)
        if keys:  # aggregate, weighted by training samples
            total = sum(len(c.y_train) for c in clients)
            global_state = {
                k: sum(
                    m.state_dict()[k] * (len(c.y_train) / total) for m, c in zip(models, clients, strict=True)
                )
                for k in keys
            }
            for model in models:
                model.load_state_dict(global_state, strict=False)
        correct = n = 0
        with torch.no_grad():  # evaluate what each client holds after receiving
            for model, c in zip(models, clients, strict=True):
                model.eval()
                correct += int((model(c.x_test).argmax(1) == c.y_test).sum())
                n += len(c.y_test)
        curve.append(correct / max(n, 1))
    return curve
