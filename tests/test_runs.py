"""The run manager: lifecycle transitions, cancel, resume equivalence, fork, sweeps, progress,
delete/rename/tags, heartbeat and cross-process cancel, and the CLI commands."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch
from conftest import digits_config

from engine.config import parse_config
from engine.errors import ConfigError, RunNotFoundError, RunStateError
from engine.strategies.fedavg import FedAvg
from engine.tracking.liveness import owner_alive, process_owner
from engine.tracking.runs import RunManager, get_manager
from engine.tracking.storage import Store
from engine.tracking.variants import deep_merge, set_path, strategy_label

WALL_KEYS = ("wall_s", "cum_wall_s")


def cfg(**overrides):
    return parse_config(digits_config(**overrides))


@pytest.fixture
def manager(tmp_path):
    mgr = RunManager(Store(tmp_path / "runs.db"), workers=2, heartbeat_s=0.2)
    yield mgr
    mgr.shutdown(wait=False)


def figures(store, run_id):
    """Every recorded number of a run except wall-clock times: {(round, key): value},
    {(round, client, key): value}."""
    rm = store.round_metrics(run_id)
    cm = store.client_metrics(run_id)
    rounds = {
        (r, k): v for r, k, v in zip(rm["round"], rm["key"], rm["value"], strict=True) if k not in WALL_KEYS
    }
    clients = {
        (r, c, k): v
        for r, c, k, v in zip(cm["round"], cm["client_id"], cm["key"], cm["value"], strict=True)
        if k not in WALL_KEYS
    }
    return rounds, clients


def assert_same_figures(store_a, id_a, store_b, id_b):
    ra, ca = figures(store_a, id_a)
    rb, cb = figures(store_b, id_b)
    assert set(ra) ^ set(rb) == set(), "round figures recorded by one run only"
    assert set(ca) ^ set(cb) == set(), "client figures recorded by one run only"
    for key, value in ra.items():
        assert value == pytest.approx(rb[key], abs=1e-6, nan_ok=True), key
    for key, value in ca.items():
        assert value == pytest.approx(cb[key], abs=1e-6, nan_ok=True), key


def wait_until(predicate, timeout=300.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


class Gate:
    """Blocks FedAvg's local training in a chosen round until released (to observe a run
    mid-round deterministically)."""

    def __init__(self, monkeypatch, rnd):
        self.rnd, self.entered, self.release = rnd, threading.Event(), threading.Event()
        original = FedAvg.local_update
        gate = self

        def local_update(strategy, ctx):
            if ctx.round == gate.rnd:
                gate.entered.set()
                assert gate.release.wait(300)
            return original(strategy, ctx)

        monkeypatch.setattr(FedAvg, "local_update", local_update)


# ---- lifecycle --------------------------------------------------------------------------------
def test_queued_then_running_then_finished(tmp_path, monkeypatch):
    gate = Gate(monkeypatch, rnd=2)
    mgr = RunManager(Store(tmp_path / "r.db"), workers=1, heartbeat_s=0.2)
    try:
        first = mgr.submit(cfg(rounds=3))
        second = mgr.submit(cfg(rounds=2, seed=1), name="second")
        assert gate.entered.wait(300)
        assert mgr.store.get_run(first)["status"] == "running"
        assert mgr.store.get_run(second)["status"] == "queued"
        assert mgr.progress(second)["queue_position"] == 1
        assert mgr.active() == [first, second]
        gate.release.set()
        assert mgr.wait(first, 60) == "finished" and mgr.wait(second, 60) == "finished"
        assert mgr.active() == []
        row = mgr.store.get_run(second)
        assert (
            row["name"] == "second" and row["current_round"] == 2 and row["finished_at"] >= row["started_at"]
        )
    finally:
        gate.release.set()
        mgr.shutdown(wait=False)


def test_failed_run_keeps_traceback_and_completed_rounds_then_resumes(manager, monkeypatch):
    original = FedAvg.aggregate

    def boom(self, results):
        if self.server.round == 3:
            raise RuntimeError("aggregation exploded")
        return original(self, results)

    monkeypatch.setattr(FedAvg, "aggregate", boom)
    run_id = manager.submit(cfg(rounds=4, checkpoint_every=2))
    assert manager.wait(run_id, 600) == "failed"
    row = manager.store.get_run(run_id)
    assert "aggregation exploded" in row["error"]
    assert "Traceback" in row["traceback"] and "boom" in row["traceback"]
    assert sorted(manager.store.round_metrics(run_id)["round"].unique()) == [1, 2]
    assert manager.progress(run_id)["resumable"] and manager.progress(run_id)["checkpoint_round"] == 2
    monkeypatch.setattr(FedAvg, "aggregate", original)
    manager.resume(run_id)
    assert manager.wait(run_id, 600) == "finished"
    row = manager.store.get_run(run_id)
    assert row["error"] is None and row["traceback"] is None and row["current_round"] == 4


def test_cancel_mid_round_then_resume_equals_an_uninterrupted_run(manager, monkeypatch):
    config = cfg(rounds=6, checkpoint_every=2, fraction=0.75)
    gate = Gate(monkeypatch, rnd=4)
    run_id = manager.submit(config)
    assert gate.entered.wait(300)
    manager.cancel(run_id)
    gate.release.set()
    assert manager.wait(run_id, 600) == "cancelled"
    p = manager.progress(run_id)
    assert p["current_round"] == 3 and p["checkpoint_round"] == 2 and p["resumable"]
    monkeypatch.undo()
    manager.resume(run_id)
    assert manager.wait(run_id, 600) == "finished"
    events = manager.store.events(run_id)["message"].tolist()
    assert "resumed from the checkpoint of round 2" in events
    alone = manager.submit(config)
    assert manager.wait(alone, 60) == "finished"
    assert_same_figures(manager.store, run_id, manager.store, alone)
    assert (
        manager.store.get_run(run_id)["summary"]["global_acc_mean"]
        == manager.store.get_run(alone)["summary"]["global_acc_mean"]
    )


def test_resume_with_device_tiers_and_a_deadline_equals_an_uninterrupted_run(manager, monkeypatch):
    """The virtual clock's draws (availability, dropout) and state (simulated time) resume too."""
    base = digits_config()["clients"][0]
    config = cfg(
        rounds=5,
        checkpoint_every=2,
        deadline=2.0,
        deadline_policy="partial",
        clients=[
            {**base, "count": 2, "name": "phone", "tier": "phone-low"},
            {**base, "count": 2, "name": "laptop", "tier": "laptop-cpu"},
        ],
    )
    gate = Gate(monkeypatch, rnd=4)
    run_id = manager.submit(config)
    assert gate.entered.wait(300)
    manager.cancel(run_id)
    gate.release.set()
    assert manager.wait(run_id, 600) == "cancelled"
    monkeypatch.undo()
    manager.resume(run_id)
    assert manager.wait(run_id, 600) == "finished"
    alone = manager.submit(config)
    assert manager.wait(alone, 60) == "finished"
    assert_same_figures(manager.store, run_id, manager.store, alone)
    assert figures(manager.store, alone)[0][(5, "sim_time_s")] > 0


def test_cancel_between_rounds_checkpoints_the_last_round(tmp_path):
    # a slow heartbeat: the request is seen where `python -m engine run` sees it, after a round
    mgr = RunManager(Store(tmp_path / "r.db"), workers=1, heartbeat_s=60)
    try:
        run_id = mgr.submit(cfg(rounds=60, checkpoint_every=10))
        wait_until(lambda: mgr.store.get_run(run_id)["current_round"] >= 3)
        mgr.store.request_cancel(run_id)  # what another process does
        assert mgr.wait(run_id, 600) == "cancelled"
        p = mgr.progress(run_id)
        assert p["checkpoint_round"] == p["current_round"] >= 3  # nothing to recompute on resume
    finally:
        mgr.shutdown(wait=False)


def test_cancel_a_queued_run_never_starts_it(tmp_path, monkeypatch):
    gate = Gate(monkeypatch, rnd=1)
    mgr = RunManager(Store(tmp_path / "r.db"), workers=1, heartbeat_s=0.2)
    try:
        first = mgr.submit(cfg(rounds=2))
        second = mgr.submit(cfg(rounds=2))
        assert gate.entered.wait(300)
        mgr.cancel(second)
        assert mgr.wait(second, 1) == "cancelled"
        gate.release.set()
        assert mgr.wait(first, 60) == "finished"
        row = mgr.store.get_run(second)
        assert row["started_at"] is None and row["current_round"] == 0
        assert mgr.store.round_metrics(second).empty
        with pytest.raises(RunStateError, match="only queued or running"):
            mgr.cancel(first)
        mgr.resume(second)  # a cancelled run that never started runs from round 1
        assert mgr.wait(second, 60) == "finished"
    finally:
        gate.release.set()
        mgr.shutdown(wait=False)


def test_resume_refuses_finished_and_active_runs(manager, monkeypatch):
    run_id = manager.submit(cfg(rounds=1))
    assert manager.wait(run_id, 600) == "finished"
    with pytest.raises(RunStateError, match="fork it"):
        manager.resume(run_id)
    gate = Gate(monkeypatch, rnd=1)
    other = manager.submit(cfg(rounds=1))
    assert gate.entered.wait(300)
    with pytest.raises(RunStateError, match="already"):
        manager.resume(other)
    gate.release.set()
    with pytest.raises(RunNotFoundError):
        manager.resume("nope")


def test_shutdown_without_waiting_leaves_runs_interrupted_and_resumable(tmp_path, monkeypatch):
    gate = Gate(monkeypatch, rnd=3)
    store = Store(tmp_path / "r.db")
    mgr = RunManager(store, workers=1, heartbeat_s=0.2)
    running = mgr.submit(cfg(rounds=4, checkpoint_every=2))
    queued = mgr.submit(cfg(rounds=2))
    assert gate.entered.wait(300)
    threading.Timer(0.3, gate.release.set).start()
    mgr.shutdown(wait=False)
    assert store.get_run(running)["status"] == "interrupted"
    assert store.get_run(queued)["status"] == "interrupted"
    with pytest.raises(RunStateError, match="shut down"):
        mgr.submit(cfg())
    monkeypatch.undo()
    again = RunManager(store, workers=1, heartbeat_s=0.2)
    try:
        again.resume(running)
        again.resume(queued)
        assert again.wait(running, 60) == "finished" and again.wait(queued, 60) == "finished"
    finally:
        again.shutdown()


# ---- start-up: stale runs -------------------------------------------------------------------------
def dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}|{proc.pid}|"


def test_startup_marks_runs_of_dead_or_silent_processes_interrupted(tmp_path):
    store = Store(tmp_path / "r.db")
    config = cfg().model_dump(mode="json")
    dead = store.create_run(config, status="running", owner=dead_owner())
    silent = store.create_run(config, status="queued", owner="elsewhere|123|1")
    store.update_run(silent, heartbeat_at=time.time() - 600, created_at=time.time() - 600)
    remote_alive = store.create_run(config, status="running", owner="elsewhere|456|1")
    store.heartbeat(remote_alive)
    ours = store.create_run(config, status="running")  # this (live) process
    finished = store.create_run(config, status="finished", owner=dead_owner())
    assert owner_alive(process_owner()) is True and owner_alive("elsewhere|1|1") is None
    mgr = RunManager(store, workers=1, stale_after_s=30)
    try:
        assert sorted(mgr.interrupted) == sorted([dead, silent])
        status = {r: store.get_run(r)["status"] for r in (dead, silent, remote_alive, ours, finished)}
        assert status == {
            dead: "interrupted",
            silent: "interrupted",
            remote_alive: "running",
            ours: "running",
            finished: "finished",
        }
        assert "process running it stopped" in store.get_run(dead)["error"]
        assert "stopped" in store.events(dead)["message"].iloc[-1]
    finally:
        mgr.shutdown()


def test_heartbeat_advances_and_a_cancel_from_another_process_stops_the_run(manager, monkeypatch):
    gate = Gate(monkeypatch, rnd=2)
    run_id = manager.submit(cfg(rounds=3))
    assert gate.entered.wait(300)
    first = manager.store.get_run(run_id)["heartbeat_at"]
    wait_until(lambda: manager.store.get_run(run_id)["heartbeat_at"] > first + 0.1, timeout=120)
    handle = manager._handles[run_id]
    Store(manager.store.path).request_cancel(run_id)  # as `python -m engine cancel` does elsewhere
    wait_until(handle.cancel.is_set, timeout=120)  # the heartbeat saw the flag while round 2 runs
    gate.release.set()
    assert manager.wait(run_id, 600) == "cancelled"
    assert manager.store.get_run(run_id)["current_round"] == 1  # stopped inside round 2


# ---- progress -----------------------------------------------------------------------------------
def test_progress_mid_round_and_after(manager, monkeypatch):
    gate = Gate(monkeypatch, rnd=2)
    run_id = manager.submit(cfg(rounds=3, fraction=0.5))
    assert gate.entered.wait(300)
    p = manager.progress(run_id)
    assert p["status"] == "running" and p["current_round"] == 1 and p["round_in_progress"] == 2
    assert (
        p["fraction"] == pytest.approx(1 / 3) and p["eta_s"] is None
    )  # one round: no estimate yet (engine/tracking/eta.py)
    assert p["elapsed_s"] > 0 and "global_acc_mean" in p["last_metrics"] and p["phase"] == "training"
    statuses = sorted(c["status"] for c in p["clients"])
    assert statuses == ["training", "training", "waiting", "waiting"]
    assert sum(c["selected"] for c in p["clients"]) == 2
    assert all(c["round"] == 1 and "local_acc" in c for c in p["clients"])  # latest figures
    assert sum("train_loss" in c for c in p["clients"]) == 2  # the two that trained in round 1
    gate.release.set()
    assert manager.wait(run_id, 600) == "finished"
    p = manager.progress(run_id)
    assert p["fraction"] == 1.0 and p["eta_s"] == 0.0 and p["round_in_progress"] is None
    done = [c for c in p["clients"] if c["status"] == "done"]
    assert len(done) == 2 and all(c["completed"] and c["round"] == 3 for c in done)
    assert {c["status"] for c in p["clients"]} == {"done", "idle"}


# ---- fork, sweep ----------------------------------------------------------------------------------
def test_fork_merges_changes_validates_and_does_not_launch(manager):
    run_id = manager.submit(cfg(rounds=1, strategy={"name": "fedprox", "mu": 0.3}))
    assert manager.wait(run_id, 600) == "finished"
    n_runs = len(manager.store.list_runs())
    forked = manager.fork(
        run_id, {"rounds": 2, "strategy": {"mu": 0.5}, "data": {"partition": {"alpha": 0.9}}}
    )
    assert forked.rounds == 2 and forked.strategy.name == "fedprox" and forked.strategy.params()["mu"] == 0.5
    assert forked.data.partition.params()["alpha"] == 0.9 and forked.data.partition.method == "dirichlet"
    assert forked.clients == cfg().clients
    other = manager.fork(run_id, {"strategy": {"name": "fedavg"}})  # fedprox's mu does not carry over
    assert other.strategy.name == "fedavg" and "mu" not in other.strategy.params()
    assert len(manager.store.list_runs()) == n_runs
    with pytest.raises(ConfigError, match="rounds"):
        manager.fork(run_id, {"rounds": 0})
    child = manager.submit(forked, parent_id=run_id)
    assert manager.store.get_run(child)["parent_id"] == run_id
    assert manager.wait(child, 60) == "finished"


def test_deep_merge_and_set_path():
    base = {"a": {"b": 1, "c": 2}, "l": [{"x": 1}, {"x": 2}], "strategy": {"name": "fedprox", "mu": 1}}
    assert deep_merge(base, {"a": {"b": 5}}) == {**base, "a": {"b": 5, "c": 2}}
    assert deep_merge(base, {"strategy": {"name": "fedavg"}})["strategy"] == {"name": "fedavg"}
    changes = set_path(base, "l.1.x", 9)
    assert deep_merge(base, changes)["l"] == [{"x": 1}, {"x": 9}]
    assert base["l"][1]["x"] == 2
    with pytest.raises(ConfigError):
        set_path(base, "l.5.x", 1)


def test_sweep_groups_seeds_and_strategies(manager):
    group_id, run_ids = manager.sweep(
        cfg(rounds=2),
        seeds=[0, 1],
        strategies=[{"name": "fedavg"}, {"name": "fedprox", "mu": 0.1}],
        name="cmp",
    )
    assert len(run_ids) == 4
    assert all(manager.wait(r, 60) == "finished" for r in run_ids)
    rows = manager.store.list_runs(group_id=group_id)
    assert {r["id"] for r in rows} == set(run_ids)
    assert sorted((r["variant"], r["seed"]) for r in rows) == [
        ("fedavg", 0),
        ("fedavg", 1),
        ("fedprox (mu=0.1)", 0),
        ("fedprox (mu=0.1)", 1),
    ]
    assert {r["name"] for r in rows} >= {"cmp · fedavg · seed 0", "cmp · fedprox (mu=0.1) · seed 1"}
    configs = [manager.store.get_run(r)["config"] for r in run_ids]
    assert [c["seed"] for c in configs] == [0, 1, 0, 1]
    assert [c["strategy"]["name"] for c in configs] == ["fedavg", "fedavg", "fedprox", "fedprox"]
    seed0, seed1 = (manager.store.get_run(r)["summary"]["global_acc_mean"] for r in run_ids[:2])
    assert seed0 != seed1  # seeds really differ


def test_sweep_validates_every_member_before_launching_any(manager):
    before = len(manager.store.list_runs())
    with pytest.raises(ConfigError, match="twice"):
        manager.sweep(cfg(), seeds=[0], strategies=["fedavg", {"name": "fedavg"}])
    with pytest.raises(ConfigError, match="mu"):
        manager.sweep(cfg(), seeds=[0, 1], strategies=["fedavg", {"name": "fedprox", "mu": -1}])
    with pytest.raises(ConfigError, match="seed"):
        manager.sweep(cfg(), seeds=[])
    assert len(manager.store.list_runs()) == before


def test_strategy_label_names_changed_parameters_only():
    assert strategy_label({"name": "fedavg"}) == "fedavg"
    assert strategy_label("fedprox") == "fedprox"
    assert strategy_label({"name": "fedprox", "mu": 0.5}) == "fedprox (mu=0.5)"


# ---- delete, rename, tags -------------------------------------------------------------------------
def test_delete_removes_rows_and_checkpoints(manager):
    run_id = manager.submit(cfg(rounds=5, checkpoint_every=2))
    keep = manager.submit(cfg(rounds=1))
    assert manager.wait(run_id, 600) == "finished" and manager.wait(keep, 60) == "finished"
    folder = manager.store.checkpoint_dir / run_id
    assert sorted(p.name for p in folder.iterdir()) == ["round-00004.pt"]  # the newest resumable one
    models = manager.store.models_dir / run_id
    assert (models / "index.json").is_file()  # and the final models
    manager.delete(run_id)
    with pytest.raises(RunNotFoundError):
        manager.store.get_run(run_id)
    db = manager.store.db
    for table in ("round_metrics", "client_metrics", "events", "checkpoints", "clients"):
        assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", [run_id]).fetchone()[0] == 0
    assert not folder.exists() and not models.exists()
    assert manager.store.get_run(keep)["status"] == "finished"
    assert not manager.store.round_metrics(keep).empty


def test_delete_is_one_transaction(manager):
    run_id = manager.submit(cfg(rounds=1))
    assert manager.wait(run_id, 600) == "finished"
    db = manager.store.db
    db.execute("CREATE TRIGGER keep_runs BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'refused'); END")
    n = len(manager.store.round_metrics(run_id))
    with pytest.raises(Exception, match="refused"):
        manager.store.delete_run(run_id)
    assert len(manager.store.round_metrics(run_id)) == n > 0  # nothing half-deleted
    db.execute("DROP TRIGGER keep_runs")


def test_delete_a_running_run_cancels_it_first(manager, monkeypatch):
    gate = Gate(monkeypatch, rnd=2)
    run_id = manager.submit(cfg(rounds=3, checkpoint_every=1))
    assert gate.entered.wait(300)
    threading.Timer(0.2, gate.release.set).start()
    manager.delete(run_id)
    with pytest.raises(RunNotFoundError):
        manager.store.get_run(run_id)
    assert not (manager.store.checkpoint_dir / run_id).exists()
    assert manager.active() == []


def test_rename_and_tags(manager):
    run_id = manager.submit(cfg(rounds=1), tags=["baseline"])
    manager.wait(run_id, 600)
    manager.rename(run_id, "  Hospital   study  ")
    assert manager.store.get_run(run_id)["name"] == "Hospital study"
    with pytest.raises(ConfigError):
        manager.rename(run_id, "   ")
    assert manager.set_tags(run_id, ["paper", " paper ", "", "icu"]) == ["paper", "icu"]
    assert [r["id"] for r in manager.store.list_runs(tag="icu")] == [run_id]
    assert manager.store.list_runs(tag="baseline") == []


# ---- concurrency ----------------------------------------------------------------------------------
def test_seeded_blocks_are_not_disturbed_by_model_builds_on_other_threads():
    from engine.core.seeding import seeded
    from engine.models import build_model
    from engine.models.base import InputSpec

    with seeded(0, "probe"):
        expected = torch.rand(4)
    start, built = threading.Event(), threading.Event()

    def other_thread():
        start.wait(5)
        build_model({"arch": "mlp", "hidden": 64}, InputSpec("tabular", (8,)), 16, 3)
        built.set()

    t = threading.Thread(target=other_thread)
    t.start()
    with seeded(0, "probe"):
        start.set()
        time.sleep(0.2)  # the other thread tries to build (draws from the global RNG) now
        got = torch.rand(4)
    t.join(10)
    assert built.is_set() and torch.equal(got, expected)


def test_get_manager_is_one_per_database(tmp_path):
    a = get_manager(tmp_path / "a.db", workers=1)
    try:
        assert get_manager(tmp_path / "a.db") is a
        assert get_manager(str(tmp_path / "." / "a.db")) is a
        b = get_manager(tmp_path / "b.db")
        assert b is not a
        b.shutdown()
        assert get_manager(tmp_path / "b.db") is not b
        get_manager(tmp_path / "b.db").shutdown()
    finally:
        a.shutdown()
    assert get_manager(tmp_path / "a.db") is not a
    get_manager(tmp_path / "a.db").shutdown()


def test_an_old_database_gains_the_new_columns(tmp_path):
    import sqlite3

    from sqlite_utils import Database

    from engine.tracking.schema import migrations

    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="002_run_manager")
    db["runs"].insert({"id": "old1", "name": "old", "status": "finished", "config": "{}", "tags": "[]"})
    db.close()
    store = Store(path)
    row = store.get_run("old1")
    assert row["cancel_requested"] == 0 and row["owner"] is None and row["variant"] is None
    assert store.list_runs()[0]["id"] == "old1"


# ---- command line ---------------------------------------------------------------------------------
def test_cli_sweep_report_summary_rename_tag_fork_cancel_delete(tmp_path, capsys):
    from engine.cli import main

    db = str(tmp_path / "cli.db")
    config = tmp_path / "exp.json"
    config.write_text(json.dumps(digits_config(rounds=2)))
    assert (
        main(
            [
                "--db",
                db,
                "sweep",
                str(config),
                "--seeds",
                "0",
                "1",
                "--strategies",
                "fedavg",
                "fedprox:mu=0.1",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["runs"]) == 4 and set(out["runs"].values()) == {"finished"}
    settings = {(r["setting"], r["metric"]): r for r in out["summary"]}
    assert settings[("fedprox (mu=0.1)", "global_acc_mean")]["n"] == 2
    store = Store(db)
    run_id = next(
        r for r in out["runs"] if store.get_run(r)["config"]["seed"] == 0
    )  # runs list in finishing order

    report = tmp_path / "report.html"
    assert main(["--db", db, "report", "--group", out["group_id"], "--out", str(report)]) == 0
    assert report.stat().st_size > 1_000_000 and "Plotly.newPlot" in report.read_text()
    summary = tmp_path / "s.csv"
    assert main(["--db", db, "summary", "--group", out["group_id"], "--out", str(summary)]) == 0
    assert len(summary.read_text().strip().splitlines()) == 5

    assert main(["--db", db, "rename", run_id, "first seed"]) == 0
    assert main(["--db", db, "tag", run_id, "a", "b"]) == 0
    assert main(["--db", db, "tag", run_id, "a", "--remove"]) == 0
    row = Store(db).get_run(run_id)
    assert row["name"] == "first seed" and row["tags"] == ["b"]

    forked = tmp_path / "fork.json"
    assert (
        main(
            [
                "--db",
                db,
                "fork",
                run_id,
                "--set",
                "rounds=1",
                "--set",
                "clients.0.lr=0.2",
                "--out",
                str(forked),
            ]
        )
        == 0
    )
    data = json.loads(forked.read_text())
    assert data["rounds"] == 1 and data["clients"][0]["lr"] == 0.2 and data["seed"] == 0
    capsys.readouterr()
    assert main(["--db", db, "cancel", run_id]) == 2
    assert "only queued or running" in capsys.readouterr().err
    assert main(["--db", db, "delete", run_id]) == 0
    assert main(["--db", db, "show", run_id]) == 2
