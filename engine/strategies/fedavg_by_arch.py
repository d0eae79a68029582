"""FedAvg within each architecture group — the plain baseline for mixed rosters: clients average
with the clients that share their exact model spec and with nobody else (McMahan et al. 2017,
applied per group)."""

from __future__ import annotations

from engine.strategies.base import STRATEGIES, ClientInfo
from engine.strategies.fedavg import FedAvg


@STRATEGIES.register("fedavg_by_arch")
class FedAvgByArch(FedAvg):
    description = "FedAvg inside each group of clients with the same model; groups never mix."
    same_architecture = False

    def group(self, client: ClientInfo) -> str:
        return client.arch_key
