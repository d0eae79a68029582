"""LG-FedAvg — Liang et al., "Think Locally, Act Globally: Federated Learning with Local and
Global Representations", 2020 (arXiv:2001.01523).

The mirror image of FedPer: each client keeps a personal body (its local representation) and only
the head, the layers on top of it, is averaged into a global one. Every architecture here maps its
input to the same ``rep_dim`` and ends in a ``rep_dim -> outputs`` linear head, so heads of an MLP,
a CNN and a GRU have identical shapes and are averaged across the whole federation: LG-FedAvg runs
mixed rosters as they are, and sends a few hundred parameters per round.
"""

from __future__ import annotations

from engine.strategies.base import STRATEGIES, Strategy


@STRATEGIES.register("lg_fedavg")
class LGFedAvg(Strategy):
    paper = (
        "Liang et al. 2020, Think Locally, Act Globally: Federated Learning with Local and Global "
        "Representations"
    )
    url = "https://arxiv.org/abs/2001.01523"
    family = "parameter sharing"
    description = (
        "Keep a personal body, average only the head across ALL clients (heads share rep_dim, "
        "so any mix of architectures works); tiny messages."
    )
    shared = ("head.",)
    same_architecture = False
    pitfalls = (
        "every client's head is replaced each round by the average over all clients, which fits no "
        "client's own mix of labels; with few local steps per round the bodies cannot adapt to it. Train "
        "more epochs per round or with momentum, or choose FedRep or FedPer, which keep a personal head."
    )
