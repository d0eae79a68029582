"""Runs in processes of their own (RunManager(isolation="process"), the app's choice;
engine/tracking/worker.py): the same figures as a run in a thread, a cancel stops the process between
batches keeping its rounds, and a process that dies is recorded as failed with why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import digits_config

from engine import threads
from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.tracking.runs import RunManager
from engine.tracking.storage import Store


@pytest.fixture
def manager(tmp_path):
    mgr = RunManager(Store(tmp_path / "runs.db"), workers=1, heartbeat_s=0.2, isolation="process")
    yield mgr
    mgr.shutdown(wait=False)


def workers_of(pid: int) -> list[int]:
    """Pids of this process's children running engine.tracking.worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"engine.tracking.worker" in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate, timeout=600.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


HOG = """
import os, time
os.nice(19)  # lowest priority: the hogs fill every idle cycle without slowing the test down much
parent, end = os.getppid(), time.monotonic() + 300
while time.monotonic() < end and os.getppid() == parent:
    pass
"""


def test_a_run_in_its_own_process_beside_cpu_hogs_keeps_the_thread_policy(tmp_path, monkeypatch):
    """The thread policy under load (issue #17): a run in a worker process of a manager with two
    slots, as the app runs them, beside two CPU-bound processes. The worker gets its slot's share
    of the process budget, one torch thread (small steps) and passive OpenMP waits, and gives the
    figures of the same run alone in a thread of this process: nothing in the policy follows the
    machine's load. (One run, not two: the share comes from the slots, and a second worker
    process would double the test's cost.)"""
    monkeypatch.setenv("FEDMOSAIC_THREADS", "2")  # the budget of a 2-core machine, whatever this one has
    budget = threads.process_budget()
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    mgr = RunManager(Store(tmp_path / "runs.db"), workers=2, heartbeat_s=0.2, isolation="process")
    seen: dict[int, tuple[bytes, bytes]] = {}
    try:
        config = digits_config(rounds=1)
        ids = [mgr.submit(config)]
        while not all(mgr.store.get_run(r)["status"] in ("finished", "failed", "cancelled") for r in ids):
            for pid in workers_of(os.getpid()):
                if pid not in seen:
                    try:
                        seen[pid] = (
                            Path(f"/proc/{pid}/cmdline").read_bytes(),
                            Path(f"/proc/{pid}/environ").read_bytes(),
                        )
                    except OSError:
                        pass
            time.sleep(0.05)
        statuses = [mgr.wait(r, timeout=600) for r in ids]
    finally:
        mgr.shutdown(wait=True)
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert statuses == ["finished"]
    assert mgr.run_share == threads.share(2, budget) == max(1, budget // 2)
    assert seen, "no worker process was seen while the runs trained"
    for cmdline, environ in seen.values():
        args = cmdline.split(b"\0")
        assert args[args.index(b"--share") + 1] == str(mgr.run_share).encode()
        assert b"OMP_WAIT_POLICY=PASSIVE" in environ.split(b"\0")
    here = Simulation(parse_config(config), root=tmp_path)
    here.run()
    for run_id in ids:
        assert mgr.store.get_run(run_id)["manifest"]["torch_threads"] == 1
        events = " | ".join(mgr.store.events(run_id)["message"])
        assert "torch threads: 1 (" in events
        assert f"{mgr.run_share} of the {budget} this process may" in events
        stored = mgr.store.round_metrics(run_id)
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
    assert wait_for(lambda: not workers_of(os.getpid()), timeout=300)


def test_a_process_that_dies_leaves_the_run_failed_saying_how(manager):
    run_id = manager.submit(digits_config(rounds=200))
    assert wait_for(lambda: (manager.store.get_run(run_id)["current_round"] or 0) >= 1)
    for pid in workers_of(os.getpid()):
        os.kill(pid, signal.SIGKILL)
    assert manager.wait(run_id, timeout=600) == "failed"
    assert "signal 9" in manager.store.get_run(run_id)["error"]
