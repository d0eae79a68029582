"""Reliability: a process killed with SIGKILL mid-round, a cancel from another process, eight
runs at once on a pool of two with a reader polling, and storage that cannot be written (an
unusable data directory, a full disk, a failing checkpoint write, a full database)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from conftest import digits_config
from test_runs import assert_same_figures, wait_until

from engine.config import parse_config
from engine.errors import StorageError
from engine.tracking.runs import RunManager, get_manager
from engine.tracking.storage import Store

ROOT = Path(__file__).parents[1]
MANAGER_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from engine.config import load_config
from engine.tracking.runs import get_manager
mgr = get_manager(sys.argv[1], workers=1)
run_id = mgr.submit(load_config(sys.argv[2]))
print(run_id, flush=True)
mgr.wait(run_id)
"""


def config_file(tmp_path, **overrides) -> Path:
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(digits_config(**overrides)))
    return path


def only_run(store: Store) -> dict:
    runs = store.list_runs()
    return store.get_run(runs[0]["id"]) if runs else {}


def reference(tmp_path, path: Path):
    """The same config and seed, run alone in this process."""
    store = Store(tmp_path / "alone.db")
    mgr = RunManager(store, workers=1)
    try:
        from engine.config import load_config

        run_id = mgr.submit(load_config(path))
        assert mgr.wait(run_id, 120) == "finished"
    finally:
        mgr.shutdown()
    return store, run_id


@pytest.mark.parametrize("how", [pytest.param("cli", marks=pytest.mark.slow), "manager"])
def test_kill_9_mid_round_then_restart_marks_interrupted_keeps_rounds_and_resumes_exactly(tmp_path, how):
    db = tmp_path / "killed.db"
    path = config_file(tmp_path, rounds=30, checkpoint_every=2, fraction=0.75)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    command = (
        [sys.executable, "-m", "engine", "--db", str(db), "run", str(path), "--json"]
        if how == "cli"
        else [sys.executable, "-c", MANAGER_SCRIPT, str(db), str(path)]
    )
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: db.exists(), timeout=300)
        store = Store(db)

        def mid_round() -> bool:
            row = only_run(store)
            live = row.get("live")
            return isinstance(live, dict) and live.get("round", 0) >= 4 and row["status"] == "running"

        wait_until(mid_round, timeout=600, interval=0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(120)
    assert proc.returncode == -signal.SIGKILL
    store = Store(db)
    run = only_run(store)
    run_id, done = run["id"], run["current_round"]
    assert run["status"] == "running" and 3 <= done < 30  # what the dead process left behind

    mgr = RunManager(store, workers=1)
    try:
        assert mgr.interrupted == [run_id]
        row = store.get_run(run_id)
        assert row["status"] == "interrupted" and "process running it stopped" in row["error"]
        rm, cm = store.round_metrics(run_id), store.client_metrics(run_id)
        assert sorted(rm["round"].unique()) == list(
            range(1, done + 1)
        )  # every completed round, no partial one
        keys = set(rm[rm["round"] == 1]["key"])
        assert all(set(rm[rm["round"] == r]["key"]) == keys for r in range(1, done + 1))
        assert all(cm[cm["round"] == r]["client_id"].nunique() == 4 for r in range(1, done + 1))
        ckpt = mgr.progress(run_id)["checkpoint_round"]
        assert ckpt is not None and ckpt >= 2 and ckpt % 2 == 0
        mgr.resume(run_id)
        assert mgr.wait(run_id, 120) == "finished"
    finally:
        mgr.shutdown()
    assert f"resumed from the checkpoint of round {ckpt}" in store.events(run_id)["message"].tolist()
    alone_store, alone = reference(tmp_path, path)
    assert_same_figures(store, run_id, alone_store, alone)
    assert (
        store.get_run(run_id)["summary"]["global_acc_mean"]
        == alone_store.get_run(alone)["summary"]["global_acc_mean"]
    )


@pytest.mark.slow
def test_cancel_from_another_process_then_cli_resume(tmp_path):
    """A foreground ``python -m engine run`` is cancelled through the database (what ``python -m
    engine cancel`` does from another process), stops between rounds with a checkpoint of its last
    round, and ``python -m engine resume`` finishes it with the figures of an uninterrupted run."""
    db = tmp_path / "x.db"
    path = config_file(tmp_path, rounds=30, checkpoint_every=10)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "--db", str(db), "run", str(path), "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: db.exists() and only_run(Store(db)).get("current_round", 0) >= 2,
            timeout=600,
            interval=0.005,
        )
        run_id = only_run(Store(db))["id"]
        Store(db).request_cancel(run_id)
    finally:
        out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1 and json.loads(out.strip().splitlines()[-1])["status"] == "cancelled"
    store = Store(db)
    p = store.progress(run_id)
    assert p["status"] == "cancelled" and 2 <= p["current_round"] < 30
    assert p["checkpoint_round"] == p["current_round"]  # stopped between rounds: nothing to redo
    resume = subprocess.run(
        [sys.executable, "-m", "engine", "--db", str(db), "resume", run_id, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resume.returncode == 0, resume.stderr
    assert json.loads(resume.stdout.strip().splitlines()[-1])["status"] == "finished"
    assert (
        f"resumed from the checkpoint of round {p['current_round']}"
        in store.events(run_id)["message"].tolist()
    )
    alone_store, alone = reference(tmp_path, path)
    assert_same_figures(store, run_id, alone_store, alone)


def test_cli_cancel_of_a_run_in_another_live_process_sets_the_flag(tmp_path):
    store = Store(tmp_path / "x.db")
    run_id = store.create_run(digits_config(), status="running")  # owned by this live process
    cancel = subprocess.run(
        [sys.executable, "-m", "engine", "--db", str(store.path), "cancel", run_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert cancel.returncode == 0 and "cancel requested" in cancel.stdout, cancel.stderr
    assert store.cancel_requested(run_id) and store.get_run(run_id)["status"] == "running"


def test_eight_runs_on_a_pool_of_two_while_a_reader_polls(tmp_path):
    mgr = get_manager(tmp_path / "busy.db", workers=2, heartbeat_s=0.1)
    errors: list[str] = []
    latencies: list[float] = []
    stop = threading.Event()
    max_running = [0]

    def reader() -> None:
        store = Store(mgr.store.path)  # a page in another thread, its own connection
        while not stop.is_set():
            started = time.perf_counter()
            try:
                runs = store.list_runs()
                max_running[0] = max(max_running[0], sum(r["status"] == "running" for r in runs))
                store.round_metrics([r["id"] for r in runs])
                for r in runs[:3]:
                    store.progress(r["id"])
            except Exception as exc:  # noqa: BLE001 - the test collects every failure
                errors.append(repr(exc))
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        config = parse_config(digits_config(rounds=3, checkpoint_every=1))
        ids = [mgr.submit(config.model_copy(update={"seed": i})) for i in range(8)]
        statuses = [mgr.wait(r, 180) for r in ids]
    finally:
        stop.set()
        thread.join(30)
    try:
        assert statuses == ["finished"] * 8
        assert errors == [] and not any("locked" in e for e in errors)
        assert max_running[0] <= 2  # the pool bounds how many train at once
        assert len(latencies) > 20 and max(latencies) < 5.0
        for run_id in ids:
            assert sorted(mgr.store.round_metrics(run_id)["round"].unique()) == [1, 2, 3]
        alone = mgr.submit(config.model_copy(update={"seed": 5}))
        assert mgr.wait(alone, 60) == "finished"
        assert_same_figures(mgr.store, ids[5], mgr.store, alone)  # concurrency changed nothing
    finally:
        mgr.shutdown()


# ---- storage that cannot be written -------------------------------------------------------------------
def test_database_under_a_regular_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot open the database .*FEDMOSAIC_DB"):
        Store(blocker / "runs.db")
    with pytest.raises(StorageError):
        get_manager(blocker / "runs.db")


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: permissions do not stop writes (the other cases here cover it)",
)
def test_read_only_data_directory_is_a_clear_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StorageError):
            Store(folder / "runs.db")
    finally:
        folder.chmod(0o700)


def test_unwritable_checkpoint_folder_refuses_the_launch_without_a_row(tmp_path):
    mgr = RunManager(Store(tmp_path / "d" / "runs.db"), workers=1)
    try:
        (tmp_path / "d" / "checkpoints").write_text("a file where the checkpoint folder should be")
        with pytest.raises(StorageError, match="cannot write checkpoints under .*FEDMOSAIC_HOME"):
            mgr.submit(parse_config(digits_config()))
        with pytest.raises(StorageError):
            mgr.sweep(parse_config(digits_config()), seeds=[0, 1])
        assert mgr.store.list_runs() == []
    finally:
        mgr.shutdown()


def test_full_disk_refuses_the_launch_without_a_row(tmp_path, monkeypatch):
    import engine.tracking.writes

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        engine.tracking.writes.shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30, 2**20)
    )
    mgr = RunManager(Store(tmp_path / "runs.db"), workers=1)
    try:
        with pytest.raises(StorageError, match="only 1 MB free"):
            mgr.submit(parse_config(digits_config()))
        assert mgr.store.list_runs() == []
        monkeypatch.setenv("FEDMOSAIC_MIN_FREE_MB", "0.5")
        run_id = mgr.submit(parse_config(digits_config(rounds=1)))
        assert mgr.wait(run_id, 600) == "finished"
    finally:
        mgr.shutdown()


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError("[enforce fail at inline_container.cc] file write failed"),
    ],
)
def test_checkpoint_write_failure_fails_the_run_cleanly_and_resume_recovers(tmp_path, monkeypatch, failure):
    original = torch.save

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")  # what a full disk leaves behind
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    mgr = RunManager(Store(tmp_path / "runs.db"), workers=1)
    try:
        run_id = mgr.submit(parse_config(digits_config(rounds=4, checkpoint_every=2)))
        assert mgr.wait(run_id, 600) == "failed"
        row = mgr.store.get_run(run_id)
        assert "cannot write checkpoint" in row["error"] and "free some disk space" in row["error"]
        assert str(failure.args[-1]) in row["error"]
        assert sorted(mgr.store.round_metrics(run_id)["round"].unique()) == [1, 2]
        assert mgr.store.checkpoints(run_id) == []
        assert list((mgr.store.checkpoint_dir / run_id).glob("*")) == []  # no partial file left
        monkeypatch.setattr(torch, "save", original)
        mgr.resume(run_id)
        assert mgr.wait(run_id, 600) == "finished"
        assert sorted(mgr.store.round_metrics(run_id)["round"].unique()) == [1, 2, 3, 4]
    finally:
        mgr.shutdown()


def test_full_database_is_a_storage_error_and_never_a_partial_round(tmp_path):
    store = Store(tmp_path / "small.db")
    run_id = store.create_run(digits_config())
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 3}")
    metrics = {f"metric_{i:03d}": float(i) for i in range(300)}
    written = 0
    with pytest.raises(StorageError, match="disk is full"):
        for rnd in range(1, 1000):
            store.write_round(run_id, rnd, metrics, {0: metrics})
            written = rnd
    rm = store.round_metrics(run_id)
    assert sorted(rm["round"].unique()) == list(range(1, written + 1))
    assert (rm.groupby("round").size() == 300).all()
    assert store.get_run(run_id)["current_round"] == written
