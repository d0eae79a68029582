"""Runs in processes of their own (RunManager(isolation="process"), the app's choice;
engine/worker.py): the same figures as a run in a thread, a cancel stops the process between
batches keeping its rounds, and a process that dies is recorded as failed with why."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from conftest import digits_config

from engine.runs import RunManager
from engine.simulation import Simulation
from engine.config import parse_config
from engine.storage import Store


@pytest.fixture
def manager(tmp_path):
    mgr = RunManager(Store(tmp_path / "runs.db"), workers=1, heartbeat_s=0.2, isolation="process")
    yield mgr
    mgr.shutdown(wait=False)


def workers_of(pid: int) -> list[int]:
    """Pids of this process's children running engine.worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"engine.worker" in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate, timeout=600.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_run_in_its_own_process_gives_the_thread_runs_figures(manager, tmp_path):
    config = digits_config(rounds=2)
    run_id = manager.submit(config)
    assert manager.wait(run_id, timeout=600) == "finished"
    here = Simulation(parse_config(config), root=tmp_path)
    here.run()
    stored = manager.store.round_metrics(run_id)
    for record in here.history:
        row = stored[(stored["round"] == record.round) & (stored["key"] == "global_acc_mean")]["value"]
        assert float(row.iloc[0]) == pytest.approx(record.metrics["global_acc_mean"], abs=1e-6)
    assert not workers_of(os.getpid())


def test_cancel_stops_the_process_and_keeps_its_rounds(manager):
    run_id = manager.submit(digits_config(rounds=200, checkpoint_every=1))
    assert wait_for(lambda: (manager.store.get_run(run_id)["current_round"] or 0) >= 1)
    manager.cancel(run_id)
    assert manager.wait(run_id, timeout=600) == "cancelled"
    row = manager.store.get_run(run_id)
    assert 1 <= row["current_round"] < 200 and row["status"] == "cancelled"
    assert wait_for(lambda: not workers_of(os.getpid()), timeout=30)


def test_a_process_that_dies_leaves_the_run_failed_saying_how(manager):
    run_id = manager.submit(digits_config(rounds=200))
    assert wait_for(lambda: (manager.store.get_run(run_id)["current_round"] or 0) >= 1)
    for pid in workers_of(os.getpid()):
        os.kill(pid, signal.SIGKILL)
    assert manager.wait(run_id, timeout=600) == "failed"
    assert "signal 9" in manager.store.get_run(run_id)["error"]
