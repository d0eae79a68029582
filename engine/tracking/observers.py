"""Observers of a run's records: called by the round loop after each recorded round and once when
the run ends. Every method does nothing by default (the shape of Sacred's observers), so an
observer overrides only what it uses; a failing observer never fails the run: its error becomes a
warning in the run's events.

Built in: :class:`engine.artifacts.keep.ModelKeeper` (every run keeps its models) and, when the
config asks (``tracking.mlflow``), :class:`engine.tracking.mlflow_sink.MlflowSink`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.core.simulation import RoundRecord, Simulation

log = logging.getLogger("fedmosaic.tracking")


class Observer:
    """Watches one run. ``sim`` gives the config, the store and run id, the strategy and the states."""

    name = "observer"

    def round(self, sim: Simulation, record: RoundRecord) -> None:
        """After round ``record.round`` was written."""

    def ended(self, sim: Simulation, status: str, rnd: int) -> None:
        """When the run ends with ``status`` (finished, cancelled, interrupted, failed) after its
        last completed round ``rnd``."""


class Observers(Observer):
    """Several observers as one; each one's failure is logged in the run's events and skipped."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def _each(self, sim: Simulation, method: str, *args: Any) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(sim, *args)
            except Exception as exc:  # noqa: BLE001 - an observer never stops the run
                log.warning("observer %s failed", observer.name, exc_info=True)
                sim._log(f"{observer.name}: {type(exc).__name__}: {str(exc)[:300]}", "warning")

    def round(self, sim: Simulation, record: RoundRecord) -> None:
        self._each(sim, "round", record)

    def ended(self, sim: Simulation, status: str, rnd: int) -> None:
        self._each(sim, "ended", status, rnd)


def observers_for(sim: Simulation) -> Observers:
    """The observers of a run: the model keeper, and the sinks its config's ``tracking`` names."""
    from engine.artifacts.keep import ModelKeeper

    found: list[Observer] = [ModelKeeper()]
    tracking = getattr(sim.config, "tracking", None)
    if tracking is not None and tracking.mlflow is not None:
        from engine.tracking.mlflow_sink import MlflowSink

        found.append(MlflowSink(tracking.mlflow))
    return Observers(found)
