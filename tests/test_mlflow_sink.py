"""The MLflow sink (``tracking.mlflow``, the mlflow extra) against a local file store: parameters,
per-round figures with their step, the kept models and the HTML report as artifacts; a resumed run
continues its MLflow run; a failing sink never fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import parse_config
from engine.core.simulation import Simulation
from tests.conftest import digits_config

pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from engine.tracking.mlflow_sink import TAG  # noqa: E402


def test_a_run_is_logged_to_a_file_store(store, tmp_path: Path) -> None:  # noqa: ANN001
    uri = (tmp_path / "mlruns").as_uri()
    cfg = parse_config(
        digits_config(
            rounds=3,
            data={"dataset": "digits", "max_samples": 300},
            strategy={"name": "fedprox", "mu": 0.1},
            tracking={"mlflow": {"uri": uri, "experiment": "hospitals"}},
        )
    )
    sim = Simulation(cfg, store=store)
    sim.run()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("hospitals")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags[TAG] == sim.run_id and run.info.status == "FINISHED"
    assert run.data.params["strategy"] == "fedprox" and run.data.params["strategy.mu"] == "0.1"
    assert '"hidden": 32' in run.data.params["clients.c.model"]
    history = client.get_metric_history(run.info.run_id, "local_acc_mean")
    assert [m.step for m in history] == [1, 2, 3]
    recorded = store.round_metrics(sim.run_id).query("key == 'local_acc_mean'").sort_values("round")
    assert [m.value for m in history] == pytest.approx(recorded["value"].tolist())
    assert [m.step for m in client.get_metric_history(run.info.run_id, "client/c-2/local_acc")] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"models", "report.html"} <= artifacts
    models = {a.path for a in client.list_artifacts(run.info.run_id, "models/final")}
    assert "models/final/federation" in models


def test_a_resumed_run_continues_its_mlflow_run(store, tmp_path: Path) -> None:  # noqa: ANN001
    uri = (tmp_path / "mlruns").as_uri()
    cfg = parse_config(
        digits_config(
            rounds=4,
            checkpoint_every=1,
            data={"dataset": "digits", "max_samples": 300},
            tracking={"mlflow": {"uri": uri}},
        )
    )
    sim = Simulation(cfg, store=store)
    sim.on_round = lambda record: sim.cancel.set() if record.round == 2 else None
    sim.run()
    again = Simulation(cfg, store=store, run_id=sim.run_id)
    again.run(resume=True)
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("FedMosaic").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "local_acc_mean")] == [1, 2, 3, 4]


def test_an_unreachable_store_is_a_warning_not_a_failure(store, tmp_path: Path) -> None:  # noqa: ANN001
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = parse_config(
        digits_config(
            rounds=1,
            data={"dataset": "digits", "max_samples": 300},
            tracking={"mlflow": {"uri": (blocker / "mlruns").as_uri()}},
        )
    )
    sim = Simulation(cfg, store=store)
    sim.run()
    assert store.get_run(sim.run_id)["status"] == "finished"
    assert any(m.startswith("MLflow:") for m in store.events(sim.run_id)["message"])


def test_tracking_uri_is_checked() -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="MLflow tracking URI"):
        parse_config(digits_config(tracking={"mlflow": {"uri": "ftp://x"}}))


def test_validation_names_a_missing_mlflow(monkeypatch) -> None:
    import importlib.util

    from engine.validate import validate

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    report = validate(parse_config(digits_config(tracking={"mlflow": {"uri": "http://localhost:5000"}})))
    assert any("pip install 'fedmosaic[mlflow]'" in e for e in report.errors)
