"""FedDF, ensemble distillation for model fusion — Lin et al., "Ensemble Distillation for Robust
Model Fusion in Federated Learning", NeurIPS 2020 (arXiv:2006.07242).

Clients train as in FedAvg and send their whole models. The server first averages the models of
each architecture (clients with the same model spec: one *prototype* model per architecture, as in
the paper's heterogeneous setting), then **distils the ensemble** into each averaged model on the
unlabelled public set: each architecture's model is trained with Adam for ``distill_steps``
mini-batches to match the ensemble's averaged logits, softened by ``temperature``
(``T^2 * KL``). Clients then start the next round from their architecture's distilled model.

The teacher (``teacher``) is, as in the paper, the ensemble of all the clients' models received
this round (``"clients"``), or the ensemble of the averaged per-architecture models
(``"groups"``, cheaper with many clients). Its logits on the public set are computed once per
round; the ensemble averages logits (the paper's AVGLOGITS).

Choices: the paper stops distillation early on a validation set; our public set is unlabelled and
we keep no labelled server data, so the number of steps is fixed. Rounds start from scratch: with
strongly skewed clients the first rounds' ensemble is weak and so are the distilled models; they
overtake per-architecture FedAvg after 10-15 rounds on digits. The server feeds the public set
through the server models' reference preprocessing when the engine provides one
(``Server.reference``), else as stored. Regression is supported (the ensemble's outputs are
distilled with MSE). Bytes: whole models both ways, like FedAvg. The per-architecture models are
the server models evaluated on the global test set (``server_acc[arch]``); the distillation loss
before and after each round is kept in ``state["distill"]``; a round where distillation increased
it is logged with a hint.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field
from torch import Tensor

from engine.errors import CompatibilityError
from engine.strategies._distill import distill, evaluate_outputs
from engine.strategies.base import STRATEGIES, ClientInfo, ClientResult, Params, Strategy


@STRATEGIES.register("feddf")
class FedDF(Strategy):
    paper = "Lin et al. 2020, Ensemble Distillation for Robust Model Fusion in Federated Learning"
    url = "https://arxiv.org/abs/2006.07242"
    family = "knowledge distillation"
    description = ("FedAvg within each architecture, then the server distils the ensemble of all "
                   "clients' models into each architecture's model on unlabelled public data.")
    same_architecture = False
    needs_public = True

    class Params(Params):
        distill_steps: int = Field(100, ge=0, le=100_000, description="server Adam steps of ensemble distillation per architecture and round")
        distill_lr: float = Field(1e-3, gt=0, le=1, description="server Adam learning rate")
        distill_batch: int = Field(64, ge=1, le=65_536, description="public samples per distillation step")
        temperature: float = Field(1.0, gt=0, le=20, description="softmax temperature of the distillation (classification)")
        teacher: Literal["clients", "groups"] = Field(
            "clients", description="ensemble of every client model received this round (the paper) or of the averaged per-architecture models")

    def group(self, client: ClientInfo) -> str:
        return client.arch_key

    def init(self) -> None:
        if self.server.public is None or len(self.server.public) == 0:
            raise CompatibilityError(f"{self.name} needs a public/proxy set: set data.public_fraction above 0 (e.g. 0.1)")
        super().init()
        self.state["distill"] = {}

    def aggregate(self, results: list[ClientResult]) -> None:
        self._updated: list[str] = []
        self._clients: list[tuple[str, dict[str, Tensor]]] = []
        by_group: dict[str, list[ClientResult]] = {}
        for r in results:
            by_group.setdefault(self.group(r.client), []).append(r)
        for g, members in by_group.items():
            self.state["global"][g] = self.server.combine.mean(
                [r.payload for r in members], [r.n_samples for r in members], reference=self.state["global"][g],
                who=[r.client.id for r in members])
            self._updated.append(g)
            self._clients += [(g, r.payload) for r in members]

    def ensemble_logits(self, x: Tensor) -> Tensor:
        """The teacher: the mean logits of the ensemble on ``x``."""
        members = (self._clients if self.params.teacher == "clients"
                   else [(g, self.state["global"][g]) for g in self._updated])
        outs, models = [], {}
        for g, state in members:
            if g not in models:
                models[g] = self.server.build(json.loads(g))
            model = models[g]
            model.load_state_dict(state)
            outs.append({"logits": evaluate_outputs(model, x)})
        # the ensemble's mean through the run's combiner: a defence resists a member's poisoned outputs
        return self.server.combine.mean(outs, [1.0] * len(outs))["logits"]

    def after_aggregate(self) -> None:
        updated = getattr(self, "_updated", [])
        if not updated or self.params.distill_steps == 0:
            return
        x = self.server.public.x.to(self.server.device)
        reference = getattr(self.server, "reference", None)  # the server models' preprocessing, if known
        if reference is not None:
            x = reference(x)
        teacher = self.ensemble_logits(x)
        for g in updated:
            model = self.server.build(json.loads(g))
            model.load_state_dict(self.state["global"][g])
            before, after = distill(model, x, teacher, steps=self.params.distill_steps, lr=self.params.distill_lr,
                                    batch_size=self.params.distill_batch, temperature=self.params.temperature,
                                    task=self.server.task, generator=self.server.generator("feddf", g))
            self.state["global"][g] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self.state["distill"][g] = {"before": before, "after": after, "round": self.server.round}
            if after > before:
                self.server.log(f"round {self.server.round}: distillation moved the {json.loads(g)['arch']} model "
                                f"away from the ensemble (loss {before:.3f} -> {after:.3f}); lower distill_lr")
        self._updated, self._clients = [], []

    def round_metrics(self) -> dict[str, float]:
        """The distillation loss (KL to the ensemble on the public set) before and after this
        round's distillation, per architecture group."""
        out: dict[str, float] = {}
        for group, d in self.state.get("distill", {}).items():
            if d.get("round") != self.server.round:
                continue
            arch = json.loads(group)["arch"] if group.startswith("{") else group
            out[f"distill_kl_before[{arch}]"] = float(d["before"])
            out[f"distill_kl_after[{arch}]"] = float(d["after"])
        return out
