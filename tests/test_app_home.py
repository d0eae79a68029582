"""Home page and the app shell (AppTest): templates, the design surviving a reload, drafts and
config import/export in the sidebar, active runs and recent results."""

from __future__ import annotations

import json
import os

from bench.app_render import write_synthetic_run
from engine.design import document, drafts, scenarios
from engine.tracking.storage import Store
from pages.common.ui import PAGES
from tests.test_app_support import app, assert_clean


def test_home_on_an_empty_database() -> None:
    at = app()
    assert_clean(at)
    assert at.title[0].value == "FedMosaic"
    for t in scenarios.templates():
        assert at.button(key=f"tmpl-{t.id}").label == "Use this template"
    captions = [c.value for c in at.caption]
    assert "No finished runs yet." in captions
    assert any("No run is active" in c for c in captions)
    assert at.query_params["draft"]  # the autosave id is in the address from the first render


def test_home_with_runs_lists_recent_results() -> None:
    store = Store(os.environ["FEDMOSAIC_DB"])
    write_synthetic_run(store, n_clients=4, n_rounds=3, name="alpha study")
    write_synthetic_run(store, n_clients=4, n_rounds=3, name="beta study", seed=1)
    at = app()
    assert_clean(at)
    text = " ".join(m.value for m in at.markdown)
    assert "alpha study" in text and "beta study" in text
    assert any("accuracy" in c.value for c in at.caption)


def test_template_loads_and_the_design_survives_a_reload() -> None:
    at = app()
    session = at.query_params["draft"]
    at.button(key="tmpl-traffic").click().run()
    assert_clean(at)
    assert at.title[0].value == "Data"  # the template opens the Data page
    assert "traffic" in at.sidebar.markdown[0].value  # the sidebar summarises the design being edited
    assert at.session_state["design"]["data"]["dataset"] == "traffic"
    again = app(
        draft=session[0] if isinstance(session, list) else session
    )  # a reload: a new session, same address
    assert again.session_state["design"]["data"]["dataset"] == "traffic"
    fresh = app()  # another browser tab without the address starts fresh
    assert fresh.session_state["design"]["data"]["dataset"] == "digits"


def test_drafts_save_open_import_and_export() -> None:
    # the Home page's drafts panel; the sidebar shows the same panel on every page
    at = app()
    at.button(key="tmpl-edge").click().run()
    at.switch_page(PAGES["home"])
    at.run()
    at.text_input(key="home.draft_name").set_value("phones v1").run()
    at.button(key="home.save").click().run()
    assert_clean(at)
    assert [d["name"] for d in drafts.list_drafts()] == ["phones v1"]
    assert at.download_button(key="home.export").label == "Export JSON config"

    config = document.normalize(scenarios.template("hospital"))
    at.file_uploader(key="home.import").upload(
        "hospital.json", json.dumps(config).encode(), "application/json"
    ).run()
    assert_clean(at)
    assert at.session_state["design"] == config
    assert any("Imported hospital.json" in s.value for s in at.success)

    at.selectbox(key="home.pick").set_value(drafts.list_drafts()[0]["key"]).run()
    at.button(key="home.load").click().run()
    assert at.session_state["design"]["strategy"]["name"] == "heterofl"

    at.file_uploader(key="home.import").upload("bad.json", b'{"rounds": "many"}', "application/json").run()
    assert not at.exception
    assert any("clients" in e.value and "rounds" in e.value for e in at.error)  # says what to change
    assert at.session_state["design"]["strategy"]["name"] == "heterofl"  # unchanged

    at.button(key="home.delete").click().run()
    assert drafts.list_drafts() == []


def test_active_runs_show_live_progress() -> None:
    store = Store(os.environ["FEDMOSAIC_DB"])
    run_id = write_synthetic_run(
        store, n_clients=4, n_rounds=10, rounds_done=4, status="running", name="halfway"
    )
    store.update_run(run_id, heartbeat_at=__import__("time").time())
    at = app()
    assert_clean(at)
    bars = at.get("progress")
    assert len(bars) == 1 and bars[0].value == 40  # percent
    assert "halfway" in bars[0].proto.text and "round 4/10" in bars[0].proto.text
