"""Results' Models section and the Predict page (AppTest): a finished run offers its kept models
for download and opens one in Predict; Predict lists runs with models and the models that predict."""

from __future__ import annotations

import io
import os
import zipfile

from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.tracking.storage import Store
from tests.conftest import digits_config
from tests.test_app_support import app, assert_clean


def finished_run(strategy: str = "fedavg") -> str:
    store = Store(os.environ["FEDMOSAIC_DB"])
    cfg = parse_config(
        digits_config(rounds=1, data={"dataset": "digits", "max_samples": 300}, strategy={"name": strategy})
    )
    sim = Simulation(cfg, store=store)
    sim.run()
    return sim.run_id


def test_predict_page_without_models() -> None:
    at = app("predict")
    assert_clean(at)
    assert any("No run has kept models yet" in i.value for i in at.info)


def test_results_offers_the_models_and_predict_lists_them() -> None:
    run_id = finished_run("fedper")
    at = app("results", run=run_id)
    assert_clean(at)
    assert any(s.value == "Models" for s in at.subheader)
    pick = at.selectbox(key="res.models.pick")
    assert "c-2 (client 1)" in pick.options and "federation-mlp (shared body only)" in pick.options
    pick.set_value("c-2").run()
    assert_clean(at)
    assert any(b.proto.label == "Download (.zip)" for b in at.get("download_button"))
    assert any("best validation round" in c.value for c in at.caption)
    from engine.artifacts.bundle import models_zip

    with zipfile.ZipFile(io.BytesIO(models_zip(Store(os.environ["FEDMOSAIC_DB"]), run_id, "c-2"))) as zf:
        assert any(n.endswith("client-01-c-2/model.safetensors") for n in zf.namelist())
    at = app("predict", run=run_id, model="c-2")
    assert_clean(at)
    model = at.selectbox(key="pred.model")
    assert model.value == "c-2"
    assert not any(o.startswith("federation") for o in model.options)  # a shared body does not predict alone
    assert at.radio(key="pred.which").options[0].startswith("best validation round")
