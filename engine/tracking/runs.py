"""The run manager: runs launched from the browser go on in the background, several at once, and
nothing is lost when the server stops.

One :class:`RunManager` per process and database (:func:`get_manager`): a bounded pool of worker
threads (a queue beyond it), a cancel event per run checked between mini-batches, and a heartbeat
thread that marks the manager's runs alive every few seconds and picks up cancellations asked
for by other processes (``python -m engine cancel``). Experiment-tracker practice (Sacred's
heartbeat and fail trace, MLflow's run status) applied to the federated round loop of
:mod:`engine.core.simulation`, which it never copies: a worker just calls ``Simulation.run``.

Lifecycle: ``queued -> running -> finished | failed | cancelled | interrupted``. At start-up the
manager marks ``interrupted`` every ``queued``/``running`` run whose owning process is dead or whose
heartbeat stopped. ``resume`` continues an interrupted, cancelled or failed run from its newest
checkpoint, under the same run id, and ends with the same figures as an uninterrupted run (every
per-round random draw derives from the seed and the round). ``fork`` makes a new config from any
run's; ``sweep`` launches one config over several seeds and strategies as one group.

Worker threads never touch streamlit: they write to SQLite through :class:`engine.tracking.storage.Store`
(one connection per thread) and the pages poll :meth:`RunManager.progress`.
"""

from __future__ import annotations

import atexit
import contextvars
import copy
import logging
import os
import queue
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, FedMosaicError
from engine.tracking.recorder import SqliteRecorder
from engine.tracking.liveness import owner_alive, process_owner
from engine.tracking.schema import ACTIVE, RESUMABLE
from engine.tracking.storage import default_db_path, Store

if TYPE_CHECKING:  # engine.config loads torch: commands that only read the database never need it
    from engine.config import ExperimentConfig

log = logging.getLogger("fedmosaic.runs")

DEFAULT_WORKERS = 2
"""Runs trained at once by default (``FEDMOSAIC_WORKERS`` overrides)."""
HEARTBEAT_S = 5.0
"""Seconds between two heartbeats of a manager's runs."""
WORKER_NICE = 5
"""How much lower the scheduling priority of a run's own process is (``isolation="process"``):
the server's pages, and the user's other programs, come first."""


class RunStateError(FedMosaicError):
    """The run's status does not allow this (resume a finished run, delete a run another process
    is running); the message says what to do instead."""


@dataclass
class _Handle:
    """A run this manager queued or is running."""

    run_id: str
    config: ExperimentConfig
    resume: bool
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    reason: str = ""  # why cancel is set: "user" or "shutdown"
    # the launcher's context: a run launched from the app reads only the allowed roots
    # (engine.access), one launched from the command line any path its user gave
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class RunManager:
    """Background runs of one database.

    :param store: the database (a :class:`Store`, a path, or ``None`` for the default).
    :param workers: runs trained at once; more wait in the queue (default ``FEDMOSAIC_WORKERS``
        or 2).
    :param heartbeat_s: seconds between heartbeats.
    :param stale_after_s: a run whose owner cannot be checked (another host) is presumed dead
        when its heartbeat is older than this (default ``max(30, 6 * heartbeat_s)``).
    :param root: data directory for datasets (default: the per-user data directory).
    :param isolation: ``"thread"``: each run trains in a worker thread of this process (the
        command line, tests); ``"process"``: each in a process of its own (:mod:`engine.tracking.worker`)
        at a lower scheduling priority, so a server's pages stay responsive while runs train (the
        app's choice). ``FEDMOSAIC_ISOLATION`` sets the default.
    """

    def __init__(self, store: Store | str | Path | None = None, *, workers: int | None = None,
                 heartbeat_s: float = HEARTBEAT_S, stale_after_s: float | None = None,
                 root: Path | None = None, isolation: str | None = None) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        env_workers = os.environ.get("FEDMOSAIC_WORKERS")
        self.workers = max(1, int(workers or (env_workers and int(env_workers)) or DEFAULT_WORKERS))
        from engine import threads

        self.run_share = threads.share(self.workers)
        """Threads each run may use: the process's budget divided by the runs trained at once."""
        self.isolation = isolation or os.environ.get("FEDMOSAIC_ISOLATION") or "thread"
        if self.isolation not in ("thread", "process"):
            raise ConfigError(f"isolation must be 'thread' or 'process', not {self.isolation!r}")
        self.heartbeat_s = float(heartbeat_s)
        self.stale_after_s = float(stale_after_s or max(30.0, 6 * self.heartbeat_s))
        self.reap_every_s = max(60.0, self.stale_after_s)
        self.root = root
        self.owner = process_owner()
        self._lock = threading.RLock()
        self._handles: dict[str, _Handle] = {}
        self._queue: queue.Queue[_Handle | None] = queue.Queue()
        self._closed = False
        self._stop = threading.Event()
        self.interrupted: list[str] = self.store.reap(self.stale_after_s)
        """Runs this manager marked ``interrupted`` when it started."""
        self._threads = [threading.Thread(target=self._worker, name=f"fedmosaic-run-{i}", daemon=True)
                         for i in range(self.workers)]
        self._beater = threading.Thread(target=self._heartbeat_loop, name="fedmosaic-heartbeat", daemon=True)
        for t in [*self._threads, self._beater]:
            t.start()
        atexit.register(self._at_exit)

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closed

    # ---- launching ----------------------------------------------------------------------------
    def submit(self, config: ExperimentConfig | Mapping[str, Any], *, name: str | None = None,
               group_id: str | None = None, tags: Iterable[str] = (), parent_id: str | None = None,
               variant: str | None = None) -> str:
        """Queue a run of ``config`` and return its id. It starts as soon as a worker is free.

        The config is validated (:func:`engine.validate.check`) and the database and checkpoint
        folder are checked writable with enough free space before any row is written.

        :param parent_id: the run this config was forked from (recorded for lineage).
        :raises ConfigError: invalid config (:class:`CompatibilityError` when the strategy cannot
            combine the roster).
        :raises StorageError: the database or data directory cannot take a run.
        """
        config = _as_config(config)
        self._check_open()
        self._validate(config)
        self.store.check_writable()
        run_id = self.store.create_run(config.model_dump(mode="json"), status="queued", name=name,
                                       group_id=group_id, tags=tags, owner=self.owner,
                                       variant=variant, parent_id=parent_id)
        self._enqueue(_Handle(run_id, config, resume=False))
        return run_id

    def sweep(self, config: ExperimentConfig | Mapping[str, Any], *, seeds: Iterable[int],
              strategies: list[dict[str, Any] | str] | None = None, name: str | None = None,
              tags: Iterable[str] = (), defences: list[dict[str, Any] | str] | None = None) -> tuple[str, list[str]]:
        """Launch ``config`` once per seed and strategy (and defence), as one group.

        :param strategies: ``{"name": ..., **params}`` dicts (or bare names) replacing
            ``config.strategy``; ``None`` keeps the config's strategy.
        :param defences: ``{"name": ..., **params}`` dicts (or names) replacing ``config.defence``,
            each run with every strategy; with more than one, variants read ``strategy · defence``.
        :returns: ``(group_id, run_ids)``; runs of one strategy share a ``variant`` label, so
            their figures can be averaged over seeds.
        :raises ConfigError: no seed, a strategy listed twice, or any member invalid (nothing is
            launched then).
        """
        config = _as_config(config)
        self._check_open()
        seeds = list(dict.fromkeys(int(s) for s in seeds))
        if not seeds:
            raise ConfigError("a sweep needs at least one seed, e.g. seeds [0, 1, 2]")
        if any(s < 0 or s > 2**31 - 1 for s in seeds):
            raise ConfigError("sweep seeds must be between 0 and 2147483647")
        base = config.model_dump(mode="json")
        specs = [strategy_dict(s) for s in (strategies or [base["strategy"]])]
        guards = [strategy_dict(d) for d in (defences or [base["defence"]])]
        members: list[tuple[str, int, ExperimentConfig]] = []
        labels: list[str] = []
        for spec in specs:
            for guard in guards:
                label = strategy_label(spec)
                if len(guards) > 1:
                    from engine.robustness.design import defence_label

                    label = f"{label} · {defence_label(guard)}"
                if label in labels:
                    raise ConfigError(f"the sweep lists '{label}' twice; remove one")
                labels.append(label)
                for seed in seeds:
                    members.append((label, seed, _parse({**base, "strategy": spec, "defence": guard,
                                                                "seed": seed})))
        for _, _, member in members:
            self._validate(member)
        self.store.check_writable()
        group_id = uuid.uuid4().hex[:12]
        title = name or config.name
        created: list[str] = []
        try:
            for label, seed, member in members:
                created.append(self.store.create_run(
                    member.model_dump(mode="json"), status="queued", name=f"{title} · {label} · seed {seed}",
                    group_id=group_id, tags=tags, owner=self.owner, variant=label))
        except FedMosaicError:
            for run_id in created:
                self.store.delete_run(run_id)
            raise
        for run_id, (_, _, member) in zip(created, members, strict=True):
            self._enqueue(_Handle(run_id, member, resume=False))
        return group_id, created

    def resume(self, run_id: str) -> None:
        """Continue an interrupted, cancelled or failed run from its newest checkpoint (from
        round 1 when it has none), under the same id.

        :raises RunStateError: the run finished, or is queued/running (here or elsewhere).
        """
        self._check_open()
        with self._lock:
            if run_id in self._handles:
                raise RunStateError(f"run {run_id} is already {self.store.get_run(run_id)['status']} here")
        row = self.store.get_run(run_id)
        if row["status"] in ACTIVE:
            self.store.reap(self.stale_after_s)
            row = self.store.get_run(run_id)
        status = row["status"]
        if status in ACTIVE:
            raise RunStateError(f"run {run_id} is {status} in another process; cancel it there "
                                f"(python -m engine cancel {run_id}) or wait for it")
        if status not in RESUMABLE:
            raise RunStateError(f"run {run_id} already finished all its {row['rounds']} rounds; "
                                f"fork it to run a variation")
        config = _parse(row["config"])
        self.store.check_writable()
        if not self.store.claim(run_id, self.owner):
            raise RunStateError(f"run {run_id} was just resumed by another process")
        self._enqueue(_Handle(run_id, config, resume=True))

    def fork(self, run_id: str, changes: Mapping[str, Any] | None = None) -> ExperimentConfig:
        """A new config from run ``run_id``'s with ``changes`` deep-merged in (nested dicts merge;
        lists and values replace; a strategy, partition or model of another ``name``/``method``/
        ``arch`` replaces the old one whole). Validated, not launched: pass it to :meth:`submit`
        (with ``parent_id=run_id`` to record where it came from).

        :raises ConfigError: the merged config is invalid.
        """
        base = self.store.get_run(run_id)["config"]
        config = _parse(deep_merge(base, dict(changes or {})))
        self._validate(config)
        return config

    # ---- controlling --------------------------------------------------------------------------
    def cancel(self, run_id: str) -> None:
        """Stop a queued or running run; it ends ``cancelled`` (resumable). A run of another live
        process is asked to stop through the database; one whose process died is marked now.

        :raises RunStateError: the run is not queued or running.
        """
        if self._cancel_own(run_id, "user"):
            return
        row = self.store.get_run(run_id)
        if row["status"] not in ACTIVE:
            raise RunStateError(f"run {run_id} is {row['status']}; only queued or running runs can be cancelled")
        alive = owner_alive(row.get("owner"))
        last = max(row.get("heartbeat_at") or 0, row.get("started_at") or 0, row.get("created_at") or 0)
        if alive is False or (alive is None and time.time() - last > self.stale_after_s):
            self.store.update_run(run_id, status="cancelled", finished_at=time.time(), live=None)
            self.store.add_event(run_id, "cancelled (the process that ran it had stopped)", "warning")
        else:
            self.store.request_cancel(run_id)

    def delete(self, run_id: str) -> None:
        """Remove a run: its rows (one transaction) and its checkpoint files. A run of this
        manager is cancelled first.

        :raises RunStateError: another live process is running it (cancel it first).
        """
        with self._lock:
            handle = self._handles.get(run_id)
        if handle is not None:
            self._cancel_own(run_id, "user")
            if not handle.done.wait(120):
                raise RunStateError(f"run {run_id} did not stop within 2 minutes; try again")
        else:
            row = self.store.get_run(run_id)
            if row["status"] in ACTIVE and run_id not in self.store.reap(self.stale_after_s):
                raise RunStateError(f"run {run_id} is {row['status']} in another process; cancel it "
                                    f"first (python -m engine cancel {run_id})")
        self.store.delete_run(run_id)

    def rename(self, run_id: str, name: str) -> None:
        """Give a run a new display name."""
        self.store.rename_run(run_id, name)

    def set_tags(self, run_id: str, tags: list[str]) -> list[str]:
        """Replace a run's tags; returns them cleaned (trimmed, no duplicates)."""
        return self.store.set_tags(run_id, tags)

    # ---- watching -----------------------------------------------------------------------------
    def progress(self, run_id: str) -> dict[str, Any]:
        """Where a run stands (see :meth:`engine.tracking.storage.Store.progress`), plus ``queue_position``
        (1-based, ``None`` unless it waits in this manager's queue)."""
        out = self.store.progress(run_id)
        with self._lock:
            waiting = [h.run_id for h in self._handles.values() if not h.started]
        out["queue_position"] = waiting.index(run_id) + 1 if run_id in waiting else None
        return out

    def wait(self, run_id: str, timeout: float | None = None) -> str:
        """Block until the run leaves ``queued``/``running`` (or ``timeout`` seconds pass);
        return its status."""
        with self._lock:
            handle = self._handles.get(run_id)
        if handle is not None:
            handle.done.wait(timeout)
            return self.store.get_run(run_id)["status"]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.store.get_run(run_id)["status"]
            if status not in ACTIVE or (deadline is not None and time.monotonic() >= deadline):
                return status
            time.sleep(0.2)

    def active(self) -> list[str]:
        """Ids of this manager's queued and running runs, in launch order."""
        with self._lock:
            return list(self._handles)

    def shutdown(self, wait: bool = True, timeout: float = 30.0) -> None:
        """Stop the manager. ``wait``: let queued and running runs finish first. Otherwise the
        running ones are stopped between batches and, like queued ones, left ``interrupted``
        (resumable)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if not wait:
                for handle in list(self._handles.values()):
                    self._cancel_own(handle.run_id, "shutdown")
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(None if wait else timeout)
        self._stop.set()
        self._beater.join(timeout)
        with _managers_lock:
            for key, manager in list(_managers.items()):
                if manager is self:
                    del _managers[key]

    # ---- internals ----------------------------------------------------------------------------
    def _validate(self, config: ExperimentConfig) -> None:
        from engine.validate import check

        check(config, self.root)

    def _check_open(self) -> None:
        if self._closed:
            raise RunStateError("this run manager was shut down; create a new one with get_manager()")

    def _enqueue(self, handle: _Handle) -> None:
        with self._lock:
            self._handles[handle.run_id] = handle
            if self._closed:  # shut down meanwhile: leave it resumable rather than queued forever
                self._cancel_own(handle.run_id, "shutdown")
                return
        self._queue.put(handle)

    def _cancel_own(self, run_id: str, reason: str) -> bool:
        """Cancel one of this manager's runs; ``False`` if it has none with that id."""
        with self._lock:
            handle = self._handles.get(run_id)
            if handle is None:
                return False
            handle.reason = handle.reason or reason
            handle.cancel.set()
            if not handle.started:
                status = "interrupted" if handle.reason == "shutdown" else "cancelled"
                message = ("interrupted before it started: the app stopped; resume it to run it"
                           if status == "interrupted" else "cancelled before it started")
                self.store.update_run(run_id, status=status, finished_at=time.time(), live=None,
                                      error=message if status == "interrupted" else None)
                self.store.add_event(run_id, message, "warning" if status == "interrupted" else "info")
                self._forget(handle)
        return True

    def _forget(self, handle: _Handle) -> None:
        with self._lock:
            if self._handles.get(handle.run_id) is handle:
                del self._handles[handle.run_id]
        handle.done.set()

    def _worker(self) -> None:
        while True:
            handle = self._queue.get()
            if handle is None:
                return
            with self._lock:
                if handle.cancel.is_set() or handle.done.is_set():
                    self._forget(handle)
                    continue
                handle.started = True
            try:
                handle.context.run(self._execute, handle)
            except BaseException:
                log.exception("run %s: unexpected error in the worker", handle.run_id)
            finally:
                self._forget(handle)

    def _execute(self, handle: _Handle) -> None:
        from engine.core.simulation import Simulation

        run_id = handle.run_id
        sim = None
        failure: tuple[str, str] | None = None
        if self.isolation == "process":
            failure = self._run_process(handle)
        else:
            try:
                sim = Simulation(handle.config, store=self.store, run_id=run_id, root=self.root,
                                 cancel=handle.cancel, share=self.run_share)
                sim.run(resume=handle.resume)
            except Exception as exc:  # noqa: BLE001 - Simulation records its own failures on the row
                message = str(exc) if isinstance(exc, FedMosaicError) else f"{type(exc).__name__}: {exc}"
                failure = (message, traceback.format_exc())
                log.info("run %s failed: %s", run_id, message)
        row = self.store.get_run(run_id)
        if row["status"] in ACTIVE:  # the run could not record how it ended (setup error, full disk)
            recorder = SqliteRecorder(self.store, run_id)
            if failure is not None:
                recorder.ended("failed", error=failure[0], tb=failure[1])
            else:
                recorder.ended("cancelled" if handle.cancel.is_set() else "finished",
                               summary=sim.summary()["final"] if sim else {})
        if handle.reason == "shutdown":
            row = self.store.get_run(run_id)
            if row["status"] in ("cancelled", *ACTIVE):
                ckpt = next(iter(self.store.checkpoints(run_id)), None)
                where = f"the checkpoint of round {ckpt['round']}" if ckpt else "round 1"
                message = (f"interrupted at round {row['current_round']}: the app stopped; resume "
                           f"continues from {where}")
                self.store.update_run(run_id, status="interrupted", error=message, live=None)
                self.store.add_event(run_id, message, "warning")

    def _run_process(self, handle: _Handle) -> tuple[str, str] | None:
        """Train the run in ``python -m engine.tracking.worker`` and wait for it; a cancel becomes
        SIGTERM (the worker stops between batches and records ``cancelled``). Returns the failure when the
        process ended badly (its message and the end of its error output), else ``None``."""
        import subprocess
        import tempfile

        from engine.access import paths_trusted

        cmd = [sys.executable, "-m", "engine.tracking.worker", "--db", str(self.store.path),
               "--run", handle.run_id, "--share", str(self.run_share), "--nice", str(WORKER_NICE)]
        if self.root is not None:
            cmd += ["--root", str(self.root)]
        if handle.resume:
            cmd.append("--resume")
        if paths_trusted():  # this runs in the launcher's context (handle.context)
            cmd.append("--trusted")
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    cwd=str(Path(__file__).resolve().parents[2]))  # the repository root
            asked = False
            while True:
                try:
                    proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if handle.cancel.is_set() and not asked:
                        proc.terminate()
                        asked = True
            if proc.returncode == 0:
                return None
            err.seek(0)
            tail = err.read()[-4000:]
        last = next((line for line in reversed(tail.strip().splitlines()) if line.strip()), "")
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        log.info("run %s: its process ended with %s", handle.run_id, how)
        return (f"the run's process ended with {how}" + (f": {last}" if last else ""), tail)

    def _heartbeat_loop(self) -> None:
        last_reap = time.monotonic()
        while not self._stop.wait(self.heartbeat_s):
            try:
                flagged = self.store.beat(self.active())
                for run_id in flagged:
                    self._cancel_own(run_id, "user")
                if time.monotonic() - last_reap >= self.reap_every_s:
                    last_reap = time.monotonic()
                    self.store.reap(self.stale_after_s)
            except Exception:
                log.warning("heartbeat failed; retrying", exc_info=True)
        self.store.close()

    def _at_exit(self) -> None:
        if not self._closed:
            self.shutdown(wait=False, timeout=10.0)


_managers: dict[Path, RunManager] = {}
_managers_lock = threading.Lock()


def get_manager(db_path: str | Path | None = None, workers: int | None = None, **options: Any) -> RunManager:
    """The process-wide :class:`RunManager` of a database (default: ``FEDMOSAIC_DB`` or the
    per-user one), created on first use (which marks runs left behind by dead processes
    ``interrupted``). ``workers`` and ``options`` apply only when it is created."""
    path = Path(db_path).expanduser() if db_path is not None else default_db_path()
    key = path.resolve()
    with _managers_lock:
        manager = _managers.get(key)
        if manager is None or manager.closed:
            manager = RunManager(Store(path), workers=workers, **options)
            _managers[key] = manager
        return manager


# ---- helpers ------------------------------------------------------------------------------------
def _parse(data: dict[str, Any] | str) -> ExperimentConfig:
    from engine.config import parse_config

    return parse_config(data)


def _as_config(config: ExperimentConfig | Mapping[str, Any]) -> ExperimentConfig:
    from engine.config import ExperimentConfig

    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, Mapping):
        return _parse(dict(config))
    raise ConfigError(f"expected an experiment config, got {type(config).__name__}")


def strategy_dict(spec: Mapping[str, Any] | str) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"name": spec}
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ConfigError(f'a sweep strategy needs a "name", e.g. {{"name": "fedprox", "mu": 0.1}}; got {spec!r}')
    return dict(spec)


def strategy_label(spec: Mapping[str, Any] | str) -> str:
    """``"fedprox (mu=0.1)"``: the strategy's name and the parameters that differ from its
    defaults."""
    from engine.strategies import STRATEGIES

    spec = strategy_dict(spec)
    name = spec["name"]
    try:
        defaults = STRATEGIES.get(name).Params().model_dump()
    except Exception:  # noqa: BLE001 - unknown names are reported by validation
        defaults = {}
    changed = [f"{k}={v}" for k, v in sorted(spec.items()) if k != "name" and defaults.get(k, object()) != v]
    return f"{name} ({', '.join(changed)})" if changed else name


_IDENTITY = ("name", "method", "arch")


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in: nested dicts merge key by key, anything else replaces;
    a dict whose ``name``/``method``/``arch`` changes replaces the old dict whole (another
    strategy's parameters do not carry over)."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping) and not any(
                k in value and k in old and value[k] != old[k] for k in _IDENTITY):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_path(tree: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Changes for :func:`deep_merge` from a dotted path (``"strategy.mu"``, ``"clients.0.lr"``);
    list items are addressed by index and the list is copied with that item changed."""
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"'{dotted}' is not a config path; use dots between names, e.g. strategy.mu")

    def build(node: Any, rest: list[str]) -> Any:
        if not rest:
            return value
        head, tail = rest[0], rest[1:]
        if isinstance(node, list):
            if not head.isdigit() or int(head) >= len(node):
                raise ConfigError(f"'{dotted}': {head} is not an index of a list of {len(node)}")
            items = copy.deepcopy(node)
            item = items[int(head)]
            change = build(item, tail)
            items[int(head)] = deep_merge(item, change) if isinstance(item, dict) and isinstance(change, dict) \
                else change
            return items
        child = node.get(head) if isinstance(node, dict) else None
        return {head: build(child, tail)}

    return build(tree, parts)
