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

import functools
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from sqlite_utils import Database, Migrations

from engine.labels import dataset_label
from engine.errors import ConfigError, RunNotFoundError, StorageError

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
RESUMABLE = ("interrupted", "cancelled", "failed")
MAX_CONFIG_BYTES = 2_000_000
"""Largest config (as JSON) a run row stores."""
STALE_AFTER_S = 30.0
"""A run whose owner cannot be checked (another host) is presumed dead after this many seconds
without a heartbeat (the run manager beats every 5 s)."""
MIN_FREE_MB = 64
"""Free disk space (MB) a launch needs beside the database (``FEDMOSAIC_MIN_FREE_MB`` overrides)."""

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


@migrations(name="002_run_manager")
def _run_manager(db: Database) -> None:
    runs = db["runs"]
    have = set(runs.columns_dict)
    for column, kind in (("owner", str), ("live", str), ("variant", str), ("parent_id", str)):
        if column not in have:
            runs.add_column(column, kind)
    if "cancel_requested" not in have:
        runs.add_column("cancel_requested", int, not_null_default=0)
    db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db.execute("DROP VIEW IF EXISTS run_summary")
    db.create_view("run_summary", _RUN_SUMMARY)


_RUN_SUMMARY = """
        SELECT id, name, status, strategy, dataset, n_clients, rounds, current_round, seed,
               group_id, variant, parent_id, tags, created_at, started_at, finished_at,
               heartbeat_at, owner, cancel_requested, error, summary
        FROM runs"""


CHILD_TABLES = ("clients", "round_metrics", "client_metrics", "events", "checkpoints")
"""Tables whose rows belong to one run (``run_id``): deleting the run deletes them (cascade)."""


@migrations(name="003_constraints")
def _constraints(db: Database) -> None:
    """A run's status is one of :data:`STATUSES` (a CHECK constraint), and its rows in
    :data:`CHILD_TABLES` go with it (``ON DELETE CASCADE``). SQLite adds constraints only by
    rebuilding a table: each is copied into a new one with the constraint, then renamed. Rows of
    runs that no longer exist (none are written, but a file edited by hand may have some) are not
    copied; a status outside the list (likewise) becomes ``interrupted``, which can be resumed."""
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    db.execute("DROP VIEW IF EXISTS run_summary")
    _rebuild(db, "runs", f"CHECK (status IN ({statuses}))",
             {"status": f"CASE WHEN status IN ({statuses}) THEN status ELSE 'interrupted' END"})
    for table in CHILD_TABLES:
        _rebuild(db, table, "FOREIGN KEY (run_id) REFERENCES runs(id) ON DELETE CASCADE",
                 where="run_id IN (SELECT id FROM runs)")
    db.create_view("run_summary", _RUN_SUMMARY)


def _rebuild(db: Database, table: str, constraint: str, exprs: Mapping[str, str] | None = None,
             where: str = "1") -> None:
    """Recreate ``table`` with the same columns, keys and indexes plus ``constraint``, copying its
    rows (column ``c`` as ``exprs[c]`` where given, only those matching ``where``)."""
    columns = db.execute(f"PRAGMA table_info([{table}])").fetchall()  # cid, name, type, notnull, default, pk
    keys = [c[1] for c in sorted((c for c in columns if c[5]), key=lambda c: c[5])]
    defs = []
    for _, name, kind, notnull, default, pk in columns:
        text = f"[{name}] {kind}".rstrip()
        if pk and len(keys) == 1:
            text += " PRIMARY KEY"
        if notnull:
            text += " NOT NULL"
        if default is not None:
            text += f" DEFAULT {default}"
        defs.append(text)
    if len(keys) > 1:
        defs.append(f"PRIMARY KEY ({', '.join(f'[{k}]' for k in keys)})")
    defs.append(constraint)
    indexes = [r[0] for r in db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                        "AND sql IS NOT NULL", [table]).fetchall()]
    names = [c[1] for c in columns]
    select = ", ".join((exprs or {}).get(n, f"[{n}]") for n in names)
    db.execute(f"CREATE TABLE [{table}_new] (\n   {', '.join(defs)}\n)")
    db.execute(f"INSERT INTO [{table}_new] ({', '.join(f'[{n}]' for n in names)}) "
               f"SELECT {select} FROM [{table}] WHERE {where}")
    db.execute(f"DROP TABLE [{table}]")
    db.execute(f"ALTER TABLE [{table}_new] RENAME TO [{table}]")
    for sql in indexes:
        db.execute(sql)


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


# ---- process ownership ------------------------------------------------------------------------
def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state, ppid, ...), or ``None`` where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


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


_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


SQLITE_HEADER = b"SQLite format 3\x00"
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _damaged(exc: sqlite3.Error) -> bool:
    """Whether an sqlite error says the file is not an intact database."""
    name = str(getattr(exc, "sqlite_errorname", ""))
    text = str(exc).lower()
    return name.startswith(_DAMAGED) or "malformed" in text or "not a database" in text or "corrupt" in text


def _damaged_error(path: Path, detail: str) -> StorageError:
    detail = " ".join(detail.replace("*", " ").split())
    detail = detail if len(detail) <= 160 else detail[:159] + "…"
    return StorageError(f"the database {path} is damaged ({detail}); FedMosaic has not changed it. Restore it "
                        f"from a backup, or move it aside and start a new database (--db or FEDMOSAIC_DB)")


def _reads(method: Callable[..., Any]) -> Callable[..., Any]:
    """A read of the database whose sqlite errors (a page damaged after the open check, a lock
    held too long) become one :class:`StorageError` naming the file."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise _damaged_error(self.path, str(exc)) from None
            raise StorageError(f"cannot read the database {self.path} ({exc}); try again, and check the "
                               f"disk if it persists") from None

    return wrapper


def _writable(path: Path) -> bool:
    """Whether the database file and its folder (WAL keeps two files beside it) accept writes."""
    folder = path.parent if path.parent != Path("") else Path(".")
    return os.access(path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)


class Store:
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
            raise StorageError(f"there is no database at {self.path} to read; check the path (--db or "
                               f"FEDMOSAIC_DB)")
        if self.read_only:
            self.db  # noqa: B018 - open now, so a file that cannot be read is reported here
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self.db
            with self.write():
                migrations.apply(db)
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise _damaged_error(self.path, str(exc)) from None
            raise StorageError(f"cannot open the database at {self.path}: {exc}; choose a writable "
                               f"location with --db or FEDMOSAIC_DB") from None
        except (OSError, sqlite3.Error, StorageError) as exc:
            raise StorageError(f"cannot open the database at {self.path}: {exc}; choose a writable "
                               f"location with --db or FEDMOSAIC_DB") from None

    def _check_intact(self) -> None:
        """Refuse a damaged file before anything writes to it: the SQLite header, then
        ``PRAGMA quick_check`` on a read-only connection."""
        try:
            with self.path.open("rb") as fh:
                header = fh.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise StorageError(f"cannot read the database {self.path}: {exc.strerror or exc}") from None
        if header != SQLITE_HEADER:
            raise _damaged_error(self.path, "it is not an SQLite database file")
        try:
            rows = self._quick_check(immutable=False)
        except sqlite3.DatabaseError as exc:
            if _damaged(exc):
                raise _damaged_error(self.path, str(exc)) from None
            try:  # its folder cannot hold the WAL index: read the file as a snapshot
                rows = self._quick_check(immutable=True)
            except sqlite3.DatabaseError as again:
                if _damaged(again):
                    raise _damaged_error(self.path, str(again)) from None
                raise StorageError(f"cannot open the database {self.path} ({again}); check its "
                                   f"permissions") from None
            self.read_only = self._immutable = True
        if rows != [("ok",)]:
            raise _damaged_error(self.path, "; ".join(str(r[0]) for r in rows[:3]))

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
        return sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?{mode}", uri=True, timeout=30,
                               check_same_thread=True)

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
            raise StorageError(f"the database {self.path} is read-only here: runs can be listed, shown and "
                               f"exported, not launched or changed; to run, choose a writable location "
                               f"with --db or FEDMOSAIC_DB")
        db = self.db
        if db.conn.in_transaction:
            with db.atomic():
                yield db
            return
        try:
            db.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _storage_error(self.path, exc) from None
        try:
            yield db
        except BaseException as exc:
            if db.conn.in_transaction:
                db.conn.rollback()
            if isinstance(exc, sqlite3.DatabaseError):
                raise _storage_error(self.path, exc) from None
            raise
        try:
            db.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if db.conn.in_transaction:
                db.conn.rollback()
            raise _storage_error(self.path, exc) from None

    # ---- writing ----------------------------------------------------------------------------
    def create_run(self, config: Mapping[str, Any], *, status: str = "queued", name: str | None = None,
                   group_id: str | None = None, tags: Iterable[str] = (), run_id: str | None = None,
                   owner: str | None = None, variant: str | None = None,
                   parent_id: str | None = None) -> str:
        """Insert a run row and return its id.

        :param owner: the process that will run it (default: this one, :func:`process_owner`).
        :param variant: label of a sweep member without its seed (``"fedprox (mu=0.1)"``): runs of
            one ``group_id`` with the same variant are seeds of one setting.
        :param parent_id: the run this one was forked from.
        """
        run_id = run_id or uuid.uuid4().hex[:12]
        text = _dumps(config)
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"this config is {len(text) / 1e6:.1f} MB as JSON; a run stores at most "
                              f"{MAX_CONFIG_BYTES / 1e6:.0f} MB of config: keep data in files, not in the config")
        with self.write() as db:
            db["runs"].insert({
                "id": run_id, "name": _clean_name(name or config.get("name", "experiment")), "status": status,
                "config": text, "seed": config.get("seed", 0),
                "strategy": (config.get("strategy") or {}).get("name", ""),
                "dataset": dataset_label(config.get("data") or {}),
                "n_clients": sum(int(c.get("count", 1)) for c in config.get("clients", [])),
                "rounds": config.get("rounds", 0), "current_round": 0, "group_id": group_id,
                "tags": _dumps(_clean_tags(tags)), "created_at": time.time(),
                "owner": owner or process_owner(), "variant": variant, "parent_id": parent_id,
                "cancel_requested": 0,
            })
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set columns of a run row (dicts and lists are stored as JSON)."""
        values = {k: (_dumps(v) if isinstance(v, (dict, list)) else v) for k, v in fields.items()}
        with self.write() as db:
            db["runs"].update(run_id, values)

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
            rows = db.execute(f"SELECT id FROM runs WHERE cancel_requested = 1 AND id IN ({marks})",
                              ids).fetchall()
        return {r[0] for r in rows}

    def set_live(self, run_id: str, live: Mapping[str, Any] | None) -> None:
        """Record the round in progress (``{"round", "phase", "selected", "training", ...}``)."""
        with self.write() as db:
            db.execute("UPDATE runs SET live = ?, heartbeat_at = ? WHERE id = ?",
                       [_dumps(live) if live is not None else None, time.time(), run_id])

    def request_cancel(self, run_id: str) -> None:
        """Ask whichever process runs ``run_id`` to cancel it (checked by its heartbeat and after
        every round)."""
        self.get_run(run_id)
        with self.write() as db:
            db.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", [run_id])

    @_reads
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
                f"WHERE id = ? AND status IN ({marks})", [owner, time.time(), run_id, *statuses])
            return cur.rowcount == 1

    def write_clients(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace the run's client rows."""
        with self.write() as db:
            db.execute("DELETE FROM clients WHERE run_id = ?", [run_id])
            db["clients"].insert_all(
                [{"run_id": run_id, **{k: (_dumps(v) if isinstance(v, (dict, list)) else v)
                                        for k, v in r.items()}} for r in rows])

    def write_round(self, run_id: str, rnd: int, round_metrics: Mapping[str, float],
                    client_metrics: Mapping[int, Mapping[str, float]],
                    events: Iterable[tuple[str, str]] = ()) -> bool:
        """Write one round's figures and events in one transaction and advance ``current_round``.

        :returns: whether cancellation of the run was requested (:meth:`request_cancel`).
        """
        now = time.time()
        with self.write() as db:
            db["round_metrics"].upsert_all(
                [{"run_id": run_id, "round": rnd, "key": k, "value": float(v)}
                 for k, v in round_metrics.items()], pk=("run_id", "round", "key"))
            db["client_metrics"].upsert_all(
                [{"run_id": run_id, "round": rnd, "client_id": cid, "key": k, "value": float(v)}
                 for cid, m in client_metrics.items() for k, v in m.items()],
                pk=("run_id", "round", "client_id", "key"))
            for level, message in events:
                db["events"].insert({"run_id": run_id, "ts": now, "round": rnd, "level": level,
                                     "message": message})
            db.execute("UPDATE runs SET current_round = ?, heartbeat_at = ?, live = NULL WHERE id = ?",
                       [rnd, now, run_id])
            row = db.execute("SELECT cancel_requested FROM runs WHERE id = ?", [run_id]).fetchone()
        return bool(row and row[0])

    def add_event(self, run_id: str, message: str, level: str = "info", rnd: int | None = None) -> None:
        """Append one event to the run's log."""
        with self.write() as db:
            db["events"].insert({"run_id": run_id, "ts": time.time(), "round": rnd,
                                 "level": level, "message": message})

    def add_checkpoint(self, run_id: str, rnd: int, path: Path) -> None:
        """Record a checkpoint file."""
        with self.write() as db:
            db["checkpoints"].upsert({"run_id": run_id, "round": rnd, "path": str(path),
                                      "created_at": time.time()}, pk=("run_id", "round"))

    def prune_checkpoints(self, run_id: str, keep: int = 2) -> None:
        """Keep the run's newest ``keep`` checkpoints; delete the older rows and files."""
        old = self.checkpoints(run_id)[max(keep, 1):]
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
        name = _clean_name(name)
        if not name or len(name) > 120:
            raise ConfigError("a run name needs 1 to 120 characters")
        self.get_run(run_id)
        self.update_run(run_id, name=name)

    def set_tags(self, run_id: str, tags: Iterable[str]) -> list[str]:
        """Replace a run's tags (trimmed, duplicates and empty ones dropped); returns them."""
        clean = _clean_tags(tags)
        self.get_run(run_id)
        self.update_run(run_id, tags=clean)
        return clean

    def stale(self, stale_after_s: float = STALE_AFTER_S, now: float | None = None) -> dict[str, str]:
        """``queued``/``running`` runs whose owning process is dead or, where that cannot be
        told (another host), whose last sign of life is older than ``stale_after_s``: id ->
        what happened, for the ``interrupted`` status. Reads only."""
        now = time.time() if now is None else now
        rows = list(self.db.query(
            "SELECT id, owner, status, current_round, heartbeat_at, started_at, created_at FROM runs "
            "WHERE status IN ('queued', 'running')"))
        out: dict[str, str] = {}
        for r in rows:
            alive = owner_alive(r["owner"])
            last = max(r["heartbeat_at"] or 0, r["started_at"] or 0, r["created_at"] or 0)
            if alive is False or (alive is None and now - last > stale_after_s):
                ckpt = next(iter(self.checkpoints(r["id"])), None)
                where = f"the checkpoint of round {ckpt['round']}" if ckpt else "round 1 (no checkpoint yet)"
                out[r["id"]] = (f"interrupted at round {r['current_round']}: the process running it stopped "
                                f"(last sign of life {_iso(last)}); resume continues from {where}")
        return out

    def reap(self, stale_after_s: float = STALE_AFTER_S, now: float | None = None) -> list[str]:
        """Mark ``interrupted`` every run :meth:`stale` finds (nothing on a read-only database).
        Returns their ids."""
        if self.read_only:
            return []
        now = time.time() if now is None else now
        rows = {r["id"]: r for r in self.db.query(
            "SELECT id, owner, status FROM runs WHERE status IN ('queued', 'running')")}
        done = []
        for run_id, message in self.stale(stale_after_s, now).items():
            r = rows.get(run_id)
            if r is None:
                continue
            with self.write() as db:
                cur = db.execute(
                    "UPDATE runs SET status = 'interrupted', live = NULL, error = ? "
                    "WHERE id = ? AND status = ? AND owner IS ?", [message, run_id, r["status"], r["owner"]])
                if cur.rowcount:
                    db["events"].insert({"run_id": run_id, "ts": now, "round": None, "level": "warning",
                                         "message": message})
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
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?)",
                           [str(time.time())])
        except (StorageError, sqlite3.Error) as exc:
            raise StorageError(f"the database {self.path} cannot be written ({exc}); choose a writable "
                               f"location with --db or FEDMOSAIC_DB") from None
        folder = self.checkpoint_dir
        probe = folder / f".write-probe-{uuid.uuid4().hex[:8]}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"\0" * 65536)
            free = shutil.disk_usage(folder).free
        except OSError as exc:
            raise StorageError(f"cannot write checkpoints under {folder} ({exc.strerror or exc}); free "
                               f"some disk space or set FEDMOSAIC_HOME to a writable folder") from None
        finally:
            try:
                probe.unlink(missing_ok=True)
            except OSError:
                pass
        if free < min_free_mb * 2**20:
            raise StorageError(f"only {free / 2**20:.0f} MB free on the disk holding {folder}; a run "
                               f"needs at least {min_free_mb:.0f} MB for its figures and checkpoints: "
                               f"free some space or set FEDMOSAIC_HOME to another disk")

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

    # ---- reading ----------------------------------------------------------------------------
    @_reads
    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run row with ``config``, ``tags``, ``versions``, ``manifest``, ``summary``, ``live``
        parsed.

        :raises RunNotFoundError: no such run.
        """
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            raise RunNotFoundError(f"no run with id '{run_id}' in {self.path}")
        return _parse_run(rows[0])

    @_reads
    def list_runs(self, status: str | None = None, limit: int | None = None, *,
                  group_id: str | None = None, tag: str | None = None,
                  ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
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
        return [_parse_run(r) for r in self.db.query(sql, params)]

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

    @_reads
    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """Checkpoint rows, newest first."""
        return list(self.db.query("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY round DESC", [run_id]))

    @_reads
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
        rows = self.db.execute("SELECT round, key, value FROM round_metrics WHERE run_id = ? AND round >= ? "
                               "ORDER BY round", [run_id, max(cur - 4, 0)]).fetchall()
        by_round: dict[int, dict[str, float]] = {}
        for rnd, key, value in rows:
            by_round.setdefault(rnd, {})[key] = value
        last = by_round.get(cur, {})
        evaluated = self.db.execute(
            "SELECT MAX(round) FROM round_metrics WHERE run_id = ? AND key LIKE 'local_%'", [run_id]).fetchone()[0]
        last_eval = ({k: v for k, v in self.db.execute(
            "SELECT key, value FROM round_metrics WHERE run_id = ? AND round = ?", [run_id, evaluated])}
            if evaluated is not None else {})
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

            times = [v for (v,) in self.db.execute(
                "SELECT value FROM round_metrics WHERE run_id = ? AND key = 'wall_s' AND round <= ? ORDER BY round",
                [run_id, cur])]
            in_round = now - float(live["started_at"]) if live and live.get("started_at") and in_progress else 0.0
            eta = remaining_seconds(times, total, in_round)
        ckpt = next(iter(self.checkpoints(run_id)), None)
        return {
            "run_id": run_id, "name": run["name"], "status": run["status"], "current_round": cur,
            "rounds": total, "fraction": (cur / total) if total else 0.0, "elapsed_s": elapsed,
            "eta_s": eta, "last_metrics": last, "last_evaluated": last_eval,
            "round_in_progress": in_progress, "phase": live.get("phase") if in_progress else None,
            "clients": self._client_progress(run_id, cur, live if in_progress else None),
            "checkpoint_round": ckpt["round"] if ckpt else None,
            "resumable": run["status"] in RESUMABLE, "error": run.get("error"),
            "heartbeat_age_s": (now - run["heartbeat_at"]) if run.get("heartbeat_at") else None,
            "group_id": run.get("group_id"), "variant": run.get("variant"), "tags": run.get("tags") or [],
            "started_at": run.get("started_at"), "finished_at": run.get("finished_at"),
        }

    def _client_progress(self, run_id: str, cur: int, live: dict[str, Any] | None) -> list[dict[str, Any]]:
        roster = list(self.db.query("SELECT client_id, name, arch, tier, join_round FROM clients "
                                    "WHERE run_id = ? ORDER BY client_id", [run_id]))
        latest: dict[int, dict[str, Any]] = {}
        for cid, rnd, key, value in self.db.execute(
                "SELECT client_id, round, key, value FROM client_metrics WHERE run_id = ? AND round = ?",
                [run_id, cur]):
            latest.setdefault(cid, {"round": rnd})[key] = value
        out = []
        for c in roster:
            m = latest.get(c["client_id"], {})
            row: dict[str, Any] = {"client_id": c["client_id"], "name": c["name"], "arch": c["arch"],
                                   "tier": c["tier"], **{k: v for k, v in m.items() if k != "round"},
                                   "round": m.get("round")}
            if live is not None:
                rnd = int(live.get("round", cur + 1))
                cid = c["client_id"]
                row["selected"] = cid in live.get("selected", [])
                row["completed"] = False
                row["status"] = ("not joined" if (c["join_round"] or 1) > rnd else
                                 "training" if cid in live.get("training", []) else
                                 "dropped" if cid in live.get("dropped", []) else "waiting")
            else:
                row["selected"] = bool(m.get("selected", 0))
                row["completed"] = bool(m.get("completed", 0))
                row["status"] = ("not joined" if (c["join_round"] or 1) > max(cur, 1) else
                                 "done" if row["completed"] else "dropped" if row["selected"] else "idle")
            out.append(row)
        return out

    @_reads
    def _frame(self, table: str, run_id: str | list[str], order: str) -> pd.DataFrame:
        ids = [run_id] if isinstance(run_id, str) else list(run_id)
        marks = ",".join("?" * len(ids)) or "NULL"
        return pd.read_sql_query(f"SELECT * FROM {table} WHERE run_id IN ({marks}) ORDER BY run_id, {order}",
                                 self.db.conn, params=ids)


def _clean_name(text: Any) -> str:
    """A name or tag on one line, without control characters (escape sequences, bidi overrides)."""
    from engine.sanitize import terminal_safe

    return " ".join(terminal_safe(str(text)).split())


def _clean_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags:
        tag = _clean_name(tag)[:40]
        if tag and tag not in out:
            out.append(tag)
    return out


def _storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    text = str(exc)
    if _damaged(exc):
        return _damaged_error(path, text)
    if "full" in text:
        hint = "the disk is full: free some space or move the database with --db or FEDMOSAIC_DB"
    elif "readonly" in text or "read-only" in text or "unable to open" in text:
        hint = "it is read-only: choose a writable location with --db or FEDMOSAIC_DB"
    elif "locked" in text or "busy" in text:
        hint = "another process held it for over 30 s: try again"
    else:
        hint = "check the disk and the file's permissions"
    return StorageError(f"cannot write the database {path} ({text}); {hint}")


def _parse_run(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("config", "tags", "versions", "manifest", "summary", "live"):
        if isinstance(out.get(key), str):
            try:
                out[key] = json.loads(out[key])
            except json.JSONDecodeError:
                pass
    return out


def finite_or_none(value: Any) -> Any:
    """``None`` for NaN/inf floats (JSON has no NaN), the value otherwise."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
