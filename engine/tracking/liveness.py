"""Who owns a run and whether it is alive: a run is owned by a process (``owner``: host, pid and
the process's start time); a run whose status says ``queued``/``running`` but whose owner is dead,
or whose heartbeat stopped, is marked ``interrupted`` (:meth:`Liveness.reap`); ``cancel_requested``
lets one process ask the process that owns a run to cancel it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from engine.tracking.queries import reads
from engine.tracking.schema import RESUMABLE

STALE_AFTER_S = 30.0
"""A run whose owner cannot be checked (another host) is presumed dead after this many seconds
without a heartbeat (the run manager beats every 5 s)."""


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state, ppid, ...), or ``None`` where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_owner() -> str:
    """This process as a run owner: ``host|pid|start`` (start: the kernel's start tick on Linux,
    so a recycled pid is not mistaken for the process that owned a run)."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return f"{socket.gethostname()}|{pid}|{stat[19] if stat else ''}"


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process named by ``owner`` (see :func:`process_owner`) is alive: ``True``,
    ``False``, or ``None`` when it cannot be told from here (another host, no owner recorded)."""
    if not owner:
        return None
    parts = owner.split("|")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid_text, start = parts
    if host != socket.gethostname():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill would terminate the process there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to another user
    except OSError:
        return None
    stat = _proc_stat(pid)
    # a zombie, or the pid now belongs to another process, is dead
    return not (stat is not None and (stat[0] == "Z" or (start and stat[19] != start)))


def _iso(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


class Liveness:
    """The :class:`engine.tracking.storage.Store` methods about owners, heartbeats and cancels."""

    def heartbeat(self, run_id: str) -> None:
        """Mark the run alive now."""
        self.beat([run_id])

    def beat(self, run_ids: Iterable[str]) -> set[str]:
        """Mark several runs alive now (one transaction); return those whose cancellation was
        requested (:meth:`request_cancel`)."""
        ids = list(run_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        with self.write() as db:
            db.execute(f"UPDATE runs SET heartbeat_at = ? WHERE id IN ({marks})", [time.time(), *ids])
            rows = db.execute(
                f"SELECT id FROM runs WHERE cancel_requested = 1 AND id IN ({marks})", ids
            ).fetchall()
        return {r[0] for r in rows}

    def request_cancel(self, run_id: str) -> None:
        """Ask whichever process runs ``run_id`` to cancel it (checked by its heartbeat and after
        every round)."""
        self.get_run(run_id)
        with self.write() as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", [run_id])

    @reads
    def cancel_requested(self, run_id: str) -> bool:
        """Whether :meth:`request_cancel` was called for the run since it last started."""
        row = self.db.execute("SELECT cancel_requested FROM runs WHERE id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def claim(self, run_id: str, owner: str, statuses: Iterable[str] = RESUMABLE) -> bool:
        """Atomically take a run in one of ``statuses`` for ``owner`` and queue it again (resume).
        Returns ``False`` if its status changed meanwhile (another process resumed it)."""
        statuses = list(statuses)
        marks = ",".join("?" * len(statuses))
        with self.write() as db:
            cur = db.execute(
                f"UPDATE runs SET status = 'queued', owner = ?, cancel_requested = 0, error = NULL, "
                f"traceback = NULL, finished_at = NULL, live = NULL, heartbeat_at = ? "
                f"WHERE id = ? AND status IN ({marks})",
                [owner, time.time(), run_id, *statuses],
            )
            return cur.rowcount == 1

    def stale(self, stale_after_s: float = STALE_AFTER_S, now: float | None = None) -> dict[str, str]:
        """``queued``/``running`` runs whose owning process is dead or, where that cannot be
        told (another host), whose last sign of life is older than ``stale_after_s``: id ->
        what happened, for the ``interrupted`` status. Reads only."""
        now = time.time() if now is None else now
        rows = list(
            self.db.query(
                "SELECT id, owner, status, current_round, heartbeat_at, started_at, created_at FROM runs "
                "WHERE status IN ('queued', 'running')"
            )
        )
        out: dict[str, str] = {}
        for r in rows:
            alive = owner_alive(r["owner"])
            last = max(r["heartbeat_at"] or 0, r["started_at"] or 0, r["created_at"] or 0)
            if alive is False or (alive is None and now - last > stale_after_s):
                ckpt = next(iter(self.checkpoints(r["id"])), None)
                where = f"the checkpoint of round {ckpt['round']}" if ckpt else "round 1 (no checkpoint yet)"
                out[r["id"]] = (
                    f"interrupted at round {r['current_round']}: the process running it stopped "
                    f"(last sign of life {_iso(last)}); resume continues from {where}"
                )
        return out

    def reap(self, stale_after_s: float = STALE_AFTER_S, now: float | None = None) -> list[str]:
        """Mark ``interrupted`` every run :meth:`stale` finds (nothing on a read-only database).
        Returns their ids."""
        if self.read_only:
            return []
        now = time.time() if now is None else now
        rows = {
            r["id"]: r
            for r in self.db.query("SELECT id, owner, status FROM runs WHERE status IN ('queued', 'running')")
        }
        done = []
        for run_id, message in self.stale(stale_after_s, now).items():
            r = rows.get(run_id)
            if r is None:
                continue
            with self.write() as db:
                cur = db.execute(
                    "UPDATE runs SET status = 'interrupted', live = NULL, error = ? "
                    "WHERE id = ? AND status = ? AND owner IS ?",
                    [message, run_id, r["status"], r["owner"]],
                )
                if cur.rowcount:
                    db["events"].insert(
                        {"run_id": run_id, "ts": now, "round": None, "level": "warning", "message": message}
                    )
                    done.append(run_id)
        return done

    def refresh(self, stale_after_s: float = STALE_AFTER_S) -> dict[str, str]:
        """Bring statuses up to date without a run manager (``list``/``show``): on a writable
        database, runs whose owner is gone are marked ``interrupted`` (:meth:`reap`) and ``{}``
        is returned; on a read-only one nothing is written and the runs that would be marked
        are returned (id -> message) for display."""
        if self.read_only:
            return self.stale(stale_after_s)
        self.reap(stale_after_s)
        return {}
