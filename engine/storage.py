"""SQLite storage through sqlite-utils: runs, clients, narrow metric tables, events, checkpoints.

Layout follows the experiment trackers (MLflow's narrow ``metrics(key, value, step)``, Sacred's
heartbeat and fail trace on the run row). A ``sqlite_utils.Database`` is usable only from the
thread that opened it, so :class:`Store` opens one per thread. WAL mode and a busy timeout let
the pages read while runs write; each round is written in one transaction, so a run that dies
leaves every completed round readable and no half-written round.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sqlite_utils import Database, Migrations

from engine.errors import RunNotFoundError, StorageError

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")

migrations = Migrations("fedmosaic")


@migrations(name="001_initial")
def _initial(db: Database) -> None:
    db["runs"].create({
        "id": str, "name": str, "status": str, "config": str, "seed": int, "strategy": str,
        "dataset": str, "n_clients": int, "rounds": int, "current_round": int, "group_id": str,
        "tags": str, "created_at": float, "started_at": float, "finished_at": float,
        "heartbeat_at": float, "error": str, "traceback": str, "versions": str, "manifest": str,
        "summary": str,
    }, pk="id", not_null={"status", "config"}, defaults={"current_round": 0, "tags": "[]"})
    db["runs"].create_index(["status"])
    db["runs"].create_index(["group_id"])
    db["clients"].create({
        "run_id": str, "client_id": int, "name": str, "arch": str, "model": str, "n_params": int,
        "flops": int, "n_train": int, "n_test": int, "label_counts": str, "device": str,
        "tier": str, "join_round": int, "preprocessing": str, "optimizer": str, "lr": float,
        "epochs": int, "batch_size": int, "memory_bytes": int,
    }, pk=("run_id", "client_id"))
    db["round_metrics"].create({"run_id": str, "round": int, "key": str, "value": float},
                               pk=("run_id", "round", "key"))
    db["client_metrics"].create({"run_id": str, "round": int, "client_id": int, "key": str,
                                 "value": float}, pk=("run_id", "round", "client_id", "key"))
    db["events"].create({"id": int, "run_id": str, "ts": float, "round": int, "level": str,
                         "message": str}, pk="id")
    db["events"].create_index(["run_id"])
    db["checkpoints"].create({"run_id": str, "round": int, "path": str, "created_at": float},
                             pk=("run_id", "round"))
    db.create_view("run_summary", """
        SELECT id, name, status, strategy, dataset, n_clients, rounds, current_round, seed,
               group_id, tags, created_at, started_at, finished_at, heartbeat_at, error, summary
        FROM runs""")


def default_data_dir() -> Path:
    """Per-user data directory (``FEDMOSAIC_HOME`` overrides): database, checkpoints, downloads."""
    env = os.environ.get("FEDMOSAIC_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("fedmosaic", appauthor=False))


def default_db_path() -> Path:
    """The database path: ``FEDMOSAIC_DB`` if set, else ``fedmosaic.db`` in the data directory."""
    env = os.environ.get("FEDMOSAIC_DB")
    return Path(env).expanduser() if env else default_data_dir() / "fedmosaic.db"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Store:
    """The FedMosaic database. Thread-safe: each thread gets its own connection.

    :param path: database file (created with its folder if missing); ``None`` for the default.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self.db
            migrations.apply(db)
        except (OSError, sqlite3.OperationalError) as exc:
            raise StorageError(f"cannot open the database at {self.path}: {exc}; choose a writable "
                               f"location with --db or FEDMOSAIC_DB") from None

    @property
    def db(self) -> Database:
        """This thread's connection (WAL, 30 s busy timeout)."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=True)
            conn.execute("PRAGMA busy_timeout = 30000")
            db = Database(conn)
            if db.journal_mode != "wal":
                db.enable_wal()
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.db = db
        return db

    @property
    def checkpoint_dir(self) -> Path:
        """Folder of checkpoint files, beside the database."""
        return self.path.parent / "checkpoints"

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ---- writing ----------------------------------------------------------------------------
    def create_run(self, config: Mapping[str, Any], *, status: str = "queued", name: str | None = None,
                   group_id: str | None = None, tags: Iterable[str] = (), run_id: str | None = None) -> str:
        """Insert a run row and return its id."""
        run_id = run_id or uuid.uuid4().hex[:12]
        try:
            with self.db.atomic():
                self.db["runs"].insert({
                    "id": run_id, "name": name or config.get("name", "experiment"), "status": status,
                    "config": _dumps(config), "seed": config.get("seed", 0),
                    "strategy": (config.get("strategy") or {}).get("name", ""),
                    "dataset": (config.get("data") or {}).get("dataset", ""),
                    "n_clients": sum(int(c.get("count", 1)) for c in config.get("clients", [])),
                    "rounds": config.get("rounds", 0), "current_round": 0, "group_id": group_id,
                    "tags": _dumps(list(tags)), "created_at": time.time(),
                })
        except sqlite3.OperationalError as exc:
            raise StorageError(f"cannot write to {self.path}: {exc}") from None
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run row (dicts and lists are stored as JSON)."""
        values = {k: (_dumps(v) if isinstance(v, (dict, list)) else v) for k, v in fields.items()}
        with self.db.atomic():
            self.db["runs"].update(run_id, values)

    def heartbeat(self, run_id: str) -> None:
        """Mark the run alive now."""
        self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", [time.time(), run_id])
        self.db.conn.commit()

    def write_clients(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace the run's client rows."""
        with self.db.atomic():
            self.db.execute("DELETE FROM clients WHERE run_id = ?", [run_id])
            self.db["clients"].insert_all(
                [{"run_id": run_id, **{k: (_dumps(v) if isinstance(v, (dict, list)) else v)
                                        for k, v in r.items()}} for r in rows])

    def write_round(self, run_id: str, rnd: int, round_metrics: Mapping[str, float],
                    client_metrics: Mapping[int, Mapping[str, float]],
                    events: Iterable[tuple[str, str]] = ()) -> None:
        """Write one round's figures and events in one transaction and advance ``current_round``."""
        now = time.time()
        with self.db.atomic():
            self.db["round_metrics"].upsert_all(
                [{"run_id": run_id, "round": rnd, "key": k, "value": float(v)}
                 for k, v in round_metrics.items()], pk=("run_id", "round", "key"))
            self.db["client_metrics"].upsert_all(
                [{"run_id": run_id, "round": rnd, "client_id": cid, "key": k, "value": float(v)}
                 for cid, m in client_metrics.items() for k, v in m.items()],
                pk=("run_id", "round", "client_id", "key"))
            for level, message in events:
                self.db["events"].insert({"run_id": run_id, "ts": now, "round": rnd, "level": level,
                                          "message": message})
            self.db.execute("UPDATE runs SET current_round = ?, heartbeat_at = ? WHERE id = ?",
                            [rnd, now, run_id])

    def add_event(self, run_id: str, message: str, level: str = "info", rnd: int | None = None) -> None:
        """Append one event to the run's log."""
        with self.db.atomic():
            self.db["events"].insert({"run_id": run_id, "ts": time.time(), "round": rnd,
                                      "level": level, "message": message})

    def add_checkpoint(self, run_id: str, rnd: int, path: Path) -> None:
        """Record a checkpoint file."""
        with self.db.atomic():
            self.db["checkpoints"].upsert({"run_id": run_id, "round": rnd, "path": str(path),
                                           "created_at": time.time()}, pk=("run_id", "round"))

    def truncate_after(self, run_id: str, rnd: int) -> None:
        """Drop figures of rounds after ``rnd`` (before resuming from a checkpoint at ``rnd``)."""
        with self.db.atomic():
            for table in ("round_metrics", "client_metrics"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ? AND round > ?", [run_id, rnd])
            self.db.execute("UPDATE runs SET current_round = ? WHERE id = ?", [rnd, run_id])

    def delete_run(self, run_id: str) -> None:
        """Remove a run's rows (one transaction), then its checkpoint files."""
        self.get_run(run_id)
        paths = [r["path"] for r in self.db.query("SELECT path FROM checkpoints WHERE run_id = ?", [run_id])]
        with self.db.atomic():
            for table in ("round_metrics", "client_metrics", "events", "checkpoints", "clients"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self.db.execute("DELETE FROM runs WHERE id = ?", [run_id])
        for p in paths:
            Path(p).unlink(missing_ok=True)
        folder = self.checkpoint_dir / run_id
        if folder.is_dir():
            for f in folder.iterdir():
                f.unlink(missing_ok=True)
            folder.rmdir()

    # ---- reading ----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run row with ``config``, ``tags``, ``versions``, ``manifest``, ``summary`` parsed.

        :raises RunNotFoundError: no such run.
        """
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            raise RunNotFoundError(f"no run with id '{run_id}' in {self.path}")
        return _parse_run(rows[0])

    def list_runs(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first (config not parsed: use :meth:`get_run`)."""
        sql = "SELECT * FROM run_summary"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY created_at DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_parse_run(r) for r in self.db.query(sql, params)]

    def round_metrics(self, run_id: str | list[str]) -> pd.DataFrame:
        """Long table ``run_id, round, key, value``."""
        return self._frame("round_metrics", run_id, "round, key")

    def client_metrics(self, run_id: str | list[str]) -> pd.DataFrame:
        """Long table ``run_id, round, client_id, key, value``."""
        return self._frame("client_metrics", run_id, "round, client_id, key")

    def clients(self, run_id: str) -> pd.DataFrame:
        """The run's roster with sizes, architecture, parameter counts."""
        return self._frame("clients", run_id, "client_id")

    def events(self, run_id: str) -> pd.DataFrame:
        """The run's event log, oldest first."""
        return self._frame("events", run_id, "id")

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """Checkpoint rows, newest first."""
        return list(self.db.query("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY round DESC", [run_id]))

    def _frame(self, table: str, run_id: str | list[str], order: str) -> pd.DataFrame:
        ids = [run_id] if isinstance(run_id, str) else list(run_id)
        marks = ",".join("?" * len(ids)) or "NULL"
        return pd.read_sql_query(f"SELECT * FROM {table} WHERE run_id IN ({marks}) ORDER BY run_id, {order}",
                                 self.db.conn, params=ids)


def _parse_run(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("config", "tags", "versions", "manifest", "summary"):
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass
    return out
