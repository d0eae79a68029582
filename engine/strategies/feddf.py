"""FedDF, ensemble distillation for model fusion — Lin et al., "Ensemble Distillation for Robust
Model Fusion in Federated Learning", NeurIPS 2020 (arXiv:2006.07242).

Clients train as in FedAvg and send their whole models. The server first averages the models of
each architecture (clients with the same model spec: one *prototype* model per architecture, as in
the paper's heterogeneous setting), then **distils the ensemble** into each averaged model on the
unlabelled public set: each architecture's model is trained to match the ensemble's averaged logits
(the paper's AVGLOGITS; ``T^2 * KL`` at ``temperature``). Clients then start the next round from
their architecture's distilled model.

Server settings as the paper runs them, independent of the clients' optimiser settings: Adam at
``distill_lr`` 1e-3 with a cosine schedule, and early stopping on a labelled validation set: the
model is scored on it every ``eval_every`` steps, the best weights are kept (the averaged model
itself included, so distillation never leaves a model worse on validation than plain averaging)
and distillation stops after ``patience`` steps without improvement. The validation set is a
``validation_fraction`` slice of the public set, whose labels only this check reads; the rest is
distilled on unlabelled.

Deviations, with reasons:

- Steps: at most ``distill_steps`` = 200 per architecture and round with patience 50 (the paper: up
  to 10,000 with patience 1,000). Public sets here hold hundreds of samples, not tens of thousands,
  and the server runs on the user's CPU; 200 steps of 64 samples pass over a 150-sample public set
  about 85 times.
- Validation: the paper holds out part of the training data at the server; the server here owns no
  labelled data but the public set, so a slice of it plays that role (``validation_fraction`` 0
  turns early stopping off: fixed steps, the last weights kept).
- The teacher (``teacher``) is the ensemble of all client models received this round
  (``"clients"``, the paper) or of the averaged per-architecture models (``"groups"``, cheaper
  with many clients); its logits are computed once per round.

Why early stopping matters here: with plain SGD clients whose models are still weak, the
ensemble's outputs are nearly uniform, and matching them for a fixed number of steps shrinks the
distilled model's logits towards a constant; clients restarting from it learnt nothing and the run
sat at chance (the issue: SGD lr 0.05, 10 clients, 20 rounds, 0.100 global accuracy). Keeping the
best of {averaged, distilled} on validation bounds each round below by per-architecture FedAvg.

The server feeds the public set through the server models' reference preprocessing when the engine
provides one (``Server.reference``), else as stored. Regression is supported (the ensemble's
outputs are distilled with MSE; validation scores by MSE). Bytes: whole models both ways, like
FedAvg. The per-architecture models are the server models evaluated on the global test set
(``server_acc[arch]``); the distillation loss before and after each round and the step kept are
charted per round.
"""

from __future__ import annotations

import json
from typing import Literal

import torch
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
    description = (
        "FedAvg within each architecture, then the server distils the ensemble of all "
        "clients' models into each architecture's model on unlabelled public data."
    )
    same_architecture = False
    needs_public = True
    deviations = (
        "At most 200 server steps per architecture and round with patience 50 (the paper: 10,000 and "
        "1,000), for public sets of hundreds of samples on a CPU; the early-stopping validation set is a "
        "labelled 20% slice of the public set (the paper holds out training data at the server)."
    )
    pitfalls = (
        "the server distils the ensemble of the clients' models, so it is only as good as they are: "
        "while they learn little per round (plain SGD with a small learning rate, one epoch) the ensemble "
        "teaches little. Give the clients Adam or SGD momentum 0.9 or more epochs (Clients page), or a "
        "larger public set (Data: public fraction)."
    )

    class Params(Params):
        distill_steps: int = Field(
            200,
            ge=0,
            le=100_000,
            description="most server Adam steps of ensemble distillation per architecture and round (the "
            "paper: 10,000)",
        )
        distill_lr: float = Field(
            1e-3,
            gt=0,
            le=1,
            description="server Adam learning rate, annealed to 0 by a cosine schedule (the paper: 1e-3)",
        )
        distill_batch: int = Field(64, ge=1, le=65_536, description="public samples per distillation step")
        temperature: float = Field(
            1.0, gt=0, le=20, description="softmax temperature of the distillation (classification)"
        )
        teacher: Literal["clients", "groups"] = Field(
            "clients",
            description="ensemble of every client model received this round (the paper) or of the averaged "
            "per-architecture models",
        )
        validation_fraction: float = Field(
            0.2,
            ge=0,
            lt=1,
            description="share of the public set whose labels score the distilled model for early stopping "
            "(0: no early stopping, fixed steps)",
        )
        eval_every: int = Field(10, ge=1, le=10_000, description="steps between two validation scores")
        patience: int = Field(
            50,
            ge=1,
            le=100_000,
            description="stop after this many steps without a better validation score (the paper: 1,000 of "
            "10,000)",
        )

    def group(self, client: ClientInfo) -> str:
        return client.arch_key

    def init(self) -> None:
        if self.server.public is None or len(self.server.public) == 0:
            raise CompatibilityError(
                f"{self.name} needs a public/proxy set: set data.public_fraction above 0 (e.g. 0.1)"
            )
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
                [r.payload for r in members],
                [r.n_samples for r in members],
                reference=self.state["global"][g],
                who=[r.client.id for r in members],
            )
            self._updated.append(g)
            self._clients += [(g, r.payload) for r in members]

    def ensemble_logits(self, x: Tensor) -> Tensor:
        """The teacher: the mean logits of the ensemble on ``x``."""
        members = (
            self._clients
            if self.params.teacher == "clients"
            else [(g, self.state["global"][g]) for g in self._updated]
        )
        outs, models = [], {}
        for g, state in members:
            if g not in models:
                models[g] = self.server.build(json.loads(g))
            model = models[g]
            model.load_state_dict(state)
            outs.append({"logits": evaluate_outputs(model, x)})
        # the ensemble's mean through the run's combiner: a defence resists a member's poisoned outputs
        return self.server.combine.mean(outs, [1.0] * len(outs))["logits"]

    def public_split(self) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """The public inputs to distil on and the labelled validation slice (``None`` without
        early stopping), through the server's reference preprocessing; the slice is the same
        every round (seeded by the run seed)."""
        public = self.server.public
        x = public.x.to(self.server.device)
        reference = getattr(self.server, "reference", None)  # the server models' preprocessing, if known
        if reference is not None:
            x = reference(x)
        n_val = int(round(len(x) * self.params.validation_fraction))
        if n_val < 1 or n_val >= len(x):
            return x, None
        from engine.core.seeding import generator

        order = torch.randperm(len(x), generator=generator(self.server.seed, "feddf-validation")).to(x.device)
        val, rest = order[:n_val], order[n_val:]
        return x[rest], (x[val], public.y.to(x.device)[val])

    def after_aggregate(self) -> None:
        updated = getattr(self, "_updated", [])
        if not updated or self.params.distill_steps == 0:
            return
        p = self.params
        x, validation = self.public_split()
        teacher = self.ensemble_logits(x)
        for g in updated:
            model = self.server.build(json.loads(g))
            model.load_state_dict(self.state["global"][g])
            done = distill(
                model,
                x,
                teacher,
                steps=p.distill_steps,
                lr=p.distill_lr,
                batch_size=p.distill_batch,
                temperature=p.temperature,
                task=self.server.task,
                cosine=True,
                validation=validation,
                eval_every=p.eval_every,
                patience=p.patience,
                generator=self.server.generator("feddf", g),
            )
            self.state["global"][g] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self.state["distill"][g] = {
                "before": done.before,
                "after": done.after,
                "round": self.server.round,
                "steps": done.steps,
                "kept": done.best_step,
            }
            if validation is None and done.after > done.before:
                self.server.log(
                    f"round {self.server.round}: distillation moved the {json.loads(g)['arch']} model "
                    f"away from the ensemble (loss {done.before:.3f} -> {done.after:.3f}); lower distill_lr"
                )
        self._updated, self._clients = [], []

    def round_metrics(self) -> dict[str, float]:
        """Per architecture group: the distillation loss (KL to the ensemble on the public set)
        before and after this round's distillation, and the step whose weights were kept (0: the
        averaged model beat every distilled one on validation)."""
        out: dict[str, float] = {}
        for group, d in self.state.get("distill", {}).items():
            if d.get("round") != self.server.round:
                continue
            arch = json.loads(group)["arch"] if group.startswith("{") else group
            out[f"distill_kl_before[{arch}]"] = float(d["before"])
            out[f"distill_kl_after[{arch}]"] = float(d["after"])
            if "kept" in d:
                out[f"distill_step_kept[{arch}]"] = float(d["kept"])
        return out
