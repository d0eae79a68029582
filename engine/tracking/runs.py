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
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, RunStateError
from engine.tracking.execution import Execution
from engine.tracking.launching import Launching, RunHandle
from engine.tracking.liveness import owner_alive, process_owner
from engine.tracking.schema import ACTIVE
from engine.tracking.storage import Store, default_db_path

if TYPE_CHECKING:  # engine.config loads torch: commands that only read the database never need it
    from engine.config import ExperimentConfig

log = logging.getLogger("fedmosaic.runs")

DEFAULT_WORKERS = 2
"""Runs trained at once by default (``FEDMOSAIC_WORKERS`` overrides)."""
HEARTBEAT_S = 5.0
"""Seconds between two heartbeats of a manager's runs."""


class RunManager(Launching, Execution):
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

    def __init__(
        self,
        store: Store | str | Path | None = None,
        *,
        workers: int | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        stale_after_s: float | None = None,
        root: Path | None = None,
        isolation: str | None = None,
    ) -> None:
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
        self._handles: dict[str, RunHandle] = {}
        self._queue: queue.Queue[RunHandle | None] = queue.Queue()
        self._closed = False
        self._stop = threading.Event()
        self.interrupted: list[str] = self.store.reap(self.stale_after_s)
        """Runs this manager marked ``interrupted`` when it started."""
        self._threads = [
            threading.Thread(target=self._worker, name=f"fedmosaic-run-{i}", daemon=True)
            for i in range(self.workers)
        ]
        self._beater = threading.Thread(target=self._heartbeat_loop, name="fedmosaic-heartbeat", daemon=True)
        for t in [*self._threads, self._beater]:
            t.start()
        atexit.register(self._at_exit)

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._closed

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
            raise RunStateError(
                f"run {run_id} is {row['status']}; only queued or running runs can be cancelled"
            )
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
                raise RunStateError(
                    f"run {run_id} is {row['status']} in another process; cancel it "
                    f"first (python -m engine cancel {run_id})"
                )
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

    def _enqueue(self, handle: RunHandle) -> None:
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
                message = (
                    "interrupted before it started: the app stopped; resume it to run it"
                    if status == "interrupted"
                    else "cancelled before it started"
                )
                self.store.update_run(
                    run_id,
                    status=status,
                    finished_at=time.time(),
                    live=None,
                    error=message if status == "interrupted" else None,
                )
                self.store.add_event(run_id, message, "warning" if status == "interrupted" else "info")
                self._forget(handle)
        return True

    def _forget(self, handle: RunHandle) -> None:
        with self._lock:
            if self._handles.get(handle.run_id) is handle:
                del self._handles[handle.run_id]
        handle.done.set()

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
