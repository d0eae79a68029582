"""Reading the database: a run's row, the runs list, the figures as data frames, checkpoints and a
run's progress (for the pages and the CLI). Every read turns sqlite errors into one
:class:`StorageError` naming the file."""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import RunNotFoundError, StorageError
from engine.tracking.schema import ACTIVE, RESUMABLE

SQLITE_HEADER = b"SQLite format 3\x00"
DAMAGED_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def damaged(exc: sqlite3.Error) -> bool:
    """Whether an sqlite error says the file is not an intact database."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    text = str(exc).lower()
    return (
        name.startswith(DAMAGED_CODES) or "malformed" in text or "not a database" in text or "corrupt" in text
    )


def damaged_error(path: Path, detail: str) -> StorageError:
    detail = " ".join(detail.replace("*", " ").split())
    detail = detail if len(detail) <= 160 else detail[:159] + "…"
    return StorageError(
        f"the database {path} is damaged ({detail}); FedMosaic has not changed it. Restore it "
        f"from a backup, or move it aside and start a new database (--db or FEDMOSAIC_DB)"
    )


def reads(method: Callable[..., Any]) -> Callable[..., Any]:
    """A read of the database whose sqlite errors (a page damaged after the open check, a lock
    held too long) become one :class:`StorageError` naming the file."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if damaged(exc):
                raise damaged_error(self.path, str(exc)) from None
            raise StorageError(
                f"cannot read the database {self.path} ({exc}); try again, and check the disk if it persists"
            ) from None

    return wrapper


def storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    text = str(exc)
    if damaged(exc):
        return damaged_error(path, text)
    if "full" in text:
        hint = "the disk is full: free some space or move the database with --db or FEDMOSAIC_DB"
    elif "readonly" in text or "read-only" in text or "unable to open" in text:
        hint = "it is read-only: choose a writable location with --db or FEDMOSAIC_DB"
    elif "locked" in text or "busy" in text:
        hint = "another process held it for over 30 s: try again"
    else:
        hint = "check the disk and the file's permissions"
    return StorageError(f"cannot write the database {path} ({text}); {hint}")


class Queries:
    """The :class:`engine.tracking.storage.Store` methods that read."""

    @reads
    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run row with ``config``, ``tags``, ``versions``, ``manifest``, ``summary``, ``live``
        parsed.

        :raises RunNotFoundError: no such run.
        """
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            raise RunNotFoundError(f"no run with id '{run_id}' in {self.path}")
        return parse_run(rows[0])

    @reads
    def list_runs(
        self,
        status: str | None = None,
        limit: int | None = None,
        *,
        group_id: str | None = None,
        tag: str | None = None,
        ids: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, newest first (config not parsed: use :meth:`get_run`), optionally only those with
        a status, of a sweep group, carrying a tag, or among ``ids``."""
        sql = "SELECT * FROM run_summary"
        clauses: list[str] = []
        params: list[Any] = []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if group_id:
            clauses.append("group_id = ?")
            params.append(group_id)
        if tag:
            clauses.append("EXISTS (SELECT 1 FROM json_each(run_summary.tags) WHERE value = ?)")
            params.append(tag)
        if ids is not None:
            ids = list(ids)
            clauses.append(f"id IN ({','.join('?' * len(ids)) or 'NULL'})")
            params.extend(ids)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY created_at DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [parse_run(r) for r in self.db.query(sql, params)]

    def round_metrics(self, run_id: str | list[str]) -> pd.DataFrame:
        """Long table ``run_id, round, key, value``."""
        return self._frame("round_metrics", run_id, "round, key")

    def client_metrics(self, run_id: str | list[str]) -> pd.DataFrame:
        """Long table ``run_id, round, client_id, key, value``."""
        return self._frame("client_metrics", run_id, "round, client_id, key")

    def clients(self, run_id: str | list[str]) -> pd.DataFrame:
        """The run's roster with sizes, architecture, parameter counts."""
        return self._frame("clients", run_id, "client_id")

    def events(self, run_id: str) -> pd.DataFrame:
        """The run's event log, oldest first."""
        return self._frame("events", run_id, "id")

    @reads
    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """Checkpoint rows, newest first."""
        return list(self.db.query("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY round DESC", [run_id]))

    @reads
    def progress(self, run_id: str) -> dict[str, Any]:
        """Where a run stands, from the database alone (any process can ask).

        Keys: ``run_id, name, status, current_round, rounds, fraction, elapsed_s`` (compute time
        so far: the rounds' wall time plus the round in progress), ``eta_s`` (seconds left,
        :func:`engine.tracking.eta.remaining_seconds`: warm-up rounds left out; ``None`` until two rounds
        are done or when not running),
        ``last_metrics`` (the latest round's figures), ``last_evaluated`` (the latest round with
        accuracy/loss figures), ``round_in_progress``, ``phase``, ``clients`` (per client this
        round: ``client_id, name, arch, tier, status`` = not joined | waiting | training | done |
        dropped | idle, ``selected``, ``completed``, ``round``, and its latest figures such as
        ``train_loss``, ``local_acc``), ``checkpoint_round``, ``resumable``, ``error``,
        ``heartbeat_age_s``, ``group_id``, ``variant``, ``tags``.
        """
        run = self.get_run(run_id)
        now = time.time()
        cur, total = int(run["current_round"] or 0), int(run["rounds"] or 0)
        rows = self.db.execute(
            "SELECT round, key, value FROM round_metrics WHERE run_id = ? AND round >= ? ORDER BY round",
            [run_id, max(cur - 4, 0)],
        ).fetchall()
        by_round: dict[int, dict[str, float]] = {}
        for rnd, key, value in rows:
            by_round.setdefault(rnd, {})[key] = value
        last = by_round.get(cur, {})
        evaluated = self.db.execute(
            "SELECT MAX(round) FROM round_metrics WHERE run_id = ? AND key LIKE 'local_%'", [run_id]
        ).fetchone()[0]
        last_eval = (
            {
                k: v
                for k, v in self.db.execute(
                    "SELECT key, value FROM round_metrics WHERE run_id = ? AND round = ?", [run_id, evaluated]
                )
            }
            if evaluated is not None
            else {}
        )
        live = run.get("live") if isinstance(run.get("live"), dict) else None
        in_progress = live.get("round") if live and run["status"] == "running" else None
        elapsed = float(last.get("cum_wall_s", 0.0))
        if live and run["status"] == "running" and live.get("started_at"):
            elapsed += max(0.0, now - float(live["started_at"]))
        eta = None
        if run["status"] == "finished":
            eta = 0.0
        elif run["status"] in ACTIVE:
            from engine.tracking.eta import remaining_seconds

            times = [
                v
                for (v,) in self.db.execute(
                    "SELECT value FROM round_metrics WHERE run_id = ? AND key = 'wall_s' AND round <= ? "
                    "ORDER BY round",
                    [run_id, cur],
                )
            ]
            in_round = (
                now - float(live["started_at"]) if live and live.get("started_at") and in_progress else 0.0
            )
            eta = remaining_seconds(times, total, in_round)
        ckpt = next(iter(self.checkpoints(run_id)), None)
        return {
            "run_id": run_id,
            "name": run["name"],
            "status": run["status"],
            "current_round": cur,
            "rounds": total,
            "fraction": (cur / total) if total else 0.0,
            "elapsed_s": elapsed,
            "eta_s": eta,
            "last_metrics": last,
            "last_evaluated": last_eval,
            "round_in_progress": in_progress,
            "phase": live.get("phase") if in_progress else None,
            "clients": self._client_progress(run_id, cur, live if in_progress else None),
            "checkpoint_round": ckpt["round"] if ckpt else None,
            "resumable": run["status"] in RESUMABLE,
            "error": run.get("error"),
            "heartbeat_age_s": (now - run["heartbeat_at"]) if run.get("heartbeat_at") else None,
            "group_id": run.get("group_id"),
            "variant": run.get("variant"),
            "tags": run.get("tags") or [],
            "started_at": run.get("started_at"),
            "finished_at": run.get("finished_at"),
        }

    def _client_progress(self, run_id: str, cur: int, live: dict[str, Any] | None) -> list[dict[str, Any]]:
        roster = list(
            self.db.query(
                "SELECT client_id, name, arch, tier, join_round FROM clients "
                "WHERE run_id = ? ORDER BY client_id",
                [run_id],
            )
        )
        latest: dict[int, dict[str, Any]] = {}
        for cid, rnd, key, value in self.db.execute(
            "SELECT client_id, round, key, value FROM client_metrics WHERE run_id = ? AND round = ?",
            [run_id, cur],
        ):
            latest.setdefault(cid, {"round": rnd})[key] = value
        out = []
        for c in roster:
            m = latest.get(c["client_id"], {})
            row: dict[str, Any] = {
                "client_id": c["client_id"],
                "name": c["name"],
                "arch": c["arch"],
                "tier": c["tier"],
                **{k: v for k, v in m.items() if k != "round"},
                "round": m.get("round"),
            }
            if live is not None:
                rnd = int(live.get("round", cur + 1))
                cid = c["client_id"]
                row["selected"] = cid in live.get("selected", [])
                row["completed"] = False
                row["status"] = (
                    "not joined"
                    if (c["join_round"] or 1) > rnd
                    else "training"
                    if cid in live.get("training", [])
                    else "dropped"
                    if cid in live.get("dropped", [])
                    else "waiting"
                )
            else:
                row["selected"] = bool(m.get("selected", 0))
                row["completed"] = bool(m.get("completed", 0))
                row["status"] = (
                    "not joined"
                    if (c["join_round"] or 1) > max(cur, 1)
                    else "done"
                    if row["completed"]
                    else "dropped"
                    if row["selected"]
                    else "idle"
                )
            out.append(row)
        return out

    @reads
    def _frame(self, table: str, run_id: str | list[str], order: str) -> pd.DataFrame:
        ids = [run_id] if isinstance(run_id, str) else list(run_id)
        marks = ",".join("?" * len(ids)) or "NULL"
        return pd.read_sql_query(
            f"SELECT * FROM {table} WHERE run_id IN ({marks}) ORDER BY run_id, {order}",
            self.db.conn,
            params=ids,
        )


def parse_run(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("config", "tags", "versions", "manifest", "summary", "live"):
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass
    config = out.get("config")
    if isinstance(config, dict) and "clients" in config and "init" not in config:
        # written before ``init`` existed, when every client drew its own initial weights: resuming,
        # forking or reproducing such a run keeps its numbers
        out["config"] = {**config, "init": "per_client"}
    return out
