"""SQLite storage through sqlite-utils: runs, clients, narrow metric tables, events, checkpoints.

Layout follows the experiment trackers (MLflow's narrow ``metrics(key, value, step)``, Sacred's
heartbeat and fail trace on the run row). A ``sqlite_utils.Database`` is usable only from the
thread that opened it, so :class:`Store` opens one per thread. WAL mode and a busy timeout let
the pages read while runs write; every write is one ``BEGIN IMMEDIATE`` transaction (so a writer
waits for the lock instead of failing with "database is locked" when another connection committed
first), each round is written in one transaction, so a run that dies leaves every completed round
readable and no half-written round.

Runs are owned by a process (``owner``: host, pid and the process's start time). A run whose
status says ``queued``/``running`` but whose owner is dead, or whose heartbeat stopped, is marked
``interrupted`` by :meth:`Store.reap`; ``cancel_requested`` lets one process ask the process that
owns a run to cancel it; ``live`` holds the round in progress (which clients are training).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from engine.errors import ConfigError, StorageError
from engine.labels import dataset_label
from engine.sanitize import clean_name, clean_tags
from engine.tracking.liveness import Liveness, process_owner
from engine.tracking.queries import Queries, damaged, damaged_error, storage_error
from engine.tracking.schema import migrations

MAX_CONFIG_BYTES = 2_000_000
"""Largest config (as JSON) a run row stores."""
MIN_FREE_MB = 64
"""Free disk space (MB) a launch needs beside the database (``FEDMOSAIC_MIN_FREE_MB`` overrides)."""


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


def _iso(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def _writable(path: Path) -> bool:
    """Whether the database file and its folder (WAL keeps two files beside it) accept writes."""
    folder = path.parent if path.parent != Path("") else Path(".")
    return os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)


class Store(Liveness, Queries):
    """The FedMosaic database. Thread-safe: each thread gets its own connection.

    A damaged file is detected when the store opens (its header and ``PRAGMA quick_check``) and
    refused without a write. A file that cannot be written (permissions, a read-only disk) opens
    read-only: runs can be listed, shown and exported; every write raises :class:`StorageError`.

    :param path: database file (created with its folder if missing); ``None`` for the default.
    :param read_only: open without writing (default: when the file or its folder is not writable).
    :raises StorageError: the file is damaged, or cannot be created or opened.
    """

    def __init__(self, path: str | Path | None = None, *, read_only: bool | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self._local = threading.local()
        exists = self.path.is_file() and self.path.stat().st_size > 0
        self.read_only = bool(read_only if read_only is not None else exists and not _writable(self.path))
        self._immutable = False
        if exists:
            self._check_intact()
        elif self.read_only:
            raise StorageError(
                f"there is no database at {self.path} to read; check the path (--db or FEDMOSAIC_DB)"
            )
        if self.read_only:
            self.db  # noqa: B018 - open now, so a file that cannot be read is reported here
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self.db
            with self.write():
                migrations.apply(db)
        except sqlite3.DatabaseError as exc:
            if damaged(exc):
                raise damaged_error(self.path, str(exc)) from None
            raise StorageError(
                f"cannot open the database at {self.path}: {exc}; choose a writable "
                f"location with --db or FEDMOSAIC_DB"
            ) from None
        except (OSError, sqlite3.Error, StorageError) as exc:
            raise StorageError(
                f"cannot open the database at {self.path}: {exc}; choose a writable "
                f"location with --db or FEDMOSAIC_DB"
            ) from None

    def _check_intact(self) -> None:
        """Refuse a damaged file before anything writes to it: ``PRAGMA quick_check`` on a
        read-only connection (a file that is not SQLite fails it as "not a database").

        The file is never opened outside SQLite: closing any descriptor of a database file drops
        every POSIX lock this process holds on it, those of the open connections of other stores
        included, and another process's writer may then reset the WAL under them (stale or
        "malformed" reads; SQLite's "How To Corrupt An SQLite Database File", section 2.2)."""
        try:
            rows = self._quick_check(immutable=False)
        except sqlite3.DatabaseError as exc:
            if damaged(exc):
                raise damaged_error(self.path, str(exc)) from None
            try:  # its folder cannot hold the WAL index: read the file as a snapshot
                rows = self._quick_check(immutable=True)
            except sqlite3.DatabaseError as again:
                if damaged(again):
                    raise damaged_error(self.path, str(again)) from None
                raise StorageError(
                    f"cannot open the database {self.path} ({again}); check its permissions"
                ) from None
            self.read_only = self._immutable = True
        if rows != [("ok",)]:
            raise damaged_error(self.path, "; ".join(str(r[0]) for r in rows[:3]))

    def _quick_check(self, immutable: bool) -> list[tuple[Any, ...]]:
        conn = self._connect(read_only=True, immutable=immutable)
        try:
            return conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()

    def _connect(self, read_only: bool, immutable: bool = False) -> sqlite3.Connection:
        if not read_only:
            return sqlite3.connect(self.path, timeout=30, check_same_thread=True)
        from urllib.parse import quote

        mode = "immutable=1" if immutable else "mode=ro"
        return sqlite3.connect(
            f"file:{quote(str(self.path.resolve()))}?{mode}", uri=True, timeout=30, check_same_thread=True
        )

    @property
    def db(self) -> Database:
        """This thread's connection (WAL, 30 s busy timeout; read-only when :attr:`read_only`)."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = self._connect(self.read_only, self._immutable)
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA foreign_keys = ON")  # a run's rows go with it (ON DELETE CASCADE)
            db = Database(conn)
            if not self.read_only:
                if db.journal_mode != "wal":
                    db.enable_wal()
                conn.execute("PRAGMA synchronous = NORMAL")
            self._local.db = db
        return db

    @property
    def checkpoint_dir(self) -> Path:
        """Folder of checkpoint files, beside the database."""
        return self.path.parent / "checkpoints"

    @property
    def models_dir(self) -> Path:
        """Folder of the models runs keep (:mod:`engine.artifacts.keep`), beside the database."""
        return self.path.parent / "models"

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    @contextmanager
    def write(self) -> Iterator[Database]:
        """One write transaction (``BEGIN IMMEDIATE``: waits up to the busy timeout for other
        writers). Nested calls become savepoints.

        :raises StorageError: the database cannot be written (disk full, read-only, busy).
        """
        if self.read_only:
            raise StorageError(
                f"the database {self.path} is read-only here: runs can be listed, shown and "
                f"exported, not launched or changed; to run, choose a writable location "
                f"with --db or FEDMOSAIC_DB"
            )
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        try:
            db.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise storage_error(self.path, exc) from None
        try:
            yield db
        except BaseException as exc:
            if db.conn.in_transaction:
                db.conn.rollback()
            if isinstance(exc, sqlite3.DatabaseError):
                raise storage_error(self.path, exc) from None
            raise
        try:
            db.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if db.conn.in_transaction:
                db.conn.rollback()
            raise storage_error(self.path, exc) from None

    # ---- writing ----------------------------------------------------------------------------
    def create_run(
        self,
        config: Mapping[str, Any],
        *,
        status: str = "queued",
        name: str | None = None,
        group_id: str | None = None,
        tags: Iterable[str] = (),
        run_id: str | None = None,
        owner: str | None = None,
        variant: str | None = None,
        parent_id: str | None = None,
    ) -> str:
        """Insert a run row and return its id.

        :param owner: the process that will run it (default: this one, :func:`process_owner`).
        :param variant: label of a sweep member without its seed (``"fedprox (mu=0.1)"``): runs of
            one ``group_id`` with the same variant are seeds of one setting.
        :param parent_id: the run this one was forked from.
        """
        run_id = run_id or uuid.uuid4().hex[:12]
        text = _dumps(config)
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"this config is {len(text) / 1e6:.1f} MB as JSON; a run stores at most "
                f"{MAX_CONFIG_BYTES / 1e6:.0f} MB of config: keep data in files, not in the config"
            )
        with self.write() as db:
            db["runs"].insert(
                {
                    "id": run_id,
                    "name": clean_name(name or config.get("name", "experiment")),
                    "status": status,
                    "config": text,
                    "seed": config.get("seed", 0),
                    "strategy": (config.get("strategy") or {}).get("name", ""),
                    "dataset": dataset_label(config.get("data") or {}),
                    "n_clients": sum(int(c.get("count", 1)) for c in config.get("clients", [])),
                    "rounds": config.get("rounds", 0),
                    "current_round": 0,
                    "group_id": group_id,
                    "tags": _dumps(clean_tags(tags)),
                    "created_at": time.time(),
                    "owner": owner or process_owner(),
                    "variant": variant,
                    "parent_id": parent_id,
                    "cancel_requested": 0,
                }
            )
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run row (dicts and lists are stored as JSON)."""
        values = {k: (_dumps(v) if isinstance(v, (dict, list)) else v) for k, v in fields.items()}
        with self.write() as db:
            db["runs"].update(run_id, values)

    def set_live(self, run_id: str, live: Mapping[str, Any] | None) -> None:
        """Record the round in progress (``{"round", "phase", "selected", "training", ...}``)."""
        with self.write() as db:
            db.execute(
                "UPDATE runs SET live = ?, heartbeat_at = ? WHERE id = ?",
                [_dumps(live) if live is not None else None, time.time(), run_id],
            )

    def write_clients(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace the run's client rows."""
        with self.write() as db:
            db.execute("DELETE FROM clients WHERE run_id = ?", [run_id])
            db["clients"].insert_all(
                [
                    {
                        "run_id": run_id,
                        **{k: (_dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()},
                    }
                    for r in rows
                ]
            )

    def write_round(
        self,
        run_id: str,
        rnd: int,
        round_metrics: Mapping[str, float],
        client_metrics: Mapping[int, Mapping[str, float]],
        events: Iterable[tuple[str, str]] = (),
    ) -> bool:
        """Write one round's figures and events in one transaction and advance ``current_round``.

        :returns: whether cancellation of the run was requested (:meth:`request_cancel`).
        """
        now = time.time()
        with self.write() as db:
            db["round_metrics"].upsert_all(
                [
                    {"run_id": run_id, "round": rnd, "key": k, "value": float(v)}
                    for k, v in round_metrics.items()
                ],
                pk=("run_id", "round", "key"),
            )
            db["client_metrics"].upsert_all(
                [
                    {"run_id": run_id, "round": rnd, "client_id": cid, "key": k, "value": float(v)}
                    for cid, m in client_metrics.items()
                    for k, v in m.items()
                ],
                pk=("run_id", "round", "client_id", "key"),
            )
            for level, message in events:
                db["events"].insert(
                    {"run_id": run_id, "ts": now, "round": rnd, "level": level, "message": message}
                )
            db.execute(
                "UPDATE runs SET current_round = ?, heartbeat_at = ?, live = NULL WHERE id = ?",
                [rnd, now, run_id],
            )
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def add_event(self, run_id: str, message: str, level: str = "info", rnd: int | None = None) -> None:
        """Append one event to the run's log."""
        with self.write() as db:
            db["events"].insert(
                {"run_id": run_id, "ts": time.time(), "round": rnd, "level": level, "message": message}
            )

    def add_checkpoint(self, run_id: str, rnd: int, path: Path) -> None:
        """Record a checkpoint file."""
        with self.write() as db:
            db["checkpoints"].upsert(
                {"run_id": run_id, "round": rnd, "path": str(path), "created_at": time.time()},
                pk=("run_id", "round"),
            )

    def prune_checkpoints(self, run_id: str, keep: int = 2) -> None:
        """Keep the run's newest ``keep`` checkpoints; delete the older rows and files."""
        old = self.checkpoints(run_id)[max(keep, 1) :]
        if not old:
            return
        with self.write() as db:
            db.execute("DELETE FROM checkpoints WHERE run_id = ? AND round <= ?", [run_id, old[0]["round"]])
        for row in old:
            Path(row["path"]).unlink(missing_ok=True)

    def truncate_after(self, run_id: str, rnd: int) -> None:
        """Drop figures, events and checkpoints of rounds after ``rnd`` (before resuming from a
        checkpoint at ``rnd``: those rounds are computed again)."""
        later = [r for r in self.checkpoints(run_id) if r["round"] > rnd]
        with self.write() as db:
            for table in ("round_metrics", "client_metrics", "events", "checkpoints"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ? AND round > ?", [run_id, rnd])
            db.execute("UPDATE runs SET current_round = ? WHERE id = ?", [rnd, run_id])
        for row in later:
            Path(row["path"]).unlink(missing_ok=True)

    def rename_run(self, run_id: str, name: str) -> None:
        """Give a run a new display name.

        :raises ConfigError: empty or longer than 120 characters.
        """
        name = clean_name(name)
        if not name or len(name) > 120:
            raise ConfigError("a run name needs 1 to 120 characters")
        self.get_run(run_id)
        self.update_run(run_id, name=name)

    def set_tags(self, run_id: str, tags: Iterable[str]) -> list[str]:
        """Replace a run's tags (trimmed, duplicates and empty ones dropped); returns them."""
        clean = clean_tags(tags)
        self.get_run(run_id)
        self.update_run(run_id, tags=clean)
        return clean

    def check_writable(self, min_free_mb: float | None = None) -> None:
        """Make sure a run can be written here: the database accepts a write, the checkpoint
        folder accepts a file, and the disk has ``min_free_mb`` free (default
        ``FEDMOSAIC_MIN_FREE_MB`` or :data:`MIN_FREE_MB`).

        :raises StorageError: saying which and what to do.
        """
        if min_free_mb is None:
            min_free_mb = float(os.environ.get("FEDMOSAIC_MIN_FREE_MB", MIN_FREE_MB))
        try:
            with self.write() as db:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?)", [str(time.time())]
                )
        except (StorageError, sqlite3.Error) as exc:
            raise StorageError(
                f"the database {self.path} cannot be written ({exc}); choose a writable "
                f"location with --db or FEDMOSAIC_DB"
            ) from None
        folder = self.checkpoint_dir
        probe = folder / f".write-probe-{uuid.uuid4().hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"\0" * 65536)
            free = shutil.disk_usage(folder).free
        except OSError as exc:
            raise StorageError(
                f"cannot write checkpoints under {folder} ({exc.strerror or exc}); free "
                f"some disk space or set FEDMOSAIC_HOME to a writable folder"
            ) from None
        finally:
            try:
                probe.unlink(missing_ok=True)
            except OSError:
                pass
        if free < min_free_mb * 2**20:
            raise StorageError(
                f"only {free / 2**20:.0f} MB free on the disk holding {folder}; a run "
                f"needs at least {min_free_mb:.0f} MB for its figures and checkpoints: "
                f"free some space or set FEDMOSAIC_HOME to another disk"
            )

    def delete_run(self, run_id: str) -> None:
        """Remove a run's rows (one transaction), then its checkpoint files."""
        self.get_run(run_id)
        paths = [r["path"] for r in self.db.query("SELECT path FROM checkpoints WHERE run_id = ?", [run_id])]
        with self.write() as db:
            db.execute("DELETE FROM runs WHERE id = ?", [run_id])  # its rows in CHILD_TABLES cascade
        for p in paths:
            Path(p).unlink(missing_ok=True)
        for folder in (self.checkpoint_dir / run_id, self.models_dir / run_id):
            if _SAFE_ID.match(run_id) and folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)


def finite_or_none(value: Any) -> Any:
    """``None`` for NaN/inf floats (JSON has no NaN), the value otherwise."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
