"""Centralized (pooled) training: the sites' training splits pooled in one place, one model per
architecture trained on them. The ceiling a federation approaches; it is what FL avoids doing
(no privacy), so it exchanges no messages here.

Each round the server trains every architecture's model for ``epochs_per_round`` epochs over the
pooled data with the hyperparameters of the first client using that architecture; every client is
then evaluated with its architecture's pooled model on its own local test split and on the global
test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field
from torch import Tensor

from engine.core import training
from engine.strategies.base import STRATEGIES, ClientInfo, ClientResult, Kept, Params, Strategy


@STRATEGIES.register("centralized")
class Centralized(Strategy):
    paper = "reference: pooled data, no federation"
    family = "reference"
    description = "One model per architecture trained on all clients' data pooled (the ceiling)."
    same_architecture = False
    sends = "nothing"
    no_defence = "centralized pools the clients' data: there are no contributions to combine"

    class Params(Params):
        epochs_per_round: int = Field(1, ge=1, le=100, description="epochs over the pooled data per round")

    def group(self, client: ClientInfo) -> str:
        return client.arch_key

    @classmethod
    def private_payload(cls, params: Any, spec: Any) -> str | None:
        return (
            f"{cls.name} pools every client's raw training data at the server: there is no client "
            f"training to privatise"
        )

    def init(self) -> None:
        self.state["global"] = {}
        self.state["spec"] = {}
        for client in self.server.clients:
            g = self.group(client)
            if g not in self.state["global"]:
                self.state["global"][g] = dict(self.server.initial_states(client))
                self.state["spec"][g] = client.id

    def select(
        self, candidates: list[ClientInfo], rng: np.random.Generator, fraction: float
    ) -> list[ClientInfo]:
        return []

    def aggregate(self, results: list[ClientResult]) -> None:
        pass

    def after_aggregate(self) -> None:
        assert self.server.pooled_train is not None
        pooled = self.server.pooled_train()
        device = self.server.device
        x, y = pooled.x.to(device), pooled.y.to(device)
        for g, state in self.state["global"].items():
            spec = self.server.clients[self.state["spec"][g]].spec
            model = self.server.build(spec.model)
            model.load_state_dict(state)
            opt = training.make_optimizer(
                spec.optimizer, model.parameters(), spec.lr, spec.momentum, spec.weight_decay
            )
            task = self.server.task
            training.fit(
                model,
                x,
                y,
                lambda xb, yb, task=task, model=model: training.task_loss(task, model(xb), yb),
                opt,
                self.params.epochs_per_round,
                spec.batch_size,
                self.server.generator(g),
            )
            self.state["global"][g] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def configure(self, client: ClientInfo) -> dict[str, Any]:
        return {}

    def eval_state(self, client: ClientInfo, state: dict[str, Any]) -> dict[str, Tensor]:
        return self.state["global"][self.group(client)]

    def server_models(self) -> dict[str, dict[str, Tensor]]:
        return {}

    def kept_federation(self) -> dict[str, Kept]:
        """The pooled model of each architecture."""
        return {
            g: Kept(s, self.server.clients[self.state["spec"][g]].spec.model)
            for g, s in self.state["global"].items()
        }
