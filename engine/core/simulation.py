"""The round loop, written once: select -> local work -> exchange -> aggregate -> evaluate -> record.

``Simulation(config).run()`` builds the federation and one model per client, then for each round
asks the strategy which clients train, what to send them, runs their turns through the executor,
lets the strategy aggregate, evaluates every joined client's model on its local test split, its
validation split and the global test set, and writes the round in one transaction. Strategies only
supply hooks.

Early stopping: at every evaluated round each client's model is scored on its validation split,
and when the experiment's primary metric improves there (ties: lower validation loss) the
client's evaluation weights and that round's test figures are kept (:attr:`Simulation.best`,
checkpointed). Reported figures come in two kinds: the round's own (``local_bacc``: the last
round's are the *final-round* figures) and those at each client's best validation round
(``best_local_bacc``, ``best_round``); test data never chooses anything. Server-side models follow
the same rule on the clients' validation splits (:attr:`Simulation.server_best`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any

import numpy as np
import torch

from engine import health, threads
from engine.core import training
from engine.hardware import devices
from engine.core.aggregate import nbytes
from engine.core.client import ClientEnv, ClientJob, detach, load_into, template
from engine.hardware.clock import VirtualClock
from engine.config import ExperimentConfig
from engine.data import Federation, Split, build as build_federation, label_histograms
from engine.errors import CancelledError, ConfigError, DataError, FedMosaicError, StorageError
from engine.core.evaluation import evaluate_clients, global_figures, rows_per_call, stratified_rows
from engine.executors import RunPlan, make_executor
from engine.core.recorder import Recorder
from engine.core.metrics import Primary, choose_primary, record_keys, reference_scores, summarize_clients
from engine.models import FedModel, ModelFactory, count_params, flops_per_sample
from engine.robustness.adversaries import Adversaries
from engine.robustness.combine import make_combiner
from engine.core.seeding import numpy_rng, seeded
from engine.tracking.storage import Store, default_data_dir
from engine.strategies import STRATEGIES, Strategy
from engine.types import ClientInfo, Server
from engine.tracking.observers import observers_for
from engine.tracking.recorder import SqliteRecorder

log = logging.getLogger("fedmosaic.simulation")


def versions() -> dict[str, str]:
    """Library versions recorded with every run (reproducibility manifest), read from the
    installed packages' metadata: a run on a CSV file does not import scikit-learn (2 s) for it."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("numpy", "pandas", "scikit-learn", "pydantic"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    out["platform"] = platform.platform()
    return out


@dataclass
class RoundRecord:
    """What one round produced (also kept in memory for callers without a database)."""

    round: int
    metrics: dict[str, float]
    clients: dict[int, dict[str, float]] = field(default_factory=dict)


class Simulation:
    """One run of one config.

    :param store: where figures go (``None``: memory only, see :attr:`history`).
    :param run_id: the run row to write to (created if ``store`` is given and this is ``None``).
    :param recorder: where the records go, instead of ``store`` (:mod:`engine.core.recorder`).
    :param cancel: set it to stop the run between batches; the run ends ``cancelled``.
    :param on_round: called after each recorded round (progress bars).
    :param share: threads this run may use (:func:`engine.threads.share`; a run manager divides
        the process's budget among the runs it trains at once); default the whole budget.
    """

    def __init__(self, config: ExperimentConfig, *, store: Store | None = None, run_id: str | None = None,
                 root: Path | None = None, cancel: Event | None = None,
                 on_round: Callable[[RoundRecord], None] | None = None, share: int | None = None,
                 recorder: Recorder | None = None) -> None:
        self.config = config
        self.store = store
        self.root = root or default_data_dir()
        self.cancel = cancel or Event()
        self.on_round = on_round
        self.history: list[RoundRecord] = []
        self.events: list[tuple[str, str]] = []  # before setup: a failing setup still records its end
        self._resumed_cum: dict[str, float] = {}  # cumulative figures up to a restored checkpoint
        if recorder is None:
            recorder = SqliteRecorder(store, run_id, config.model_dump(mode="json")) if store is not None else Recorder()
        self.recorder = recorder
        """Where the records go (:mod:`engine.core.recorder`): the store's run row, or nowhere."""
        self.run_id = self.recorder.run_id
        self.roster = config.roster()
        self.share = threads.share(1) if share is None else max(1, int(share))
        self.threads = 1
        """Intra-op threads of the run's thread, decided in :meth:`setup` (applied by :meth:`run`)."""
        self.observers = observers_for(self)
        """Who else watches the records (the kept models, MLflow): :mod:`engine.tracking.observers`."""

    # ---- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        """Build the federation, the clients' initial models, the strategy and the executor."""
        cfg = self.config
        arch_cache: dict[str, tuple[int, int, bool]] = {}
        self.federation: Federation = build_federation(
            cfg.data, [c.preprocessing for c in self.roster], [c.data_share for c in self.roster],
            cfg.seed, self.root)
        fed = self.federation
        self.task = fed.task
        self.clients = [ClientInfo(i, spec.name, spec, len(d.train), len(d.test))
                        for i, (spec, d) in enumerate(zip(self.roster, fed.clients, strict=True))]
        self.devices = {c.id: devices.resolve(c.spec.device) for c in self.clients}
        self.states: dict[int, dict[str, Any]] = {}
        self.flops: dict[int, int] = {}
        self.n_params: dict[int, int] = {}
        for c in self.clients:
            with seeded(cfg.seed, "init", c.id):
                model = self.build(c.spec.model)
            self.states[c.id] = {"model": detach(model.state_dict()), "extra": {}}
            key = c.arch_key
            if key not in arch_cache:
                arch_cache[key] = (count_params(model), flops_per_sample(model, fed.input_spec),
                                   any(isinstance(m, torch.nn.RNNBase) for m in model.modules()))
            self.n_params[c.id], self.flops[c.id], _ = arch_cache[key]
        self.initial = {cid: s["model"] for cid, s in self.states.items()}
        sample = cfg.global_sample
        self.global_rows = None if sample is None else stratified_rows(
            fed.global_test.y, sample, numpy_rng(cfg.seed, "global-sample"), self.task)
        """Rows of the global test set scored between full scorings (``None``: all of them)."""
        self._scored_rows = len(fed.global_test)
        """Rows of the global test set the latest evaluation scored (the whole set or its sample)."""
        self.server_device = next(iter(self.devices.values()), torch.device("cpu"))
        self.combiner = make_combiner(cfg.defence, log=lambda message: self._log(message, "warning"))
        self.server = Server(
            clients=self.clients, input_spec=fed.input_spec, task=self.task, n_outputs=fed.n_outputs,
            rep_dim=cfg.rep_dim, seed=cfg.seed, device=self.server_device, public=fed.public,
            initial_states=lambda c: self.initial[c.id],
            client_state=lambda c: self.states[c.id],
            build=self._server_build, log=self._log, pooled_train=fed.pooled_train,
            reference=fed.reference, combine=self.combiner,
        )
        strategy_cls = STRATEGIES.get(cfg.strategy.name)
        self.strategy: Strategy = strategy_cls(strategy_cls.Params(**cfg.strategy.params()), self.server)
        self.adversaries = Adversaries(self.clients, fed, self.strategy, cfg.seed, self._log)
        self.adversaries.poison()  # compromised clients train on their poisoned data from round 1
        self.strategy.init()
        self.clock = VirtualClock(cfg, self.clients, self.flops,
                                  param_bytes={cid: 4 * n for cid, n in self.n_params.items()})
        self.participated: set[int] = set()
        self.events: list[tuple[str, str]] = []
        from engine.privacy.ledger import ClientLedger

        self.privacy = ClientLedger(self.clients, cfg.rounds, self._log)  # DP-SGD accounting
        from engine.privacy.server import PrivateAggregation

        self.private_agg = PrivateAggregation(cfg, self.clients, self.strategy, self.clock.tiers, self._log)
        self.executor = make_executor(cfg.executor, cfg.executor_options)
        self.env = ClientEnv(self.strategy, self.task, cfg.seed, self.build, self.cancel, self._log)
        plan = RunPlan(self.strategy, self.clients,
                       {c.id: float(self.flops[c.id] * c.spec.batch_size) for c in self.clients},
                       self.share, self._log,
                       frozenset(c.id for c in self.clients if arch_cache[c.arch_key][2]))
        self.threads = self.executor.prepare(plan)
        try:
            self.primary: Primary = choose_primary(
                cfg.primary_metric, self.task,
                label_histograms(fed).tolist() if self.task == "classification" else None,
                [c.name for c in self.clients])
        except ValueError as exc:
            raise ConfigError(f"primary_metric: {exc}") from None
        self.best: dict[int, dict[str, Any]] = {}
        """Per client, what it keeps from its best validation round: ``round``, ``val`` (its
        validation figures), ``scores`` (its ``local_*``/``global_*`` test figures then),
        ``model`` (its evaluation weights then: what a deployment would take) and ``extra`` (its
        strategy state then). Checkpointed with the run."""
        self.server_best: dict[str, dict[str, Any]] = {}
        """The same per server-side model label (``round``, ``val``, ``scores``, ``model``)."""
        self._references = self._reference_figures()
        self._references_written: set[int] = set()
        self.health = health.Monitor(
            self.task, health.chance_accuracy(fed.global_test.y.tolist()) if self.task == "classification" else 0.0,
            cfg.strategy.name, strategy_cls.pitfalls)

    @property
    def build(self) -> ModelFactory:
        """Builds a fresh model for a spec in this federation (initialisation uses the global RNG)."""
        fed = self.federation
        return ModelFactory(fed.input_spec, self.config.rep_dim, fed.n_outputs)

    def _server_build(self, spec: dict[str, Any]) -> FedModel:
        with seeded(self.config.seed, "server-build", json.dumps(spec, sort_keys=True), self.server.round):
            return self.build(spec).to(self.server_device)

    def _log(self, message: str, level: str = "info") -> None:
        self.events.append((level, message))

    def client_rows(self) -> list[dict[str, Any]]:
        """Roster rows for the ``clients`` table."""
        hist = label_histograms(self.federation)
        return [{"client_id": c.id, "name": c.name, "arch": c.arch, "model": c.spec.model,
                 "n_params": self.n_params[c.id], "flops": self.flops[c.id], "n_train": c.n_train,
                 "n_test": c.n_test, "label_counts": hist[c.id].tolist(), "device": str(self.devices[c.id]),
                 "tier": c.spec.tier, "join_round": c.spec.join_round,
                 "preprocessing": c.spec.preprocessing, "optimizer": c.spec.optimizer, "lr": c.spec.lr,
                 "epochs": c.spec.epochs, "batch_size": c.spec.batch_size} for c in self.clients]

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Run every round (from the last checkpoint when ``resume``) and return the summary.

        Failures are recorded on the run row (status, message, traceback) and re-raised.
        """
        start = 1
        threads_before = torch.get_num_threads()
        try:
            self.setup()
            threads.set_here(self.threads)  # this thread's count (engine/threads.py), restored below
            if resume:
                start = self.restore() + 1
            self.recorder.started(self.client_rows(), resume=resume, versions=versions(), manifest=self.manifest())
            for rnd in range(start, self.config.rounds + 1):
                if self.cancel.is_set():
                    self._checkpoint_before_stop(rnd - 1)
                    raise CancelledError("cancelled")
                self.round(rnd)
        except CancelledError:
            self._finish("cancelled")
            return self.summary()
        except KeyboardInterrupt:  # Ctrl+C in the foreground: resumable, not a failure
            self._finish("interrupted", error="interrupted (Ctrl+C); resume it to continue from its last checkpoint")
            raise
        except BaseException as exc:
            message = str(exc) if isinstance(exc, FedMosaicError) else f"{type(exc).__name__}: {exc}"
            self._finish("failed", error=message, tb=traceback.format_exc())
            raise
        finally:
            self.executor_close()
            threads.set_here(threads_before)
        if not self.summary()["final"]:
            message = ("the run ended without any evaluation figure (no client had test samples and no "
                       "round was evaluated); raise the test fraction or the global test fraction")
            self._finish("failed", error=message)
            raise DataError(message)
        self._finish("finished")
        return self.summary()

    def executor_close(self) -> None:
        executor = getattr(self, "executor", None)
        if executor is not None:
            executor.close()

    def round(self, rnd: int) -> RoundRecord:
        """One communication round."""
        t0 = time.perf_counter()
        cfg, strategy, clock = self.config, self.strategy, self.clock
        self.server.round = rnd
        rng = numpy_rng(cfg.seed, "round", rnd)
        joined = [c for c in self.clients if c.spec.join_round <= rnd]
        online = self.privacy.eligible(rnd, clock.online(rnd, joined, rng))  # spent budgets stop
        poisson = self.private_agg.dp is not None  # DP-FedAvg samples clients by Poisson sampling
        selected = clock.select(rnd, online, rng, cfg.fraction, self.private_agg.select if poisson else strategy.select)
        self.private_agg.begin(rnd, online, selected)
        messages = {c.id: strategy.configure(c) for c in selected}
        down = {cid: nbytes(m) for cid, m in messages.items()}
        plans = clock.plan(rnd, selected, down, rng)
        self._publish(rnd, selected, plans)
        jobs = []
        for c in selected:
            plan = plans[c.id]
            if plan.dropped:
                continue
            first_late = c.id not in self.participated and c.spec.join_round > 1
            if first_late:
                self._log(f"{c.name} joins at round {rnd} "
                          f"({'cold start' if c.spec.cold_start else 'warm start from the federation'})")
            jobs.append(ClientJob(c, rnd, self.states[c.id], messages[c.id], self.federation.clients[c.id],
                                  self.federation.public, self.devices[c.id],
                                  receive=not (first_late and c.spec.cold_start),
                                  work_fraction=plan.work_fraction, privacy=self.privacy.settings(c.id)))
        results = self.executor.map(jobs, self.env)
        results = self.adversaries.tamper(rnd, results, messages)  # compromised clients' payloads
        up = {r.client.id: nbytes(r.payload) for r in results}
        protocol = self.private_agg.traffic(results, up, down, selected)  # secure aggregation's messages
        timing = clock.settle(rnd, results, plans, up, down, protocol)
        kept_ids = {r.client.id for r in timing.kept}
        previous = dict(self.states)
        for r in results:
            if r.client.id in kept_ids:
                self.states[r.client.id] = r.state
                self.participated.add(r.client.id)
        if self.cancel.is_set():
            self.states = previous  # a cancelled run keeps the models of its last completed round
            raise CancelledError("cancelled")
        # server-side DP and secure aggregation compute the averaging strategies' mean (engine/privacy/server.py)
        (self.private_agg.aggregate if self.private_agg.active else strategy.aggregate)(timing.kept)
        strategy.after_aggregate()
        defence_notes = self.combiner.take_notes()

        per_client: dict[int, dict[str, float]] = {cid: dict(m) for cid, m in timing.client_metrics.items()}
        for cid, m in defence_notes.items():
            per_client.setdefault(cid, {}).update(m)
        for c in selected:
            m = per_client.setdefault(c.id, {})
            m["selected"] = 1.0
            m["bytes_down"] = float(down[c.id])
            m["bytes_up"] = float(up.get(c.id, 0))
            m["completed"] = 1.0 if c.id in kept_ids else 0.0
        for r in results:
            per_client[r.client.id].update(r.metrics)
        evaluate = rnd % cfg.eval_every == 0 or rnd == cfg.rounds
        round_metrics: dict[str, float] = {}
        weights = {c.id: float(c.n_test) for c in self.clients}
        if evaluate:
            round_metrics.update(self.evaluate(rnd, per_client))
            joined = [c for c in self.clients if c.spec.join_round <= rnd]
            round_metrics.update(self._keep_best(rnd, per_client, joined))
            per_ref, round_ref = self._references
            round_metrics.update(round_ref)
            for c in joined:  # constant over the run: once per client, at its first evaluation
                if c.id not in self._references_written:
                    per_client.setdefault(c.id, {}).update(per_ref[c.id])
                    self._references_written.add(c.id)
        round_metrics.update(summarize_clients(per_client, [k for k in record_keys(self.task)
                                                            if not k.startswith("best_")], weights))
        round_metrics.update(strategy.round_metrics())
        self.privacy.record(rnd, results, per_client, round_metrics)
        round_metrics.update(self.adversaries.defence_figures(defence_notes))
        for level, message in self.private_agg.record(per_client, round_metrics):
            self._log(message, level)
        round_metrics.update({
            "n_selected": float(len(selected)), "n_completed": float(len(kept_ids)),
            "bytes_up": float(sum(up.get(i, 0) for i in kept_ids)), "bytes_down": float(sum(down.values())),
            "wall_s": time.perf_counter() - t0, **timing.round_metrics,
        })
        for message in self.health.round(rnd, round_metrics):
            self._log(message, "warning")
        prev = self.history[-1].metrics if self.history else {}
        for key in ("bytes_up", "bytes_down", "wall_s"):
            round_metrics[f"cum_{key}"] = prev.get(f"cum_{key}", self._resumed_cum.get(key, 0.0)) + round_metrics[key]
        events = self.events + timing.events
        self.events = []
        record = RoundRecord(rnd, round_metrics, per_client)
        self.history.append(record)
        if self.recorder.round(rnd, round_metrics, per_client, events):
            self.cancel.set()  # another process asked (python -m engine cancel)
        if self.recorder.keeps_checkpoints and cfg.checkpoint_every and rnd % cfg.checkpoint_every == 0 \
                and rnd < cfg.rounds:
            self.checkpoint(rnd)
        if self.on_round is not None:
            self.on_round(record)
        self.observers.round(self, record)
        return record


    def _publish(self, rnd: int, selected: list[ClientInfo], plans: dict[int, Any]) -> None:
        """Record the round in progress on the run row (which clients train), for progress pages."""
        self.recorder.live({
            "round": rnd, "phase": "training", "started_at": time.time(),
            "selected": [c.id for c in selected],
            "training": [c.id for c in selected if not plans[c.id].dropped],
            "dropped": [c.id for c in selected if plans[c.id].dropped]})

    # ---- evaluation ----------------------------------------------------------------------------
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
            suffix = "" if label == "all" else f"[{json.loads(label)['arch']}]" if label.startswith("{") else f"[{label}]"
            out.update({f"server_{k}{suffix}": v for k, v in test.items()})
            out.update({f"server_val_{k}{suffix}": v for k, v in val_scores.items()})
            if self._improved(val_scores, self.server_best.get(label)):
                self.server_best[label] = {"round": rnd, "val": val_scores, "scores": test,
                                           "model": detach(state), "global_rows": len(gy)}
            kept = self.server_best[label]
            asr = self.adversaries.server_scores(model, fed.reference, self.server_device)
            out.update({f"server_{k}{suffix}": v for k, v in asr.items()})
            if full and kept.get("global_rows", len(gy)) < len(gy):  # kept on the sample: every row now
                load_into(model, kept["model"])
                whole = training.predict(model, fed.reference(gx.to(self.server_device)), batch_size=rows)
                kept["scores"] = training.metrics_many(self.task, [whole], [gy.to(self.server_device)],
                                                       fed.target_std)[0]
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
        """What a predictor ignoring the input reaches (:func:`engine.core.metrics.reference_scores`):
        per client on its local test split (fitted on its training labels), and on the global
        test set (fitted on the pooled training labels)."""
        fed = self.federation
        trains = [d.train.y for d in fed.clients]
        local = reference_scores(self.task, trains, [d.test.y for d in fed.clients], fed.n_outputs, fed.target_std)
        pooled = torch.cat(trains) if trains else torch.zeros(0)
        glob = reference_scores(self.task, [pooled], [fed.global_test.y], fed.n_outputs, fed.target_std)[0]
        per_client = {c.id: {f"ref_local_{k}": v for k, v in local[c.id].items()} for c in self.clients}
        round_level = summarize_clients(per_client, [f"ref_local_{k}" for k in local[0]] if local and local[0] else [])
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

    def _keep_best(self, rnd: int, per_client: dict[int, dict[str, float]], evaluated: list[ClientInfo]) -> dict[str, float]:
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
            self.best[c.id] = {"round": rnd, "val": val, "scores": scores,
                               "model": detach(self.strategy.eval_state(c, state), memo),
                               "extra": detach(state.get("extra", {}), memo),
                               "global_rows": self._scored_rows}
            m.update({f"best_{k}": v for k, v in scores.items()})
            m["best_round"] = float(rnd)
        self._rescore_best(per_client)
        view = {cid: {"best_round": float(b["round"]), **{f"best_{k}": v for k, v in b["scores"].items()}}
                for cid, b in self.best.items()}
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
        figures = global_figures(stale, self.strategy, {cid: b["model"] for cid, b in kept.items()},
                                 {cid: {"model": b["model"], "extra": b["extra"]} for cid, b in kept.items()},
                                 fed, self.devices, self.build, self.task)
        for cid, m in figures.items():
            b = kept[cid]
            b["scores"] = {**{k: v for k, v in b["scores"].items() if not k.startswith("global_")}, **m}
            b["global_rows"] = full
            per_client.setdefault(cid, {}).update({f"best_{k}": v for k, v in m.items()})

    # ---- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self, rnd: int) -> Path:
        """Save everything needed to continue after round ``rnd`` (tensors and plain values only,
        loadable with ``weights_only=True``)."""
        path = self.recorder.checkpoint_path(rnd)
        folder = path.parent
        last = self.history[-1].metrics if self.history else {}
        blob = {"round": rnd, "states": {str(k): v for k, v in self.states.items()},
                "strategy": self.strategy.state_dict(), "clock": self.clock.state_dict(),
                "participated": sorted(self.participated), "privacy": self.privacy.state_dict(),
                "private_aggregation": self.private_agg.state_dict(),
                "cum": {k: float(last.get(f"cum_{k}", 0.0)) for k in ("bytes_up", "bytes_down", "wall_s")},
                "best": {str(k): v for k, v in self.best.items()}, "server_best": dict(self.server_best),
                "references_written": sorted(self._references_written)}
        tmp = path.with_suffix(".tmp")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(blob, tmp)
            tmp.replace(path)
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise StorageError(f"cannot write checkpoint {path}: {getattr(exc, 'strerror', None) or exc}; "
                               f"free some disk space (or set FEDMOSAIC_HOME to another disk) and resume "
                               f"the run: its completed rounds are kept") from None
        self.recorder.checkpointed(rnd, path)
        return path

    def _checkpoint_before_stop(self, rnd: int) -> None:
        """Cancelled between rounds: checkpoint the last completed round, so resuming loses
        nothing (a cancel inside a round resumes from the newest periodic checkpoint)."""
        if (not self.recorder.keeps_checkpoints or not self.config.checkpoint_every
                or not self.history or self.history[-1].round != rnd):
            return
        if not any(row["round"] == rnd for row in self.recorder.checkpoints()):
            self.checkpoint(rnd)

    def restore(self) -> int:
        """Load the newest checkpoint of this run that loads and fits this run's models; return its
        round (0 when there is none). A checkpoint that cannot be decoded, lacks a part, or holds
        other clients, parameter names or shapes is skipped with a warning for an older one."""
        for row in self.recorder.checkpoints():
            path = Path(row["path"])
            if not path.exists():
                continue
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - a damaged file: fall back to an older one
                self._log(f"checkpoint of round {row['round']} is unreadable ({type(exc).__name__}); "
                          f"trying an older one", "warning")
                continue
            why = self._misfit(blob)
            if why is None:
                before = (self.states, self.strategy.state_dict(), self.clock.state_dict(),
                          set(self.participated), dict(self._resumed_cum), self.best, self.server_best,
                          set(self._references_written))
                privacy_before = self.privacy.state_dict()
                try:
                    self.states = {int(k): v for k, v in blob["states"].items()}
                    self.strategy.load_state_dict(blob["strategy"])
                    self.clock.load_state_dict(blob["clock"])
                    self.participated = {int(c) for c in blob["participated"]}
                    self.privacy.load_state_dict(dict(blob.get("privacy", {})))
                    self.private_agg.load_state_dict(dict(blob.get("private_aggregation", {})))
                    self._resumed_cum = {str(k): float(v) for k, v in dict(blob.get("cum", {})).items()}
                    self.best = {int(k): v for k, v in dict(blob.get("best", {})).items()}
                    self.server_best = dict(blob.get("server_best", {}))
                    self._references_written = {int(c) for c in blob.get("references_written", [])}
                    rnd = int(blob["round"])
                except Exception as exc:  # noqa: BLE001 - put back what was there, try an older one
                    (self.states, strategy, clock, self.participated, self._resumed_cum, self.best,
                     self.server_best, self._references_written) = before
                    self.strategy.load_state_dict(strategy)
                    self.clock.load_state_dict(clock)
                    self.privacy.load_state_dict(privacy_before)
                    why = f"{type(exc).__name__}: {str(exc)[:120]}"
            if why is not None:
                self._log(f"checkpoint of round {row['round']} does not fit this run ({why}); trying an "
                          f"older one", "warning")
                continue
            self.recorder.truncate_after(rnd)
            self._log(f"resumed from the checkpoint of round {rnd}")
            return rnd
        self.recorder.truncate_after(0)
        self._log("no usable checkpoint: restarting from round 1")
        return 0

    def _misfit(self, blob: Any) -> str | None:
        """Why a loaded checkpoint cannot continue this run (``None`` when it fits): a missing
        part, other clients, or model tensors whose names or shapes differ from this run's."""
        if not isinstance(blob, dict):
            return "not a checkpoint"
        missing = [k for k in ("round", "states", "strategy", "clock", "participated") if k not in blob]
        if missing:
            return f"no {', '.join(missing)}"
        states = blob["states"]
        if not isinstance(states, dict) or {str(k) for k in states} != {str(k) for k in self.states}:
            return "other clients"
        for key, state in states.items():
            ours = self.states[int(key)]["model"]
            model = state.get("model") if isinstance(state, dict) else None
            if not isinstance(model, dict) or set(model) != set(ours):
                return f"client {key}: other parameter names"
            for name, tensor in model.items():
                if not isinstance(tensor, torch.Tensor) or tensor.shape != ours[name].shape:
                    return f"client {key}: {name} has another shape"
        return None

    # ---- the end --------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """Reproducibility manifest: seed, partition fingerprint, devices, versions, and where each
        preprocessing statistic came from (federated, client, centralized)."""
        return {"seed": self.config.seed, "partition_fingerprint": self.federation.fingerprint,
                "devices": sorted({str(d) for d in self.devices.values()}), "versions": versions(),
                "torch_threads": torch.get_num_threads(), "preprocessing": self.federation.provenance,
                "primary_metric": self.primary.key, "primary_reason": self.primary.reason,
                "validation_rows": [len(d.val) for d in self.federation.clients]}

    def summary(self) -> dict[str, Any]:
        """Final figures: the last evaluated round's metrics (the round's own figures and those at
        each client's best validation round), and the primary metric's key."""
        last = next((r for r in reversed(self.history)
                     if any(k.startswith(("local_", "global_", "server_")) for k in r.metrics)), None)
        final: dict[str, Any] = dict(last.metrics) if last else {}
        if final and hasattr(self, "primary"):
            final["primary_metric"] = self.primary.key
        return {"run_id": self.run_id, "rounds_done": self.history[-1].round if self.history else 0,
                "final": final}

    def _finish(self, status: str, error: str | None = None, tb: str | None = None) -> None:
        """Record how the run ended: the observers (the models of the last completed round,
        MLflow; never stopping the run ending), then the recorder writes its status (so no row stays
        ``queued``/``running`` after its owner stopped) and the pending events."""
        try:
            done = self.history[-1].round if self.history else self.recorder.current_round()
            self.observers.ended(self, status, done)
        except Exception:  # noqa: BLE001
            log.warning("run %s: observers failed at the end", self.run_id, exc_info=True)
        events, self.events = self.events, []
        self.recorder.ended(status, error=error, tb=tb, summary=self.summary()["final"], events=events)
