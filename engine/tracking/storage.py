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

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from engine.errors import StorageError
from engine.tracking.liveness import Liveness
from engine.tracking.queries import Queries, damaged, damaged_error, storage_error
from engine.tracking.schema import migrations
from engine.tracking.writes import Writes


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


def _iso(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


def _writable(path: Path) -> bool:
    """Whether the database file and its folder (WAL keeps two files beside it) accept writes."""
    folder = path.parent if path.parent != Path("") else Path(".")
    return os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)


class Store(Liveness, Queries, Writes):
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
