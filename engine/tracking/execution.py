"""The run manager's worker side (:class:`engine.tracking.runs.RunManager`): worker threads take
queued runs and train them, in this process (a :class:`engine.core.simulation.Simulation`) or in a
worker process of their own (``python -m engine.tracking.worker``); a heartbeat thread marks the
manager's runs alive, picks up cancels asked by other processes and reaps runs left behind."""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import FedMosaicError
from engine.tracking.recorder import SqliteRecorder
from engine.tracking.schema import ACTIVE

if TYPE_CHECKING:
    from engine.tracking.launching import RunHandle

log = logging.getLogger("fedmosaic.runs")

WORKER_NICE = 5
"""How much lower the scheduling priority of a run's own process is (``isolation="process"``):
the server's pages, and the user's other programs, come first."""


class Execution:
    """Worker threads, the optional worker process and the heartbeat of a run manager."""

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

    def _execute(self, handle: RunHandle) -> None:
        from engine.core.simulation import Simulation

        run_id = handle.run_id
        sim = None
        failure: tuple[str, str] | None = None
        if self.isolation == "process":
            failure = self._run_process(handle)
        else:
            try:
                sim = Simulation(
                    handle.config,
                    store=self.store,
                    run_id=run_id,
                    root=self.root,
                    cancel=handle.cancel,
                    share=self.run_share,
                )
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
                recorder.ended(
                    "cancelled" if handle.cancel.is_set() else "finished",
                    summary=sim.summary()["final"] if sim else {},
                )
        if handle.reason == "shutdown":
            row = self.store.get_run(run_id)
            if row["status"] in ("cancelled", *ACTIVE):
                ckpt = next(iter(self.store.checkpoints(run_id)), None)
                where = f"the checkpoint of round {ckpt['round']}" if ckpt else "round 1"
                message = (
                    f"interrupted at round {row['current_round']}: the app stopped; resume "
                    f"continues from {where}"
                )
                self.store.update_run(run_id, status="interrupted", error=message, live=None)
                self.store.add_event(run_id, message, "warning")

    def _run_process(self, handle: RunHandle) -> tuple[str, str] | None:
        """Train the run in ``python -m engine.tracking.worker`` and wait for it; a cancel becomes
        SIGTERM (the worker stops between batches and records ``cancelled``). Returns the failure when the
        process ended badly (its message and the end of its error output), else ``None``."""
        import subprocess
        import tempfile

        from engine.access import paths_trusted

        cmd = [
            sys.executable,
            "-m",
            "engine.tracking.worker",
            "--db",
            str(self.store.path),
            "--run",
            handle.run_id,
            "--share",
            str(self.run_share),
            "--nice",
            str(WORKER_NICE),
        ]
        if self.root is not None:
            cmd += ["--root", str(self.root)]
        if handle.resume:
            cmd.append("--resume")
        if paths_trusted():  # this runs in the launcher's context (handle.context)
            cmd.append("--trusted")
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=str(Path(__file__).resolve().parents[2]),
            )  # the repository root
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
