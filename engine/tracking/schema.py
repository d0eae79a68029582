"""The database's schema: run statuses and the migrations (sqlite-utils), in the order they apply.
A new column or constraint is a new migration at the end; a database of any earlier version is
brought up to date when a :class:`engine.tracking.storage.Store` opens it."""

from __future__ import annotations

from collections.abc import Mapping

from sqlite_utils import Database, Migrations

STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
RESUMABLE = ("interrupted", "cancelled", "failed")

migrations = Migrations("fedmosaic")


@migrations(name="001_initial")
def _initial(db: Database) -> None:
    db["runs"].create(
        {
            "id": str,
            "name": str,
            "status": str,
            "config": str,
            "seed": int,
            "strategy": str,
            "dataset": str,
            "n_clients": int,
            "rounds": int,
            "current_round": int,
            "group_id": str,
            "tags": str,
            "created_at": float,
            "started_at": float,
            "finished_at": float,
            "heartbeat_at": float,
            "error": str,
            "traceback": str,
            "versions": str,
            "manifest": str,
            "summary": str,
        },
        pk="id",
        not_null={"status", "config"},
        defaults={"current_round": 0, "tags": "[]"},
    )
    db["runs"].create_index(["status"])
    db["runs"].create_index(["group_id"])
    db["clients"].create(
        {
            "run_id": str,
            "client_id": int,
            "name": str,
            "arch": str,
            "model": str,
            "n_params": int,
            "flops": int,
            "n_train": int,
            "n_test": int,
            "label_counts": str,
            "device": str,
            "tier": str,
            "join_round": int,
            "preprocessing": str,
            "optimizer": str,
            "lr": float,
            "epochs": int,
            "batch_size": int,
            "memory_bytes": int,
        },
        pk=("run_id", "client_id"),
    )
    db["round_metrics"].create(
        {"run_id": str, "round": int, "key": str, "value": float}, pk=("run_id", "round", "key")
    )
    db["client_metrics"].create(
        {"run_id": str, "round": int, "client_id": int, "key": str, "value": float},
        pk=("run_id", "round", "client_id", "key"),
    )
    db["events"].create(
        {"id": int, "run_id": str, "ts": float, "round": int, "level": str, "message": str}, pk="id"
    )
    db["events"].create_index(["run_id"])
    db["checkpoints"].create(
        {"run_id": str, "round": int, "path": str, "created_at": float}, pk=("run_id", "round")
    )
    db.create_view(
        "run_summary",
        """
        SELECT id, name, status, strategy, dataset, n_clients, rounds, current_round, seed,
               group_id, tags, created_at, started_at, finished_at, heartbeat_at, error, summary
        FROM runs""",
    )


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
    _rebuild(
        db,
        "runs",
        f"CHECK (status IN ({statuses}))",
        {"status": f"CASE WHEN status IN ({statuses}) THEN status ELSE 'interrupted' END"},
    )
    for table in CHILD_TABLES:
        _rebuild(
            db,
            table,
            "FOREIGN KEY (run_id) REFERENCES runs(id) ON DELETE CASCADE",
            where="run_id IN (SELECT id FROM runs)",
        )
    db.create_view("run_summary", _RUN_SUMMARY)


def _rebuild(
    db: Database, table: str, constraint: str, exprs: Mapping[str, str] | None = None, where: str = "1"
) -> None:
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
    indexes = [
        r[0]
        for r in db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", [table]
        ).fetchall()
    ]
    names = [c[1] for c in columns]
    select = ", ".join((exprs or {}).get(n, f"[{n}]") for n in names)
    db.execute(f"CREATE TABLE [{table}_new] (\n   {', '.join(defs)}\n)")
    db.execute(
        f"INSERT INTO [{table}_new] ({', '.join(f'[{n}]' for n in names)}) "
        f"SELECT {select} FROM [{table}] WHERE {where}"
    )
    db.execute(f"DROP TABLE [{table}]")
    db.execute(f"ALTER TABLE [{table}_new] RENAME TO [{table}]")
    for sql in indexes:
        db.execute(sql)
