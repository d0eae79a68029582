"""The Recorder seam (engine.core.recorder): the round loop records through it and nowhere else;
the SQLite recorder owns the end-of-run write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import digits_config

from engine.config import parse_config
from engine.core.recorder import Recorder
from engine.core.simulation import Simulation
from engine.tracking.recorder import SqliteRecorder
from engine.tracking.storage import Store


class Calls(Recorder):
    """Remembers what the loop told it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def started(self, clients, *, resume, versions, manifest) -> None:  # noqa: ANN001
        self.calls.append(("started", len(clients), resume, manifest["seed"]))

    def live(self, progress) -> None:  # noqa: ANN001
        self.calls.append(("live", progress["round"]))

    def round(self, rnd, round_metrics, per_client, events) -> bool:  # noqa: ANN001
        self.calls.append(("round", rnd, "bytes_up" in round_metrics, sorted(per_client)))
        return False

    def ended(self, status, *, error=None, tb=None, summary=None, events=()) -> None:  # noqa: ANN001
        self.calls.append(("ended", status, error, bool(summary)))


def test_the_loop_records_through_its_recorder_in_order() -> None:
    rec = Calls()
    sim = Simulation(parse_config(digits_config(rounds=2)), recorder=rec)
    sim.run()
    n = len(sim.roster)
    assert [c[0] for c in rec.calls] == ["started", "live", "round", "live", "round", "ended"]
    assert rec.calls[0] == ("started", n, False, 0)
    assert rec.calls[2] == ("round", 1, True, list(range(n))) and rec.calls[4][1] == 2
    assert rec.calls[-1] == ("ended", "finished", None, True)


def test_the_sqlite_recorder_writes_the_end_once_for_the_loop_and_the_run_manager(tmp_path: Path) -> None:
    store = Store(tmp_path / "runs.db")
    rec = SqliteRecorder(store, config={"name": "x", "rounds": 3})
    assert store.get_run(rec.run_id)["status"] == "queued"
    rec.ended("failed", error="boom", tb="Traceback ...", events=[("warning", "late event")])
    row = store.get_run(rec.run_id)
    assert (row["status"], row["error"], row["traceback"]) == ("failed", "boom", "Traceback ...")
    assert row["live"] is None
    assert list(store.events(rec.run_id)["message"]) == ["late event"]
    rec.ended("finished", summary={"local_acc_mean": 0.5, "bad": float("nan")})
    row = store.get_run(rec.run_id)
    assert row["status"] == "finished" and row["error"] is None
    assert row["summary"] == {"local_acc_mean": 0.5, "bad": None}  # JSON has no NaN
