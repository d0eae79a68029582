"""Where the round loop's records go: the seam between :mod:`engine.core.simulation` and storage.

The loop calls a :class:`Recorder` at each point where something is worth keeping (the run starts,
a round is in progress, a round ends, a checkpoint is written, the run ends) and never asks where
the records go. :class:`Recorder` itself keeps nothing (a run in memory: its figures are in
``Simulation.history``, it has no checkpoints); :class:`engine.tracking.recorder.SqliteRecorder`
writes the run's row, figures, events and checkpoints to the SQLite store. The observers
(:mod:`engine.tracking.observers`: kept models, MLflow) are called beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Recorder:
    """Records nothing: the default of a run without a store."""

    run_id: str | None = None

    @property
    def keeps_checkpoints(self) -> bool:
        """Whether checkpoints can be written (and so a run resumed)."""
        return False

    def started(
        self,
        clients: list[dict[str, Any]],
        *,
        resume: bool,
        versions: dict[str, str],
        manifest: dict[str, Any],
    ) -> None:
        """The run is about to train its first round (or its first after a checkpoint)."""

    def live(self, progress: dict[str, Any]) -> None:
        """The round in progress (which clients train), for progress pages."""

    def round(
        self,
        rnd: int,
        round_metrics: dict[str, float],
        per_client: dict[int, dict[str, float]],
        events: list[tuple[str, str]],
    ) -> bool:
        """Round ``rnd``'s figures and events, in one transaction. Returns whether someone asked,
        from elsewhere, to cancel the run."""
        return False

    def current_round(self) -> int:
        """The last round recorded (by this or an earlier process)."""
        return 0

    def checkpoint_path(self, rnd: int) -> Path:
        """Where round ``rnd``'s checkpoint goes."""
        raise NotImplementedError("this run keeps no checkpoints (it has no store)")

    def checkpointed(self, rnd: int, path: Path) -> None:
        """Round ``rnd``'s checkpoint was written to ``path``."""

    def checkpoints(self) -> list[dict[str, Any]]:
        """The run's checkpoints, newest first (``round``, ``path``)."""
        return []

    def truncate_after(self, rnd: int) -> None:
        """Forget every record after round ``rnd`` (a resumed run redoes them)."""

    def ended(
        self,
        status: str,
        *,
        error: str | None = None,
        tb: str | None = None,
        summary: dict[str, Any] | None = None,
        events: list[tuple[str, str]] = (),
    ) -> None:
        """How the run ended (``finished``, ``cancelled``, ``interrupted``, ``failed``): the one
        place its final status is written, then the events still pending."""
