"""The thread policy (engine/threads.py): a run's thread count comes from the cores, the runs the
manager trains at once and the size of its training steps; it is set on the thread where the run
computes, two runs in one process keep their own counts, the threads executor never runs more
workers than its run's share, and ``executor: auto`` picks an executor and says which."""

from __future__ import annotations

import threading

import pytest
import torch
from conftest import digits_config

from engine import threads
from engine.config import parse_config
from engine.core import training
from engine.core.simulation import Simulation
from engine.executors import RunPlan, choose
from engine.tracking.runs import RunManager
from engine.tracking.storage import Store
from engine.types import ClientInfo


def test_share_divides_the_budget_among_the_runs_at_once():
    assert threads.share(1, budget=2) == 2
    assert threads.share(2, budget=2) == 1
    assert threads.share(3, budget=2) == 1  # never zero
    assert threads.share(2, budget=8) == 4


def test_budget_honours_fedmosaic_threads_and_omp(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FEDMOSAIC_THREADS", raising=False)
    assert threads.process_budget() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.process_budget() == 3
    monkeypatch.setenv("FEDMOSAIC_THREADS", "2")
    assert threads.process_budget() == 2
    monkeypatch.setenv("FEDMOSAIC_THREADS", "16")  # never more than the cores
    assert threads.process_budget() == 4


def test_small_steps_get_one_thread():
    assert threads.run_threads(threads.MIN_STEP_FLOPS - 1, 2) == 1
    assert threads.run_threads(threads.MIN_STEP_FLOPS, 2) == 2
    assert threads.run_threads(threads.MIN_STEP_FLOPS * 10, 1) == 1


def test_the_thread_count_is_per_thread():
    """What the policy relies on: a count set on one thread (set_here) leaves another's alone."""
    seen: dict[str, int] = {}
    ready = threading.Barrier(2)

    def worker(name: str, n: int) -> None:
        threads.set_here(n)
        ready.wait()  # both have set their count before either reads it
        torch.ones(64, 64) @ torch.ones(64, 64)
        seen[name] = torch.get_num_threads()

    before = torch.get_num_threads()
    pair = [threading.Thread(target=worker, args=("a", 1)), threading.Thread(target=worker, args=("b", 2))]
    for t in pair:
        t.start()
    for t in pair:
        t.join()
    assert seen == {"a": 1, "b": 2}
    assert torch.get_num_threads() == before
    torch.set_num_threads(before)  # the workers moved the default of threads not yet started


@pytest.fixture
def observed(monkeypatch):
    """Every training call's (thread id, torch threads) as it happens."""
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()
    fit = training.fit

    def spy(*args, **kwargs):
        with lock:
            calls.append((threading.get_ident(), torch.get_num_threads()))
        return fit(*args, **kwargs)

    monkeypatch.setattr(training, "fit", spy)
    return calls


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setenv("FEDMOSAIC_THREADS", "2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "MIN_STEP_FLOPS", 0)  # every model "large": the share decides


def prox(**overrides):
    """fedprox trains through its own loss (through training.fit on the client's thread)."""
    return parse_config(digits_config(strategy={"name": "fedprox"}, rounds=1, **overrides))


def test_two_runs_in_one_manager_never_use_more_threads_than_cores(tmp_path, two_cores, observed):
    mgr = RunManager(Store(tmp_path / "runs.db"), workers=2, heartbeat_s=0.2)
    try:
        assert mgr.run_share == 1
        ids = [mgr.submit(prox(seed=s)) for s in (0, 1)]
        for run_id in ids:
            assert mgr.wait(run_id, timeout=600) == "finished"
        for run_id in ids:
            assert mgr.store.get_run(run_id)["manifest"]["torch_threads"] == 1
    finally:
        mgr.shutdown(wait=True)
    assert observed and all(n == 1 for _, n in observed)
    assert torch.get_num_threads() == 1  # the test thread's own count is untouched


def test_a_run_alone_uses_its_share_and_restores_the_callers_count(tmp_path, two_cores, observed):
    mgr = RunManager(Store(tmp_path / "runs.db"), workers=1, heartbeat_s=0.2)
    try:
        run_id = mgr.submit(prox())
        assert mgr.wait(run_id, timeout=600) == "finished"
        assert mgr.store.get_run(run_id)["manifest"]["torch_threads"] == 2
    finally:
        mgr.shutdown(wait=True)
    assert {n for _, n in observed} == {2}
    before = torch.get_num_threads()
    Simulation(prox(), root=tmp_path).run()  # in this thread: set for the run, restored after
    assert torch.get_num_threads() == before
    assert observed[-1][1] == 2


def test_threads_executor_never_runs_more_workers_than_the_run_share(tmp_path, two_cores, observed):
    config = prox(executor="threads", executor_options={"workers": 4})
    store = Store(tmp_path / "runs.db")
    sim = Simulation(config, store=store, root=tmp_path, share=1)
    sim.run()
    assert len({ident for ident, _ in observed}) == 1 and all(n == 1 for _, n in observed)
    events = " | ".join(store.events(sim.run_id)["message"])
    assert "threads executor: 1 worker instead of 4" in events
    observed.clear()
    Simulation(config, root=tmp_path, share=2).run()
    assert len({ident for ident, _ in observed}) == 2 and all(n == 1 for _, n in observed)


def plan_for(config, share=2, step=1e6, recurrent=()):
    from engine.strategies import STRATEGIES

    roster = config.roster()
    clients = [ClientInfo(i, s.name, s, 10, 5) for i, s in enumerate(roster)]
    cls = STRATEGIES.get(config.strategy.name)
    strategy = cls.__new__(cls)  # choose() reads the strategy's class only
    return RunPlan(strategy, clients, {c.id: step for c in clients}, share, recurrent=frozenset(recurrent))


def test_auto_picks_by_roster_strategy_and_share():
    fedavg = parse_config(digits_config())
    assert choose(plan_for(fedavg))[0] == "vectorized"
    assert choose(plan_for(fedavg, recurrent=range(4)))[0] == "sequential"
    one_each = parse_config(
        digits_config(
            clients=[{"name": "a", "model": {"arch": "mlp"}}, {"name": "b", "model": {"arch": "cnn"}}]
        )
    )
    assert choose(plan_for(one_each, share=1))[0] == "sequential"
    heavy = threads.THREADS_MIN_STEP_FLOPS * 2
    assert choose(plan_for(prox(), step=heavy))[0] == "threads"
    assert choose(plan_for(prox(), step=heavy, share=1))[0] == "sequential"
    name, why = choose(plan_for(prox(), step=threads.THREADS_MIN_STEP_FLOPS / 10))
    assert name == "sequential" and "too small" in why


def test_auto_runs_what_it_picked_and_says_so(tmp_path):
    store = Store(tmp_path / "runs.db")
    auto = Simulation(
        parse_config(digits_config(executor="auto", executor_options={"workers": 3, "min_group": 2})),
        store=store,
        root=tmp_path,
    )
    auto.run()
    vec = Simulation(parse_config(digits_config(executor="vectorized")), root=tmp_path)
    vec.run()
    events = list(store.events(auto.run_id)["message"])
    assert any(e.startswith("executor auto: vectorized (4 of 4 clients") for e in events)
    assert any(e.startswith("torch threads: 1") for e in events)
    final = auto.summary()["final"]
    assert final["global_acc_mean"] == vec.summary()["final"]["global_acc_mean"]
