"""The third storage migration (003_constraints) on a database file written by the previous
version: nothing is lost, a run's status is checked, and a run's rows go with it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from engine.errors import StorageError
from engine.tracking.schema import CHILD_TABLES, STATUSES, migrations
from engine.tracking.storage import Store


def _old_database(path: Path) -> None:
    """A version-2 file (migrations 001 and 002) with two runs, each with a row in every table that
    belongs to a run, one row of a run that no longer exists, and a status no version writes."""
    db = Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="003_constraints")
    for run_id, status in (("keep", "finished"), ("gone", "failed"), ("odd", "paused")):
        db["runs"].insert({"id": run_id, "name": run_id, "status": status, "config": "{}", "tags": "[]"})
    for run_id in ("keep", "gone", "orphan"):
        db["clients"].insert({"run_id": run_id, "client_id": 0, "name": "site-a", "arch": "mlp"})
        db["round_metrics"].insert({"run_id": run_id, "round": 1, "key": "acc", "value": 0.5})
        db["client_metrics"].insert(
            {"run_id": run_id, "round": 1, "client_id": 0, "key": "acc", "value": 0.4}
        )
        db["events"].insert({"run_id": run_id, "ts": 1.0, "round": 1, "level": "info", "message": "hi"})
        db["checkpoints"].insert(
            {"run_id": run_id, "round": 1, "path": str(path.parent / f"{run_id}.pt"), "created_at": 1.0}
        )
    db.conn.commit()
    db.close()


def _count(store: Store, table: str, run_id: str) -> int:
    return store.db.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]).fetchone()[0]


def test_an_old_database_keeps_its_rows_and_gains_the_constraints(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    _old_database(path)
    store = Store(path)
    assert "003_constraints" in [m.name for m in migrations.applied(store.db)]
    assert sorted(r["id"] for r in store.list_runs(ids=["keep", "gone"])) == ["gone", "keep"]
    assert store.get_run("keep")["status"] == "finished"
    assert store.get_run("odd")["status"] == "interrupted"  # a status no version writes: resumable
    for table in CHILD_TABLES:
        assert _count(store, table, "keep") == 1 and _count(store, table, "gone") == 1
        assert _count(store, table, "orphan") == 0  # rows of no run are not carried over
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    # the keys and indexes survive the rebuild: a new event gets its own id, the status index stays
    store.add_event("keep", "after the migration")
    assert len(store.events("keep")) == 2
    indexes = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "idx_runs_status" in indexes
    assert len(store.round_metrics("keep")) == 1 and store.progress("keep")["status"] == "finished"

    with pytest.raises(StorageError, match="CHECK constraint failed"):
        with store.write() as db:
            db.execute("UPDATE runs SET status = 'paused' WHERE id = 'keep'")
    assert store.get_run("keep")["status"] == "finished"

    kept = {table: _count(store, table, "keep") for table in CHILD_TABLES}
    with store.write() as db:  # a bare DELETE of the run: its rows go with it, no other run's
        db.execute("DELETE FROM runs WHERE id = 'gone'")
    assert all(_count(store, table, "gone") == 0 for table in CHILD_TABLES)
    assert {table: _count(store, table, "keep") for table in CHILD_TABLES} == kept


def test_a_new_database_refuses_an_unknown_status_and_a_row_of_no_run(tmp_path: Path) -> None:
    store = Store(tmp_path / "new.db")
    run_id = store.create_run({"name": "x", "rounds": 1}, status="queued")
    assert set(STATUSES) >= {"queued", "running", "finished", "failed", "cancelled", "interrupted"}
    with pytest.raises(StorageError, match="CHECK constraint failed"):
        with store.write() as db:
            db.execute("UPDATE runs SET status = 'done' WHERE id = ?", [run_id])
    with pytest.raises(StorageError, match="FOREIGN KEY constraint failed"):
        with store.write() as db:
            db.execute("INSERT INTO events (run_id, ts, level, message) VALUES ('nobody', 1, 'info', 'x')")
    store.add_event(run_id, "kept")
    store.delete_run(run_id)
    assert store.db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
