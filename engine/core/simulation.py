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

import logging
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any

import torch

from engine import threads
from engine.config import ExperimentConfig
from engine.core.checkpoints import Checkpoints
from engine.core.client import ClientJob
from engine.core.metrics import record_keys
from engine.core.recorder import Recorder
from engine.core.scores import summarize_clients
from engine.core.scoring import Scoring
from engine.core.seeding import numpy_rng
from engine.core.setup import SetUp
from engine.core.state import nbytes
from engine.errors import CancelledError, DataError, FedMosaicError
from engine.tracking.observers import observers_for
from engine.tracking.recorder import SqliteRecorder
from engine.tracking.storage import Store, default_data_dir
from engine.types import ClientInfo

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


class Simulation(SetUp, Scoring, Checkpoints):
    """One run of one config.

    :param store: where figures go (``None``: memory only, see :attr:`history`).
    :param run_id: the run row to write to (created if ``store`` is given and this is ``None``).
    :param recorder: where the records go, instead of ``store`` (:mod:`engine.core.recorder`).
    :param cancel: set it to stop the run between batches; the run ends ``cancelled``.
    :param on_round: called after each recorded round (progress bars).
    :param share: threads this run may use (:func:`engine.threads.share`; a run manager divides
        the process's budget among the runs it trains at once); default the whole budget.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        store: Store | None = None,
        run_id: str | None = None,
        root: Path | None = None,
        cancel: Event | None = None,
        on_round: Callable[[RoundRecord], None] | None = None,
        share: int | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.root = root or default_data_dir()
        self.cancel = cancel or Event()
        self.on_round = on_round
        self.history: list[RoundRecord] = []
        self.events: list[tuple[str, str]] = []  # before setup: a failing setup still records its end
        self._resumed_cum: dict[str, float] = {}  # cumulative figures up to a restored checkpoint
        if recorder is None:
            recorder = (
                SqliteRecorder(store, run_id, config.model_dump(mode="json"))
                if store is not None
                else Recorder()
            )
        self.recorder = recorder
        """Where the records go (:mod:`engine.core.recorder`): the store's run row, or nowhere."""
        self.run_id = self.recorder.run_id
        self.roster = config.roster()
        self.share = threads.share(1) if share is None else max(1, int(share))
        self.threads = 1
        """Intra-op threads of the run's thread, decided in :meth:`setup` (applied by :meth:`run`)."""
        self.observers = observers_for(self)
        """Who else watches the records (the kept models, MLflow): :mod:`engine.tracking.observers`."""

    def _log(self, message: str, level: str = "info") -> None:
        self.events.append((level, message))

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
            self.recorder.started(
                self.client_rows(), resume=resume, versions=versions(), manifest=self.manifest()
            )
            for rnd in range(start, self.config.rounds + 1):
                if self.cancel.is_set():
                    self._checkpoint_before_stop(rnd - 1)
                    raise CancelledError("cancelled")
                self.round(rnd)
        except CancelledError:
            self._finish("cancelled")
            return self.summary()
        except KeyboardInterrupt:  # Ctrl+C in the foreground: resumable, not a failure
            self._finish(
                "interrupted", error="interrupted (Ctrl+C); resume it to continue from its last checkpoint"
            )
            raise
        except BaseException as exc:
            message = str(exc) if isinstance(exc, FedMosaicError) else f"{type(exc).__name__}: {exc}"
            self._finish("failed", error=message, tb=traceback.format_exc())
            raise
        finally:
            self.executor_close()
            threads.set_here(threads_before)
        if not self.summary()["final"]:
            message = (
                "the run ended without any evaluation figure (no client had test samples and no "
                "round was evaluated); raise the test fraction or the global test fraction"
            )
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
        selected = clock.select(
            rnd, online, rng, cfg.fraction, self.private_agg.select if poisson else strategy.select
        )
        self.private_agg.begin(rnd, online, selected)
        messages = {c.id: strategy.configure(c) for c in selected}
        down = {cid: nbytes(m) for cid, m in messages.items()}
        plans = clock.plan(rnd, selected, down, rng)
        self._publish(rnd, selected, plans)
        results = self.executor.map(self._jobs(rnd, selected, plans, messages), self.env)
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
        # server-side DP and secure aggregation compute the averaging strategies' mean
        # (engine/privacy/server.py)
        (self.private_agg.aggregate if self.private_agg.active else strategy.aggregate)(timing.kept)
        strategy.after_aggregate()
        defence_notes = self.combiner.take_notes()

        per_client = self._client_figures(
            selected, results, timing.client_metrics, defence_notes, down, up, kept_ids
        )
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
        round_metrics.update(
            summarize_clients(
                per_client, [k for k in record_keys(self.task) if not k.startswith("best_")], weights
            )
        )
        round_metrics.update(strategy.round_metrics())
        self.privacy.record(rnd, results, per_client, round_metrics)
        round_metrics.update(self.adversaries.defence_figures(defence_notes))
        for level, message in self.private_agg.record(per_client, round_metrics):
            self._log(message, level)
        round_metrics.update(
            {
                "n_selected": float(len(selected)),
                "n_completed": float(len(kept_ids)),
                "bytes_up": float(sum(up.get(i, 0) for i in kept_ids)),
                "bytes_down": float(sum(down.values())),
                "wall_s": time.perf_counter() - t0,
                **timing.round_metrics,
            }
        )
        for message in self.health.round(rnd, round_metrics):
            self._log(message, "warning")
        return self._record(rnd, round_metrics, per_client, timing.events)

    def _jobs(
        self, rnd: int, selected: list[ClientInfo], plans: dict[int, Any], messages: dict[int, dict[str, Any]]
    ) -> list[ClientJob]:
        """The turns of the selected clients the clock did not drop, in client order; a late joiner's
        first turn says whether it starts cold (without the federation's message)."""
        jobs = []
        for c in selected:
            plan = plans[c.id]
            if plan.dropped:
                continue
            first_late = c.id not in self.participated and c.spec.join_round > 1
            if first_late:
                self._log(
                    f"{c.name} joins at round {rnd} "
                    f"({'cold start' if c.spec.cold_start else 'warm start from the federation'})"
                )
            jobs.append(
                ClientJob(
                    c,
                    rnd,
                    self.states[c.id],
                    messages[c.id],
                    self.federation.clients[c.id],
                    self.federation.public,
                    self.devices[c.id],
                    receive=not (first_late and c.spec.cold_start),
                    work_fraction=plan.work_fraction,
                    privacy=self.privacy.settings(c.id),
                )
            )
        return jobs

    @staticmethod
    def _client_figures(
        selected: list[ClientInfo],
        results: list[Any],
        timing: dict[int, dict[str, float]],
        notes: dict[int, dict[str, float]],
        down: dict[int, int],
        up: dict[int, int],
        kept_ids: set[int],
    ) -> dict[int, dict[str, float]]:
        """Each client's figures of the round: the clock's, the defence's notes, what it was sent
        and sent back, whether its update counted, and its turn's own metrics."""
        per_client: dict[int, dict[str, float]] = {cid: dict(m) for cid, m in timing.items()}
        for cid, m in notes.items():
            per_client.setdefault(cid, {}).update(m)
        for c in selected:
            m = per_client.setdefault(c.id, {})
            m["selected"] = 1.0
            m["bytes_down"] = float(down[c.id])
            m["bytes_up"] = float(up.get(c.id, 0))
            m["completed"] = 1.0 if c.id in kept_ids else 0.0
        for r in results:
            per_client[r.client.id].update(r.metrics)
        return per_client

    def _record(
        self,
        rnd: int,
        round_metrics: dict[str, float],
        per_client: dict[int, dict[str, float]],
        clock_events: list[tuple[str, str]],
    ) -> RoundRecord:
        """Cumulative costs, then the round to the history, the recorder (one transaction), a
        periodic checkpoint, the progress callback and the observers."""
        cfg = self.config
        prev = self.history[-1].metrics if self.history else {}
        for key in ("bytes_up", "bytes_down", "wall_s"):
            round_metrics[f"cum_{key}"] = (
                prev.get(f"cum_{key}", self._resumed_cum.get(key, 0.0)) + round_metrics[key]
            )
        events = self.events + clock_events
        self.events = []
        record = RoundRecord(rnd, round_metrics, per_client)
        self.history.append(record)
        if self.recorder.round(rnd, round_metrics, per_client, events):
            self.cancel.set()  # another process asked (python -m engine cancel)
        if (
            self.recorder.keeps_checkpoints
            and cfg.checkpoint_every
            and rnd % cfg.checkpoint_every == 0
            and rnd < cfg.rounds
        ):
            self.checkpoint(rnd)
        if self.on_round is not None:
            self.on_round(record)
        self.observers.round(self, record)
        return record

    def _publish(self, rnd: int, selected: list[ClientInfo], plans: dict[int, Any]) -> None:
        """Record the round in progress on the run row (which clients train), for progress pages."""
        self.recorder.live(
            {
                "round": rnd,
                "phase": "training",
                "started_at": time.time(),
                "selected": [c.id for c in selected],
                "training": [c.id for c in selected if not plans[c.id].dropped],
                "dropped": [c.id for c in selected if plans[c.id].dropped],
            }
        )

    # ---- the end --------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """Reproducibility manifest: seed, partition fingerprint, devices, versions, and where each
        preprocessing statistic came from (federated, client, centralized)."""
        return {
            "seed": self.config.seed,
            "partition_fingerprint": self.federation.fingerprint,
            "devices": sorted({str(d) for d in self.devices.values()}),
            "versions": versions(),
            "torch_threads": torch.get_num_threads(),
            "preprocessing": self.federation.provenance,
            "primary_metric": self.primary.key,
            "primary_reason": self.primary.reason,
            "validation_rows": [len(d.val) for d in self.federation.clients],
        }

    def summary(self) -> dict[str, Any]:
        """Final figures: the last evaluated round's metrics (the round's own figures and those at
        each client's best validation round), and the primary metric's key."""
        last = next(
            (
                r
                for r in reversed(self.history)
                if any(k.startswith(("local_", "global_", "server_")) for k in r.metrics)
            ),
            None,
        )
        final: dict[str, Any] = dict(last.metrics) if last else {}
        if final and hasattr(self, "primary"):
            final["primary_metric"] = self.primary.key
        return {
            "run_id": self.run_id,
            "rounds_done": self.history[-1].round if self.history else 0,
            "final": final,
        }

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
