"""Scoring a round (the :class:`engine.core.simulation.Simulation` methods that evaluate): the
clients' figures on their own test and validation splits and the global test set, the server's
models, the trivial predictor's reference, and each client's best validation round (early
stopping, never on test data)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import torch

from engine.core import training
from engine.core.client import template
from engine.core.evaluation import evaluate_clients, global_figures, rows_per_call
from engine.core.metrics import record_keys
from engine.core.scores import reference_scores, summarize_clients
from engine.core.state import detach, load_into
from engine.data import Federation, Split
from engine.types import ClientInfo


class Scoring:
    """Evaluation and the kept best rounds of a run."""

    @torch.no_grad()
    def evaluate(self, rnd: int, per_client: dict[int, dict[str, float]]) -> dict[str, float]:
        """Each joined client's model on its local test split, its validation split and the
        global test set (:func:`engine.core.evaluation.evaluate_clients`); the strategy's server models
        on the global test set through the reference preprocessing and on the clients' validation
        rows (as each site prepares them: what a federated evaluation would report), keeping each
        server model's best validation round."""
        fed, strategy = self.scoring_federation(rnd), self.strategy
        gx, gy = fed.global_test.x, fed.global_test.y
        joined = [c for c in self.clients if c.spec.join_round <= rnd]
        scores = evaluate_clients(joined, strategy, self.states, fed, self.devices, self.build, self.task)
        for cid, m in scores.items():
            per_client.setdefault(cid, {}).update(m)
        out: dict[str, float] = {"global_rows": float(len(gy))}  # the whole set, or its sample
        self._scored_rows = len(gy)
        full = len(gy) == len(self.federation.global_test)
        val_x = [d.val.x for d in fed.clients if len(d.val)]
        val_y = [d.val.y for d in fed.clients if len(d.val)]
        asr_clients, asr_round = self.adversaries.scores(joined, self.states, self.devices, self.build)
        for cid, m in asr_clients.items():
            per_client.setdefault(cid, {}).update(m)
        out.update(asr_round)
        for label, state in strategy.server_models().items():
            spec = json.loads(label) if label.startswith("{") else self.clients[0].spec.model
            model = template(spec, self.server_device, self.build)
            load_into(model, state)
            model.eval()
            rows = rows_per_call(model, gx.shape[1:])
            outs = [training.predict(model, fed.reference(gx.to(self.server_device)), batch_size=rows)]
            ys = [gy.to(self.server_device)]
            if val_x:  # the clients' validation rows, each as its own site prepares them
                outs.append(training.predict(model, torch.cat(val_x).to(self.server_device), batch_size=rows))
                ys.append(torch.cat(val_y).to(self.server_device))
            test, *val = training.metrics_many(self.task, outs, ys, fed.target_std)
            val_scores = val[0] if val else {}
            suffix = (
                ""
                if label == "all"
                else f"[{json.loads(label)['arch']}]"
                if label.startswith("{")
                else f"[{label}]"
            )
            out.update({f"server_{k}{suffix}": v for k, v in test.items()})
            out.update({f"server_val_{k}{suffix}": v for k, v in val_scores.items()})
            if self._improved(val_scores, self.server_best.get(label)):
                self.server_best[label] = {
                    "round": rnd,
                    "val": val_scores,
                    "scores": test,
                    "model": detach(state),
                    "global_rows": len(gy),
                }
            kept = self.server_best[label]
            asr = self.adversaries.server_scores(model, fed.reference, self.server_device)
            out.update({f"server_{k}{suffix}": v for k, v in asr.items()})
            if full and kept.get("global_rows", len(gy)) < len(gy):  # kept on the sample: every row now
                load_into(model, kept["model"])
                whole = training.predict(model, fed.reference(gx.to(self.server_device)), batch_size=rows)
                kept["scores"] = training.metrics_many(
                    self.task, [whole], [gy.to(self.server_device)], fed.target_std
                )[0]
                kept["global_rows"] = len(gy)
            out.update({f"best_server_{k}{suffix}": v for k, v in kept["scores"].items()})
            out[f"best_server_round{suffix}"] = float(kept["round"])
        return out

    def scoring_federation(self, rnd: int) -> Federation:
        """The federation as round ``rnd`` scores it: the whole global test set every
        ``global_full_every`` rounds and at the last, its fixed stratified sample otherwise
        (scoring every client's model on a large global test set every round cost more than the
        training: docs/benchmarks.md)."""
        cfg, fed = self.config, self.federation
        if self.global_rows is None or rnd % cfg.global_full_every == 0 or rnd == cfg.rounds:
            return fed
        rows = torch.as_tensor(self.global_rows)
        return dataclasses.replace(fed, global_test=Split(fed.global_test.x[rows], fed.global_test.y[rows]))

    def _reference_figures(self) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
        """What a predictor ignoring the input reaches (:func:`engine.core.scores.reference_scores`):
        per client on its local test split (fitted on its training labels), and on the global
        test set (fitted on the pooled training labels)."""
        fed = self.federation
        trains = [d.train.y for d in fed.clients]
        local = reference_scores(
            self.task, trains, [d.test.y for d in fed.clients], fed.n_outputs, fed.target_std
        )
        pooled = torch.cat(trains) if trains else torch.zeros(0)
        glob = reference_scores(self.task, [pooled], [fed.global_test.y], fed.n_outputs, fed.target_std)[0]
        per_client = {c.id: {f"ref_local_{k}": v for k, v in local[c.id].items()} for c in self.clients}
        round_level = summarize_clients(
            per_client, [f"ref_local_{k}" for k in local[0]] if local and local[0] else []
        )
        round_level.update({f"ref_global_{k}": v for k, v in glob.items()})
        return per_client, round_level

    def _improved(self, val: dict[str, float], old: dict[str, Any] | None) -> bool:
        """Whether validation figures ``val`` are at least as good as the kept ones on the primary
        metric (a tie keeps the later round: as good on validation, and trained longer); where
        the primary metric is undefined (AUC on a one-class split), a loss at least as low. A
        client without validation rows keeps its latest round."""
        if old is None or not val:
            return True
        key = self.primary.key
        new_p, old_p = val.get(key, float("nan")), old["val"].get(key, float("nan"))
        if np.isfinite(new_p) and np.isfinite(old_p):
            return new_p >= old_p if self.primary.metric.higher_is_better else new_p <= old_p
        if np.isfinite(new_p) != np.isfinite(old_p):
            return bool(np.isfinite(new_p))
        new_l, old_l = val.get("loss", float("nan")), old["val"].get("loss", float("nan"))
        return bool(not np.isfinite(old_l) or (np.isfinite(new_l) and new_l <= old_l))

    def _keep_best(
        self, rnd: int, per_client: dict[int, dict[str, float]], evaluated: list[ClientInfo]
    ) -> dict[str, float]:
        """Update each evaluated client's best round; write ``best_*`` figures for the clients whose
        best changed; return the round aggregates of everyone's kept figures."""
        memo: dict[tuple, torch.Tensor] = {}
        for c in evaluated:
            m = per_client.get(c.id, {})
            val = {k[4:]: v for k, v in m.items() if k.startswith("val_")}
            if not self._improved(val, self.best.get(c.id)):
                continue
            scores = {k: v for k, v in m.items() if k.startswith(("local_", "global_"))}
            state = self.states[c.id]
            self.best[c.id] = {
                "round": rnd,
                "val": val,
                "scores": scores,
                "model": detach(self.strategy.eval_state(c, state), memo),
                "extra": detach(state.get("extra", {}), memo),
                "global_rows": self._scored_rows,
            }
            m.update({f"best_{k}": v for k, v in scores.items()})
            m["best_round"] = float(rnd)
        self._rescore_best(per_client)
        view = {
            cid: {"best_round": float(b["round"]), **{f"best_{k}": v for k, v in b["scores"].items()}}
            for cid, b in self.best.items()
        }
        weights = {c.id: float(c.n_test) for c in self.clients}
        keys = [k for k in record_keys(self.task) if k.startswith("best_")]
        return summarize_clients(view, keys, weights)

    def _rescore_best(self, per_client: dict[int, dict[str, float]]) -> None:
        """In a round that scored the whole global test set, score the models kept at rounds that
        scored its sample (their best validation rounds) on the whole set too, so every
        ``best_global_*`` figure from then on is the whole set's (the choice of round, made on
        validation data, does not change). A strategy's own prediction rule (FedProto's global
        prototypes) is applied as it stands then, as the kept model's files keep it."""
        fed = self.federation
        full = len(fed.global_test)
        if self._scored_rows != full:
            return
        stale = [c for c in self.clients if self.best.get(c.id, {}).get("global_rows", full) < full]
        if not stale:
            return
        kept = {c.id: self.best[c.id] for c in stale}
        figures = global_figures(
            stale,
            self.strategy,
            {cid: b["model"] for cid, b in kept.items()},
            {cid: {"model": b["model"], "extra": b["extra"]} for cid, b in kept.items()},
            fed,
            self.devices,
            self.build,
            self.task,
        )
        for cid, m in figures.items():
            b = kept[cid]
            b["scores"] = {**{k: v for k, v in b["scores"].items() if not k.startswith("global_")}, **m}
            b["global_rows"] = full
            per_client.setdefault(cid, {}).update({f"best_{k}": v for k, v in m.items()})
