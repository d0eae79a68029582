"""The strategy contract: a few hooks that the one round loop (:mod:`engine.core.simulation`) calls.

The defaults implement FedAvg (McMahan et al. 2017, arXiv:1602.05629) generalised by two knobs,
so that most parameter-sharing methods are a handful of lines:

- :attr:`Strategy.shared` — which parameter names are exchanged (prefixes; ``()`` means all).
  FedPer shares ``body.``, LG-FedAvg shares ``head.``.
- :meth:`Strategy.group` — which clients average together (``"all"``, or one group per
  architecture for ``fedavg_by_arch``).

Per round the loop calls, in order: ``select`` -> ``configure`` (message down, per client) ->
on the client: ``receive`` -> ``local_update`` (which calls ``ctx.fit`` and so ``local_loss``)
-> ``payload`` (message up) -> on the server: ``aggregate`` -> ``after_aggregate``; then for
evaluation ``eval_state`` and ``predict``. A strategy never loops over rounds or clients, never
writes to the database and never counts bytes: the engine does, from the tensors exchanged.

Server state lives in ``self.state`` (plain dicts of tensors and numbers, checkpointed as is);
per-client state in ``ctx.state`` (persisted by the engine between that client's turns).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict
from torch import Tensor

from engine.core.state import overlay, select_keys
from engine.models import FedModel, InputSpec
from engine.registry import Registry
from engine.types import ClientContext, ClientInfo, ClientResult, Kept, Server

if TYPE_CHECKING:
    from engine.config import ClientSpec


class Params(BaseModel):
    """Parameters of a strategy; subclasses extend it (``class Params(FedAvg.Params)``)."""

    model_config = ConfigDict(extra="forbid")


class Strategy:
    """Base strategy = FedAvg over :attr:`shared` keys within :meth:`group`.

    Subclasses set the class attributes below, extend :class:`Params`, and override only the
    hooks that differ.
    """

    name: ClassVar[str]
    paper: ClassVar[str] = ""
    url: ClassVar[str] = ""
    family: ClassVar[str] = "parameter sharing"
    description: ClassVar[str] = ""
    shared: ClassVar[tuple[str, ...]] = ()
    same_architecture: ClassVar[bool] = True
    needs_public: ClassVar[bool] = False
    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})
    collaborates: ClassVar[bool] = True
    sends: ClassVar[str] = "weights"
    """What a client's payload carries, for the attacks that change it: ``weights`` (model
    parameters, compared with what it received), ``logits``, ``prototypes`` or ``nothing``."""
    knowledge_key: ClassVar[str | None] = None
    """The payload entry holding the logits (last dimension: classes) or prototypes (first
    dimension: classes) when :attr:`sends` says so."""
    no_defence: ClassVar[str | None] = None
    """Why a robust aggregation rule (the config's ``defence``) cannot apply to this strategy, or
    ``None`` when its server combines contributions through ``server.combine``."""
    deviations: ClassVar[str] = ""
    """Where this implementation departs from the paper and why, in a sentence or two (the
    docstring has the measurements); shown in the catalog."""
    pitfalls: ClassVar[str] = ""
    """How this strategy typically fails and what to change, in the pages' words; shown with the
    warning when a run of it sits at chance or far below training alone (:mod:`engine.health`)."""
    Params: ClassVar[type[BaseModel]] = Params

    def __init__(self, params: BaseModel, server: Server) -> None:
        self.params = params
        self.server = server
        self.state: dict[str, Any] = {}

    # ---- compatibility -------------------------------------------------------------------
    @classmethod
    def incompatibility(cls, roster: Sequence[ClientSpec], task: str, has_public: bool) -> str | None:
        """Why this strategy cannot run the roster, or ``None`` if it can."""
        if task not in cls.tasks:
            return f"{cls.name} supports {', '.join(sorted(cls.tasks))} tasks, not {task}"
        if cls.needs_public and not has_public:
            return f"{cls.name} needs a public/proxy set: set data.public_fraction above 0 (e.g. 0.1)"
        if cls.same_architecture:
            return mixed_models(roster, cls.name)
        return None

    @classmethod
    def check_params(cls, params: BaseModel, input_spec: InputSpec) -> str | None:
        """Why these parameters cannot work on this data (e.g. a shared model that cannot read
        the input kind), or ``None``. Called by the compatibility check before launch."""
        return None

    @classmethod
    def private_payload(cls, params: BaseModel, spec: ClientSpec) -> str | None:
        """Why what this client sends is not computed from its trained model alone (it sends
        statistics of its private data, such as prototypes), so DP-SGD on its training would not
        cover it; ``None`` when everything it sends is a function of its model (and public data),
        which DP-SGD then covers (post-processing). Checked before launch for clients with
        ``privacy`` (:mod:`engine.privacy.checks`)."""
        return None

    @classmethod
    def caveat(cls, roster: Sequence[ClientSpec], task: str, has_public: bool) -> str | None:
        """Something worth telling the user about a roster this strategy *can* run (e.g. an
        architecture group of one client shares with nobody), or ``None``. Advisory only."""
        return None

    @classmethod
    def overrides(cls, *hooks: str) -> bool:
        """Whether this strategy replaces any of the named default hooks (``"local_update"``...):
        the engine takes its fast paths only for the defaults."""
        return any(getattr(cls, hook) is not getattr(Strategy, hook) for hook in hooks)

    # ---- server side ------------------------------------------------------------------------
    def group(self, client: ClientInfo) -> str:
        """Which clients average together; one global state is kept per group."""
        return "all"

    def init(self) -> None:
        """Set up server state before round 1 (default: the shared part of each group's first
        client's initial model)."""
        if not self.collaborates:
            return
        globals_: dict[str, dict[str, Tensor]] = {}
        for client in self.server.clients:
            g = self.group(client)
            if g not in globals_:
                globals_[g] = select_keys(self.server.initial_states(client), self.shared)
        self.state["global"] = globals_

    def select(
        self, candidates: list[ClientInfo], rng: np.random.Generator, fraction: float
    ) -> list[ClientInfo]:
        """Clients that train this round (default: a random ``fraction`` of the candidates)."""
        if fraction >= 1 or not candidates:
            return list(candidates)
        k = max(1, int(round(fraction * len(candidates))))
        chosen = rng.choice(len(candidates), size=k, replace=False)
        return [candidates[i] for i in sorted(chosen)]

    def configure(self, client: ClientInfo) -> dict[str, Any]:
        """The message sent down to ``client`` (default: its group's global shared state)."""
        if not self.collaborates:
            return {}
        return self.state["global"][self.group(client)]

    def aggregate(self, results: list[ClientResult]) -> None:
        """Combine the clients' payloads (default: sample-weighted mean per group)."""
        if not self.collaborates:
            return
        by_group: dict[str, list[ClientResult]] = {}
        for r in results:
            by_group.setdefault(self.group(r.client), []).append(r)
        for g, members in by_group.items():
            avg = self.server.combine.mean(
                [r.payload for r in members],
                [r.n_samples for r in members],
                reference=self.state["global"][g],
                who=[r.client.id for r in members],
            )
            self.state["global"][g] = self.server_update(g, self.state["global"][g], avg)

    def server_update(self, group: str, old: dict[str, Tensor], avg: dict[str, Tensor]) -> dict[str, Tensor]:
        """New global state from the old one and the clients' average (FedAvg: the average;
        server optimisers such as FedAdam step along ``avg - old``)."""
        return avg

    def after_aggregate(self) -> None:
        """Server-side work after aggregation (ensemble distillation, head training...)."""

    def round_metrics(self) -> dict[str, float]:
        """Figures of the strategy's own to chart per round (e.g. FedDF's distillation loss);
        merged into the round's metrics by the engine."""
        return {}

    # ---- client side ------------------------------------------------------------------------
    def receive(self, ctx: ClientContext) -> None:
        """Apply the message to the client's model (default: load the model keys it holds)."""
        from engine.core.state import load_into, snapshot

        own = snapshot(ctx.model)
        merged = overlay(own, ctx.received)
        load_into(ctx.model, {k: v for k, v in merged.items() if v is not own[k]})

    def local_update(self, ctx: ClientContext) -> None:
        """The client's local work (default: ``epochs`` of training on its data)."""
        ctx.fit()

    def local_loss(self, ctx: ClientContext, x: Tensor, y: Tensor) -> Tensor:
        """Loss of one batch; runs the forward pass (FedProx, SCAFFOLD, FedProto add terms)."""
        return ctx.loss(ctx.model(x), y)

    def payload(self, ctx: ClientContext) -> dict[str, Any]:
        """What the client sends up (default: its shared parameters, :meth:`shared_part`)."""
        from engine.core.state import snapshot

        return self.shared_part(snapshot(ctx.model))

    def shared_part(self, model_state: dict[str, Tensor]) -> dict[str, Tensor]:
        """The entries of a client's model state that this strategy exchanges (the default
        payload; the vectorized executor calls it directly on batched results)."""
        if not self.collaborates:
            return {}
        return select_keys(model_state, self.shared)

    # ---- evaluation ---------------------------------------------------------------------------
    def eval_state(self, client: ClientInfo, state: dict[str, Any]) -> dict[str, Tensor]:
        """The model state this client would use now: its own model with what it would receive
        next applied (so FedAvg clients are evaluated with the global model, FedPer clients with
        the global body and their own head)."""
        return overlay(state["model"], self.configure(client))

    def predict(self, client: ClientInfo, model: FedModel, state: dict[str, Any], x: Tensor) -> Tensor:
        """Outputs used for evaluation (FedProto may classify by nearest prototype)."""
        return model(x)

    def server_models(self) -> dict[str, dict[str, Tensor]]:
        """Full server-side models to evaluate on the global test set, by label (FedAvg: the
        global model). Only states that are complete models belong here."""
        if not self.collaborates or self.shared:
            return {}
        return {g: s for g, s in self.state.get("global", {}).items()}

    # ---- what a run keeps -----------------------------------------------------------------------
    def kept_model(self, client: ClientInfo, state: dict[str, Any]) -> Kept:
        """The model ``client`` keeps at the end of the run: by default its evaluation state
        (:meth:`eval_state`: global model, personal body and head, width slice...) predicting with
        its head. Strategies whose :meth:`predict` needs more (FedProto's prototypes) add it."""
        return Kept(self.eval_state(client, state), client.spec.model)

    def kept_federation(self) -> dict[str, Kept]:
        """What the federation shares at the end, by label (a group, ``"all"``): the complete
        :meth:`server_models` (FedAvg's global model, FML's shared model, FedDF's per-architecture
        models), else the shared part of each group (FedPer's body, LG-FedAvg's head)."""
        models = self.server_models()
        if models:
            return {label: Kept(s, self._group_spec(label)) for label, s in models.items()}
        if not self.collaborates or not self.shared or not isinstance(self.state.get("global"), dict):
            return {}
        part = {("body.",): "body", ("head.",): "head"}.get(tuple(self.shared), "part")
        return {
            g: Kept(s, None if part == "head" else self._group_spec(g), part=part)
            for g, s in self.state["global"].items()
        }

    def _group_spec(self, label: str) -> dict[str, Any]:
        """The model spec of a group label (a JSON spec, else the first member's)."""
        if label.startswith("{"):
            return json.loads(label)
        return next(
            (c.spec.model for c in self.server.clients if self.group(c) == label),
            self.server.clients[0].spec.model,
        )

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Server state to checkpoint (tensors, numbers, strings, nested dicts and lists)."""
        return self.state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.state = state


def mixed_models(roster: Sequence[ClientSpec], strategy: str) -> str | None:
    """Why a strategy that needs identical models cannot run ``roster`` (naming the first two
    clients whose models differ, by their number in the roster, counted from 0 as the pages show it,
    and name), or ``None`` if every model is the same."""
    first: dict[str, int] = {}
    for i, spec in enumerate(roster):
        first.setdefault(spec.model_key, i)
    if len(first) < 2:
        return None
    i, j = list(first.values())[:2]
    a, b = roster[i], roster[j]
    who = f"clients {i} ({a.name}) and {j} ({b.name})"
    if a.arch != b.arch:
        return f"{who} use {a.arch} and {b.arch}: {strategy} needs one architecture"
    diff = [k for k in sorted(set(a.model) | set(b.model)) if a.model.get(k) != b.model.get(k)]
    knobs = ", ".join(f"{k}={a.model.get(k)} vs {b.model.get(k)}" for k in diff)
    return (
        f"{who} both use {a.arch} but with different sizes ({knobs}): {strategy} needs "
        f"identical models (same architecture and knobs)"
    )


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
