"""Runs page (AppTest): every run with status and progress, filter and search, and the actions on
selected runs: cancel, resume, fork, rename, tag, delete, open, compare."""

from __future__ import annotations

import os
import time

from streamlit.testing.v1 import AppTest

from bench.app_render import write_synthetic_run
from engine.design import document, launching
from engine.tracking.storage import Store
from tests.test_app_support import app, assert_clean


def select(at: AppTest, rows: list[int]) -> None:
    version = at.session_state["runs_table_version"] if "runs_table_version" in at.session_state else 0
    key = "runs.table" if not version else f"runs.table.{version}"
    at.session_state[key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()


def table(at: AppTest):
    return at.dataframe[0].value


def three_runs() -> list[str]:
    store = Store(os.environ["FEDMOSAIC_DB"])
    ids = [
        write_synthetic_run(
            store,
            n_clients=4,
            n_rounds=3,
            seed=i,
            name=f"study {i}",
            tags=(f"t{i}",),
            strategy=("fedavg_by_arch", "local", "fedproto")[i],
        )
        for i in range(3)
    ]
    store.update_run(ids[2], status="failed", error="ConfigError: something to fix")
    return ids


def test_runs_page_empty() -> None:
    at = app("runs")
    assert_clean(at)
    assert any("No runs yet" in i.value for i in at.info)


def test_runs_table_filter_and_search() -> None:
    ids = three_runs()
    at = app("runs")
    assert not at.exception
    frame = table(at)
    assert list(frame["id"]) == ids[::-1]  # newest first
    assert list(frame["progress"]) == [1.0, 1.0, 1.0]
    assert any("3 runs" in c.value for c in at.caption)
    at.text_input(key="runs.search").set_value("t1").run()
    assert list(table(at)["name"]) == ["study 1"]
    at.text_input(key="runs.search").set_value("").run()
    at.multiselect(key="runs.status").set_value(["failed"]).run()
    assert list(table(at)["id"]) == [ids[2]]
    select(at, [0])
    assert any("something to fix" in e.value for e in at.error)  # a failed run's error, in words


def test_rename_tag_fork_delete() -> None:
    ids = three_runs()
    at = app("runs")
    select(at, [2])  # study 0
    at.text_input(key=f"runs.rename.{ids[0]}").set_value("baseline")
    at.button(key="runs.rename_go").click().run()
    assert Store(os.environ["FEDMOSAIC_DB"]).get_run(ids[0])["name"] == "baseline"
    select(at, [1, 2])
    at.text_input(key=f"runs.tags.{'-'.join([ids[1], ids[0]])}").set_value("paper, fig 2")
    at.button(key="runs.tags_go").click().run()
    store = Store(os.environ["FEDMOSAIC_DB"])
    assert store.get_run(ids[0])["tags"] == store.get_run(ids[1])["tags"] == ["paper", "fig 2"]
    select(at, [0, 1])
    at.button(key="runs.compare").click().run()
    assert at.title[0].value == "Compare runs"
    assert at.session_state["cmp.ids"] == [ids[2], ids[1]]

    at = app("runs")
    select(at, [1])
    at.button(key="runs.delete").click().run()
    assert_clean(at)
    assert [r["id"] for r in Store(os.environ["FEDMOSAIC_DB"]).list_runs()] == [ids[2], ids[0]]
    at.run()
    # nothing stays selected: the tick of the deleted row does not move to the run now in its place
    assert any("Select rows" in c.value for c in at.caption)
    assert not any("selected:" in m.value for m in at.markdown)
    select(at, [1])
    at.button(key="runs.fork").click().run()
    assert at.title[0].value == "Launch"
    assert at.session_state["design"]["name"].endswith("(fork)")
    assert at.session_state["design"]["strategy"]["name"] == "fedavg_by_arch"


def test_cancel_and_resume_a_live_run() -> None:
    design = document.normalize(
        {
            "name": "long",
            "rounds": 400,
            "checkpoint_every": 1,
            "data": {"dataset": "digits", "max_samples": 200, "partition": {"method": "iid"}},
            "clients": [{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 8}}],
        }
    )
    mgr = launching.manager(os.environ["FEDMOSAIC_DB"])
    run_id = launching.launch(design, mgr=mgr).run_ids[0]
    deadline = time.monotonic() + 60
    while mgr.store.get_run(run_id)["current_round"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    at = app("runs")
    assert not at.exception
    assert table(at)["status"].iloc[0] in ("◐ running", "○ queued")
    select(at, [0])
    assert not at.button(key="runs.cancel").disabled and at.button(key="runs.resume").disabled
    at.button(key="runs.cancel").click().run()
    assert mgr.wait(run_id, 600) == "cancelled"
    stopped = mgr.store.get_run(run_id)["current_round"]
    assert 2 <= stopped < 400
    at = app("runs")
    select(at, [0])
    assert at.button(key="runs.cancel").disabled
    at.button(key="runs.resume").click().run()
    assert not at.exception
    time.sleep(0.3)
    assert mgr.store.get_run(run_id)["status"] in ("queued", "running")
    mgr.cancel(run_id)  # from the Results page this time: see test_app_results
    assert mgr.wait(run_id, 600) == "cancelled"
