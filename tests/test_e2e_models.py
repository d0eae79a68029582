"""Models out, in a real headless Chromium: a finished run (five hospitals, trained in-process to
keep the test short) -> Results' Models section -> download one client's model -> Predict with it
on a CSV of that client's test rows -> download the predictions: they equal the engine's on that
client's test split. Screenshots go to docs/screenshots/ (results-models.png, predict.png)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.app_server import chromium_page
from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.tracking.storage import Store
from tests.test_artifacts import ROOT, split_positions
from tests.test_e2e_browser import _choose, _no_errors, _settle, _shot, app_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.browser


def finished_run(db: Path) -> tuple[Simulation, Store]:
    cfg = json.loads((ROOT / "examples/data_csv_hospital.json").read_text())
    cfg["data"]["path"] = str(ROOT / "examples/data/hospital.csv")
    cfg.update(name="Five hospitals", rounds=2, checkpoint_every=0)
    cfg["clients"][0]["model"] = {"arch": "mlp", "hidden": 16}
    store = Store(db)
    sim = Simulation(parse_config(cfg), store=store)
    sim.run()
    return sim, store


@pytest.mark.timeout(300)
def test_download_a_clients_model_and_predict_its_test_rows(app_url: str, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

    sim, store = finished_run(tmp_path / "home" / "e2e.db")
    cid = 2
    name = sim.clients[cid].name
    rows = pd.read_csv(ROOT / "examples/data/hospital.csv").iloc[split_positions(sim, cid)]
    upload = tmp_path / "new_patients.csv"
    rows.to_csv(upload, index=False)
    # the engine's own view of that client, with the weights Predict uses by default (best validation round)
    kept = sim.best[cid]["model"]
    model = sim.build(sim.clients[cid].spec.model)
    model.load_state_dict(kept)
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(sim.federation.clients[cid].test.x), 1)
    classes = sim.federation.data.classes

    with chromium_page(default_timeout=90_000, failure_dir=tmp_path) as page:
        page.goto(f"{app_url}/results?run={sim.run_id}")
        page.get_by_role("heading", name="Models").first.wait_for()
        _settle(page)
        _choose(page, "Model", f"{name} (client {cid})")
        with page.expect_download() as info:
            page.locator(".st-key-res-models-dl").get_by_role("button").click()
        info.value.save_as(tmp_path / "model.zip")
        with zipfile.ZipFile(tmp_path / "model.zip") as zf:
            files = set(zf.namelist())
            card = zf.read(f"{sim.run_id}/best/client-{cid:02d}-{name}/README.md").decode()
        for which in ("best", "final"):
            base = f"{sim.run_id}/{which}/client-{cid:02d}-{name}/"
            assert {
                base + f
                for f in ("model.safetensors", "preprocessing.safetensors", "config.json", "README.md")
            } <= files
        assert f"position {cid} of 5" in card
        _no_errors(page)
        _shot(page, "results-models")

        page.locator(".st-key-res-models-predict").get_by_role("button").click()
        page.get_by_role("heading", name="Predict").first.wait_for()
        _settle(page)
        expect(page.get_by_role("combobox", name="Model", exact=True)).to_have_value(f"{name} (client {cid})")
        page.locator(
            "[data-testid='stMain'] [data-testid='stFileUploader'] input[type='file']"
        ).set_input_files(str(upload))
        page.get_by_text(f"{len(rows)} predictions by").first.wait_for()
        _settle(page)
        _no_errors(page)
        _shot(page, "predict")
        with page.expect_download() as info:
            page.locator(".st-key-pred-download").get_by_role("button").click()
        info.value.save_as(tmp_path / "predictions.csv")

    got = list(csv.DictReader(io.StringIO((tmp_path / "predictions.csv").read_text())))
    assert [r["prediction"] for r in got] == [classes[i] for i in expected.argmax(1).tolist()]
    probs = torch.tensor([[float(r[f"p({c})"]) for c in classes] for r in got])
    assert torch.allclose(probs, expected, atol=1e-5)  # written with 6 significant digits
    assert [r["patient_id"] for r in got] == rows["patient_id"].tolist()
