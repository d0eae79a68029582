"""Results, Compare and Catalog pages (AppTest): every tab of one run renders (curves, clients,
fairness, communication, participation and the simulated timeline, late joiners, config), downloads
carry the run's figures, a live run can be cancelled from its page, several runs compare with seed
bands and a config diff, and the catalog is generated from the registries."""

from __future__ import annotations

import io
import os
import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from bench.app_render import write_synthetic_run
from engine.catalog import catalog
from engine.design import document, launching
from engine.reporting.export import render
from engine.tracking.storage import Store
from tests.test_app_support import app, assert_clean

TABS = [
    "Learning curves",
    "Clients",
    "Fairness",
    "Communication",
    "Time & participation",
    "Late joiners",
    "Config & roster",
]


def charts(at: AppTest) -> list[str]:
    return [str(c.proto.spec) for c in at.get("plotly_chart")]


@pytest.mark.parametrize("page", ["results", "compare"])
def test_empty_database(page: str) -> None:
    at = app(page)
    assert_clean(at)
    assert any("No runs yet" in i.value for i in at.info)


def test_every_results_tab_renders() -> None:
    store = Store(os.environ["FEDMOSAIC_DB"])
    run_id = write_synthetic_run(store, n_clients=8, n_rounds=6, late_joiners=2, name="synthetic")
    at = app("results", run=run_id)
    assert_clean(at)
    assert at.title[0].value == "synthetic"
    assert [t.label for t in at.tabs] == TABS
    assert len(at.main.get("download_button")) == 5
    assert any("Accuracy" in c for c in charts(at))
    for tab in TABS[1:-1]:
        at.session_state["res.tab"] = tab
        at.run()
        assert_clean(at)
        assert at.get("plotly_chart"), tab
    at.session_state["res.tab"] = "Config & roster"
    at.run()
    assert at.get("json") and len(at.dataframe) == 2  # config, roster and events
    at.session_state["res.tab"] = "Time & participation"
    at.run()
    spec = " ".join(charts(at))
    assert "dropped out" in spec and "Participation" in spec
    at.session_state["res.tab"] = "Late joiners"
    at.run()
    assert "joins 2" in " ".join(charts(at))


def test_a_real_run_and_its_csv() -> None:
    mgr = launching.manager(os.environ["FEDMOSAIC_DB"])
    design = document.normalize(
        {
            "name": "real",
            "rounds": 3,
            "checkpoint_every": 0,
            "data": {
                "dataset": "digits",
                "max_samples": 300,
                "partition": {"method": "dirichlet", "alpha": 0.5},
            },
            "clients": [
                {"name": "phone", "count": 3, "model": {"arch": "mlp", "hidden": 16}, "tier": "phone-high"},
                {"name": "late", "model": {"arch": "mlp", "hidden": 16}, "join_round": 2},
            ],
        }
    )
    run_id = launching.launch(design, mgr=mgr).run_ids[0]
    assert mgr.wait(run_id, 120) == "finished"
    at = app("results", run=run_id)
    assert_clean(at)
    for tab in TABS:
        at.session_state["res.tab"] = tab
        at.run()
        assert_clean(at)
    csv = pd.read_csv(io.BytesIO(render(mgr.store, run_id, "csv").data))
    assert list(csv["round"]) == [1, 2, 3] and csv["local_acc_mean"].between(0, 1).all()


def test_cancel_from_the_results_page() -> None:
    mgr = launching.manager(os.environ["FEDMOSAIC_DB"])
    design = document.normalize(
        {
            "name": "long",
            "rounds": 400,
            "checkpoint_every": 0,
            "data": {"dataset": "digits", "max_samples": 200, "partition": {"method": "iid"}},
            "clients": [{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 8}}],
        }
    )
    run_id = launching.launch(design, mgr=mgr).run_ids[0]
    deadline = time.monotonic() + 60
    while mgr.store.get_run(run_id)["current_round"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    at = app("results", run=run_id)
    assert not at.exception
    assert at.get("progress")  # the live progress bar
    at.button(key="res.cancel").click().run()
    assert mgr.wait(run_id, 600) == "cancelled"
    at = app("results", run=run_id)
    assert any("cancelled" in i.value for i in at.info)
    assert at.button(key="res.resume").label == "Resume"


def test_compare_a_sweep_with_bands_and_diff() -> None:
    store = Store(os.environ["FEDMOSAIC_DB"])
    ids = []
    for strategy in ("fedavg_by_arch", "fedproto"):
        for seed in (0, 1):
            rid = write_synthetic_run(
                store,
                n_clients=4,
                n_rounds=5,
                seed=seed,
                strategy=strategy,
                group_id="g1",
                name=f"sweep · {strategy} · seed {seed}",
            )
            store.update_run(rid, variant=strategy)
            ids.append(rid)
    at = app("compare")
    at.selectbox(key="cmp.group").set_value("g1").run()
    assert_clean(at)
    assert sorted(at.session_state["cmp.ids"]) == sorted(ids)
    spec = " ".join(charts(at))
    assert "fedproto (2 seeds)" in spec and "fedavg_by_arch (2 seeds)" in spec and "tonexty" in spec  # bands
    diff = next(d for d in at.dataframe if list(d.value.columns)[:1] == ["setting"]).value
    assert {"seed", "strategy.name"} <= set(diff["setting"])
    assert len(at.main.get("download_button")) == 4


def test_catalog_lists_every_registry_entry() -> None:
    at = app("catalog")
    assert_clean(at)
    cat = catalog()
    labels = [t.label for t in at.tabs]
    assert (
        f"Strategies ({len(cat['strategies'])})" in labels and f"Device tiers ({len(cat['tiers'])})" in labels
    )
    for section, title in (
        ("strategies", "Strategies"),
        ("architectures", "Architectures"),
        ("datasets", "Datasets"),
        ("partitioners", "Partitioners"),
    ):
        at.session_state["cat.tab"] = f"{title} ({len(cat[section])})"
        at.run()
        names = [e.label.split("**")[1] for e in at.expander if e.label.startswith("**")]
        assert names == [entry["name"] for entry in cat[section]]  # only the open tab is built
    # an entry's details (its parameter table) are built when it is opened
    at.session_state["cat.tab"] = f"Strategies ({len(cat['strategies'])})"
    at.run()
    assert not at.dataframe[1:]  # the strategies overview only
    at.session_state["cat.strategies.fedprox"] = True
    at.run()
    assert_clean(at)
    assert "mu" in list(at.dataframe[1].value["parameter"])
    at.text_input(key="cat.search").set_value("prototype").run()
    names = [e.label.split("**")[1] for e in at.expander if e.label.startswith("**")]
    assert "fedproto" in names and "fedavg" not in names


def test_participation_states_timeline_and_catch_up() -> None:
    from engine.reporting import charts

    rows = []

    def put(rnd: int, cid: int, **values: float) -> None:
        rows.extend(
            {"run_id": "r", "round": rnd, "client_id": cid, "key": k, "value": v} for k, v in values.items()
        )

    put(
        1,
        0,
        selected=1,
        completed=1,
        status=0,
        sim_compute_s=0.5,
        sim_transfer_s=0.25,
        sim_total_s=0.75,
        local_acc=0.5,
    )
    put(
        2,
        0,
        selected=1,
        completed=0,
        status=1,
        sim_compute_s=2.0,
        sim_transfer_s=0.5,
        sim_total_s=2.5,
        local_acc=0.6,
    )
    put(2, 1, online=0, local_acc=0.1)
    put(3, 1, selected=1, completed=1, local_acc=0.55)
    put(2, 2, selected=1, completed=0, local_acc=0.4)
    client_df = pd.DataFrame(rows)
    roster = pd.DataFrame(
        [
            {"client_id": 0, "name": "a", "arch": "mlp", "tier": "phone-low", "join_round": 1},
            {"client_id": 1, "name": "b", "arch": "mlp", "tier": None, "join_round": 2},
            {"client_id": 2, "name": "c", "arch": "cnn", "tier": None, "join_round": 1},
        ]
    )
    states = charts.participation_states(client_df, roster)
    assert states.loc[0].tolist() == ["trained", "straggler (dropped)", "not selected"]
    assert states.loc[1].tolist() == ["not joined", "offline", "trained"]
    assert states.loc[2].tolist() == ["not selected", "dropped out", "not selected"]
    fig = charts.round_timeline(client_df, roster, rnd=2, deadline=1.0)
    bars = {t.name: list(t.x) for t in fig.data}
    assert bars["straggler (dropped): compute"] == [2.0] and bars["transfer (up + down)"] == [0.5]
    assert any(s.x0 == 1.0 for s in fig.layout.shapes)  # the deadline line
    assert (
        "No simulated client times"
        in charts.round_timeline(client_df[client_df["key"] != "sim_total_s"], roster)
        .layout.annotations[0]
        .text
    )
    lines = {t.name: list(t.y) for t in charts.catch_up(client_df, "local_acc", roster).data}
    assert lines["b (joins 2)"] == [0.1, 0.55]
    assert lines["clients from round 1 (mean)"] == [0.5, 0.5]
