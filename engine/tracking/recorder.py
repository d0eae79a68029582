"""The SQLite recorder: the round loop's records (:class:`engine.core.recorder.Recorder`) written
to a run's row, figures, events and checkpoints in :class:`engine.tracking.storage.Store`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from engine.core.recorder import Recorder
from engine.tracking.storage import Store
from engine.tracking.writes import finite_or_none

log = logging.getLogger("fedmosaic.tracking")


class SqliteRecorder(Recorder):
    """Records one run in ``store``; ``run_id=None`` creates the run's row from ``config``."""

    def __init__(self, store: Store, run_id: str | None = None, config: dict[str, Any] | None = None) -> None:
        self.store = store
        self.run_id = run_id if run_id is not None else store.create_run(config or {}, status="queued")

    @property
    def keeps_checkpoints(self) -> bool:
        return True

    def started(
        self,
        clients: list[dict[str, Any]],
        *,
        resume: bool,
        versions: dict[str, str],
        manifest: dict[str, Any],
    ) -> None:
        self.store.write_clients(self.run_id, clients)
        first_start = self.store.get_run(self.run_id).get("started_at") if resume else None
        self.store.update_run(
            self.run_id,
            status="running",
            started_at=first_start or time.time(),
            error=None,
            traceback=None,
            versions=versions,
            manifest=manifest,
        )

    def live(self, progress: dict[str, Any]) -> None:
        self.store.set_live(self.run_id, progress)

    def round(
        self,
        rnd: int,
        round_metrics: dict[str, float],
        per_client: dict[int, dict[str, float]],
        events: list[tuple[str, str]],
    ) -> bool:
        return bool(self.store.write_round(self.run_id, rnd, round_metrics, per_client, events))

    def current_round(self) -> int:
        return int(self.store.get_run(self.run_id)["current_round"] or 0)

    def checkpoint_path(self, rnd: int) -> Path:
        return self.store.checkpoint_dir / self.run_id / f"round-{rnd:05d}.pt"

    def checkpointed(self, rnd: int, path: Path) -> None:
        self.store.add_checkpoint(self.run_id, rnd, path)
        self.store.prune_checkpoints(self.run_id, keep=2)

    def checkpoints(self) -> list[dict[str, Any]]:
        return self.store.checkpoints(self.run_id)

    def truncate_after(self, rnd: int) -> None:
        self.store.truncate_after(self.run_id, rnd)

    def ended(
        self,
        status: str,
        *,
        error: str | None = None,
        tb: str | None = None,
        summary: dict[str, Any] | None = None,
        events: list[tuple[str, str]] = (),
    ) -> None:
        fields: dict[str, Any] = {
            "status": status,
            "finished_at": time.time(),
            "live": None,
            "error": error,
            "traceback": tb,
        }
        if summary is not None:
            fields["summary"] = {k: finite_or_none(v) for k, v in summary.items()}
        try:
            self.store.update_run(self.run_id, **fields)
        except Exception:  # noqa: BLE001 - the original failure matters more; the run manager retries
            log.warning("run %s: could not record its end (%s)", self.run_id, status, exc_info=True)
        for level, message in events:
            try:
                self.store.add_event(self.run_id, message, level)
            except Exception:  # noqa: BLE001
                break
