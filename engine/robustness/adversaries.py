"""What a run does with its compromised clients: :class:`Adversaries`.

The round loop (:mod:`engine.core.simulation`) calls it at three named places and nowhere else:

1. :meth:`Adversaries.poison` once at set-up: each data attack replaces its client's training
   split in the federation (every executor and strategy then trains on it as on honest data);
2. :meth:`Adversaries.tamper` after the clients' turns, before the bytes are counted and the
   strategy aggregates: each payload attack replaces its client's payload;
3. :meth:`Adversaries.scores` / :meth:`Adversaries.server_scores` at evaluation: the backdoor's
   attack success rate on every client's model and on the strategy's server models.

Randomness (which samples are poisoned, the noise sent) comes from generators derived from the
run seed, the client and the round, so a run is reproducible and resumable.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor

from engine.core import training
from engine.core.seeding import generator
from engine.robustness.attacks import ATTACKS, Attack, AttackSetting

ASR = "backdoor_asr"
"""Per client, and per round over the honest clients: the backdoor's attack success rate."""


class Adversaries:
    """The compromised clients of one run and their attacks.

    :param clients: the run's :class:`engine.strategies.ClientInfo` list.
    :param fed: the run's federation (its client data is replaced by :meth:`poison`).
    :param strategy: the run's strategy (where payloads carry knowledge, and how clients predict).
    """

    def __init__(
        self,
        clients: Sequence[Any],
        fed: Any,
        strategy: Any,
        seed: int,
        log: Callable[[str, str], None] | None = None,
    ) -> None:
        self.fed = fed
        self.strategy = strategy
        self.seed = seed
        self.log = log or (lambda message, level="info": None)
        self.names = {c.id: c.name for c in clients}
        self.attacks: dict[int, Attack] = {}
        for c in clients:
            spec = c.spec.adversary
            if spec is None:
                continue
            cls = ATTACKS.get(spec.attack)
            setting = AttackSetting(c.id, fed.task, fed.n_outputs, fed.input_spec, seed)
            self.attacks[c.id] = cls(cls.Params(**spec.params()), setting)
        self._idle: set[int] = set()
        self._triggered: dict[int, tuple[Tensor, int]] = {}

    def __bool__(self) -> bool:
        return bool(self.attacks)

    # ---- 1. data ----------------------------------------------------------------------------------
    def poison(self) -> None:
        """Replace each data attacker's training split in the federation (once, at set-up)."""
        for cid, attack in self.attacks.items():
            before = self.fed.clients[cid]
            self.fed.clients[cid] = attack.poison(
                before, self.fed, generator(self.seed, "attack", cid, "data")
            )

    # ---- 2. payloads --------------------------------------------------------------------------------
    def tamper(self, rnd: int, results: list[Any], messages: dict[int, Any]) -> list[Any]:
        """The round's results with each active payload attacker's payload replaced."""
        if not self.attacks:
            return results
        key = type(self.strategy).knowledge_key
        out = []
        for r in results:
            attack = self.attacks.get(r.client.id)
            if attack is None or not attack.active(rnd):
                out.append(r)
                continue
            payload, changed = attack.tamper(
                r.payload,
                messages.get(r.client.id) or {},
                key,
                generator(self.seed, "attack", r.client.id, "round", rnd),
            )
            acts = attack.acts_on != "data" or type(attack).also_sends(attack.params) is not None
            if acts and not changed and r.client.id not in self._idle:
                self._idle.add(r.client.id)
                self.log(
                    f"round {rnd}: the {attack.title.lower()} of {self.names[r.client.id]} found nothing to "
                    f"change in what {self.strategy.name} sends (it sends {type(self.strategy).sends}); "
                    f"the client behaves honestly",
                    "warning",
                )
            out.append(dataclasses.replace(r, payload=payload) if changed else r)
        return out

    # ---- 3. the backdoor's success ---------------------------------------------------------------
    def backdoors(self) -> dict[int, Attack]:
        """One backdoor attacker per distinct trigger and target (colluding clients share one)."""
        seen: dict[str, int] = {}
        for cid, attack in self.attacks.items():
            if attack.backdoor:
                seen.setdefault(
                    json.dumps(attack.params.model_dump(exclude={"boost", "share"}), sort_keys=True), cid
                )
        return {cid: self.attacks[cid] for cid in seen.values()}

    def _test(self, cid: int) -> tuple[Tensor, int]:
        """The global test set's samples not of the target class, with the trigger applied."""
        if cid not in self._triggered:
            attack = self.attacks[cid]
            gt = self.fed.global_test
            target = attack.params.target
            x, _ = attack.triggered(gt.x[gt.y != target], self.fed)
            self._triggered[cid] = (x, target)
        return self._triggered[cid]

    def _suffix(self, cid: int, many: bool) -> str:
        return f"[{self.names[cid]}]" if many else ""

    @torch.no_grad()
    def scores(
        self,
        clients: Sequence[Any],
        states: dict[int, dict[str, Any]],
        devices: dict[int, torch.device],
        build: Any,
    ) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
        """The attack success rate of every client's model (``backdoor_asr`` per client) and its
        mean over the honest clients (the round's ``backdoor_asr``; over every client when all
        are attackers). Several distinct backdoors: one figure each, suffixed ``[attacker]``."""
        from engine.core.client import template
        from engine.core.state import load_into
        from engine.strategies.base import Strategy

        backdoors = self.backdoors()
        per_client: dict[int, dict[str, float]] = {}
        round_metrics: dict[str, float] = {}
        if not backdoors:
            return per_client, round_metrics
        strategy = self.strategy
        custom = type(strategy).predict is not Strategy.predict
        for cid in backdoors:
            x_raw, target = self._test(cid)
            if len(x_raw) == 0:
                continue
            name = ASR + self._suffix(cid, len(backdoors) > 1)
            cache: dict[tuple, float] = {}
            for c in clients:
                state = strategy.eval_state(c, states[c.id])
                data = self.fed.clients[c.id]
                key = (
                    c.arch_key,
                    tuple(id(v) for v in state.values()),
                    id(data.transform),
                    c.id if custom else None,
                )
                if key not in cache:
                    device = devices[c.id]
                    model = template(c.spec.model, device, build)
                    load_into(model, state)
                    model.eval()
                    forward = partial(strategy.predict, c, model, states[c.id]) if custom else model
                    out = training.predict(forward, data.transform(x_raw.to(device)))
                    cache[key] = float((out.argmax(1) == target).float().mean())
                per_client.setdefault(c.id, {})[name] = cache[key]
            honest = [per_client[c.id][name] for c in clients if c.id not in self.attacks]
            pool = honest or [per_client[c.id][name] for c in clients]
            if pool:
                round_metrics[name] = sum(pool) / len(pool)
        if len(backdoors) > 1:
            values = [v for k, v in round_metrics.items() if k.startswith(ASR + "[")]
            if values:
                round_metrics[ASR] = sum(values) / len(values)
        return per_client, round_metrics

    @torch.no_grad()
    def server_scores(
        self, model: torch.nn.Module, reference: Callable[[Tensor], Tensor], device: torch.device
    ) -> dict[str, float]:
        """A server model's attack success rate (``backdoor_asr``, to be prefixed ``server_``),
        its inputs through the server's ``reference`` preprocessing."""
        backdoors = self.backdoors()
        out: dict[str, float] = {}
        for cid in backdoors:
            x_raw, target = self._test(cid)
            if len(x_raw) == 0:
                continue
            pred = training.predict(model, reference(x_raw.to(device)))
            out[ASR + self._suffix(cid, len(backdoors) > 1)] = float(
                (pred.argmax(1) == target).float().mean()
            )
        return out

    # ---- the defence's view ------------------------------------------------------------------------
    def defence_figures(self, notes: dict[int, dict[str, float]]) -> dict[str, float]:
        """From the combiner's per-client notes: the mean share of combinations the attackers and
        the honest clients took part in (``defence_kept_attackers`` / ``_honest``) and the mean
        factor their updates were scaled by (``defence_scale_...``)."""
        out: dict[str, float] = {}
        for key in ("defence_kept", "defence_scale"):
            for who, pick in (
                ("attackers", lambda cid: cid in self.attacks),
                ("honest", lambda cid: cid not in self.attacks),
            ):
                values = [m[key] for cid, m in notes.items() if key in m and pick(cid)]
                if values:
                    out[f"{key}_{who}"] = sum(values) / len(values)
        return out
