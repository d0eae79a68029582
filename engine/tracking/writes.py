"""The :class:`engine.tracking.storage.Store` methods that write: a run's row, roster, rounds,
events and checkpoints, renames, tags and deletion, and the disk-space check before a launch.
Every write is one transaction through ``Store.write``."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, StorageError
from engine.labels import dataset_label
from engine.sanitize import clean_name, clean_tags
from engine.tracking.liveness import process_owner

MAX_CONFIG_BYTES = 2_000_000
"""Largest config (as JSON) a run row stores."""
MIN_FREE_MB = 64
"""Free disk space (MB) a launch needs beside the database (``FEDMOSAIC_MIN_FREE_MB`` overrides)."""

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class Writes:
    """The :class:`engine.tracking.storage.Store` methods that write (one transaction each)."""

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
