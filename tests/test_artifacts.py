"""Kept models (issue #19): what every run keeps, reading it back, downloads, predictions on new
files with the training schema, the CLI, and ONNX export of every architecture."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine.artifacts import keep
from engine.artifacts.bundle import export_models, models_zip
from engine.artifacts.load import index, load, resolve
from engine.artifacts.predict import predict, prediction_csv
from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.errors import DataError, ModelNotFoundError
from tests.conftest import digits_config

ROOT = Path(__file__).resolve().parents[1]


def run(store, **overrides) -> Simulation:  # noqa: ANN001
    cfg = parse_config(digits_config(**overrides))
    sim = Simulation(cfg, store=store)
    sim.run()
    return sim


def hospital(store, strategy: str = "fedavg", rounds: int = 2) -> Simulation:  # noqa: ANN001
    cfg = json.loads((ROOT / "examples/data_csv_hospital.json").read_text())
    cfg["data"]["path"] = str(ROOT / "examples/data/hospital.csv")
    cfg.update(rounds=rounds, strategy={"name": strategy}, checkpoint_every=0)
    cfg["clients"][0]["model"] = {"arch": "mlp", "hidden": 16}
    sim = Simulation(parse_config(cfg), store=store)
    sim.run()
    return sim


def engine_outputs(sim: Simulation, cid: int) -> torch.Tensor:
    """What the run's evaluation computes for a client on its local test split."""
    c = sim.clients[cid]
    model = sim.build(c.spec.model)
    model.load_state_dict(sim.strategy.eval_state(c, sim.states[cid]))
    model.eval()
    with torch.no_grad():
        return sim.strategy.predict(c, model, sim.states[cid], sim.federation.clients[cid].test.x)


def test_every_run_keeps_client_and_federation_models(store) -> None:  # noqa: ANN001
    sim = run(store, data={"dataset": "digits", "max_samples": 400})
    idx = index(store, sim.run_id)
    names = {m["name"] for m in idx["models"] if m["which"] == "final"}
    assert names == {"client-00-c-1", "client-01-c-2", "client-02-c-3", "client-03-c-4", "federation"}
    assert idx["round"] == 2 and idx["status"] == "finished"
    loaded = load(store, sim.run_id, "c-2", "final")
    assert loaded.config["client"]["position"] == 1 and loaded.config["round"] == 2
    # the kept weights are the client's evaluation state: the same outputs as the run's scoring
    with torch.no_grad():
        kept = loaded.predictor.model(sim.federation.clients[1].test.x)
    assert torch.equal(kept, engine_outputs(sim, 1))
    # its recorded figures are the run's own at that round
    row = store.client_metrics(sim.run_id).query("client_id == 1 and round == 2 and key == 'local_acc'")
    assert loaded.config["metrics"]["local_acc"] == pytest.approx(float(row["value"].iloc[0]))
    fed = load(store, sim.run_id, "federation", "final")
    assert fed.config["role"] == "federation"
    assert all(torch.equal(v, sim.strategy.state["global"]["all"][k]) for k, v in fed.tensors.items())
    card = (loaded.folder / "README.md").read_text()
    assert "position 1 of 4" in card and "fedavg" in card and "## Privacy" in card


def test_personal_and_shared_parts(store) -> None:  # noqa: ANN001
    sim = run(store, data={"dataset": "digits", "max_samples": 400}, strategy={"name": "fedper"})
    fed = resolve(store, sim.run_id, "federation-mlp", "final")
    assert fed["part"] == "body"
    body = load(store, sim.run_id, fed["name"], "final")
    assert body.predictor is None and all(k.startswith("body.") for k in body.tensors)
    client = load(store, sim.run_id, "0", "final")
    with torch.no_grad():
        assert torch.equal(client.predictor.model(sim.federation.clients[0].test.x), engine_outputs(sim, 0))
    with pytest.raises(ModelNotFoundError, match="cannot predict on its own"):
        predict(body, b"px0\n1\n", "x.csv")


def test_prototype_rule_is_kept(store) -> None:  # noqa: ANN001
    sim = run(
        store,
        data={"dataset": "digits", "max_samples": 400},
        strategy={"name": "fedproto", "inference": "prototype"},
    )
    loaded = load(store, sim.run_id, "c-3", "final")
    assert loaded.config["rule"] == "prototype"
    raw = sim.federation.clients[2].test.x  # digits: no preprocessing, raw == prepared
    with torch.no_grad():
        assert torch.allclose(loaded.predictor(raw), engine_outputs(sim, 2))
    assert resolve(store, sim.run_id, "federation-prototypes", "final")["part"] == "prototypes"


def test_cancelled_run_keeps_its_last_completed_round_and_one_checkpoint(store) -> None:  # noqa: ANN001
    cfg = parse_config(
        digits_config(rounds=6, checkpoint_every=1, data={"dataset": "digits", "max_samples": 300})
    )
    sim = Simulation(cfg, store=store)
    seen = {}

    def stop(record) -> None:  # noqa: ANN001
        if record.round == 3:
            seen.update({cid: dict(s["model"]) for cid, s in sim.states.items()})
            sim.cancel.set()

    sim.on_round = stop
    sim.run()
    assert store.get_run(sim.run_id)["status"] == "cancelled"
    idx = index(store, sim.run_id)
    assert idx["round"] == 3 and idx["status"] == "cancelled"
    loaded = load(store, sim.run_id, "c-1", "final")
    assert all(
        torch.equal(loaded.tensors[k], sim.strategy.eval_state(sim.clients[0], {"model": seen[0]})[k])
        for k in seen[0]
    )
    assert [c["round"] for c in store.checkpoints(sim.run_id)] == [
        3,
        2,
    ]  # resumable; a finished run keeps one


def test_cancel_inside_a_round_restores_the_completed_round() -> None:
    sim = Simulation(
        parse_config(
            digits_config(
                rounds=3, data={"dataset": "digits", "max_samples": 300}, strategy={"name": "local"}
            )
        )
    )
    sim.setup()
    sim.round(1)
    before = {cid: s for cid, s in sim.states.items()}
    real = sim.executor.map

    def train_then_cancel(jobs, env):  # noqa: ANN001, ANN202
        out = real(jobs, env)
        sim.cancel.set()
        return out

    sim.executor.map = train_then_cancel
    from engine.errors import CancelledError

    with pytest.raises(CancelledError):
        sim.round(2)
    assert all(sim.states[cid] is before[cid] for cid in before)


def test_deleting_a_run_deletes_its_models(store) -> None:  # noqa: ANN001
    sim = run(store, rounds=1, data={"dataset": "digits", "max_samples": 300})
    folder = keep.run_folder(store, sim.run_id)
    assert folder.is_dir()
    store.delete_run(sim.run_id)
    assert not folder.exists()


def test_download_one_client_or_all(store, tmp_path: Path) -> None:  # noqa: ANN001
    sim = run(store, rounds=1, data={"dataset": "digits", "max_samples": 300})
    with zipfile.ZipFile(io.BytesIO(models_zip(store, sim.run_id, "c-4"))) as zf:
        names = set(zf.namelist())
        idx = json.loads(zf.read(f"{sim.run_id}/index.json"))
    base = f"{sim.run_id}/final/client-03-c-4/"
    assert {
        base + f for f in ("model.safetensors", "preprocessing.safetensors", "config.json", "README.md")
    } <= names
    assert sorted((m["which"], m["name"]) for m in idx["models"]) == [
        ("best", "client-03-c-4"),
        ("final", "client-03-c-4"),
    ]
    out = export_models(store, sim.run_id, tmp_path / "all")
    assert len([p for p in out.rglob("config.json")]) == 10  # 4 clients and the federation, best and final
    with pytest.raises(ModelNotFoundError, match="it keeps: c-1, c-2"):
        models_zip(store, sim.run_id, "nobody")


# ---- predictions on a file with the training schema ---------------------------------------------------
def test_rows_to_positions_helper_matches_split(store) -> None:  # noqa: ANN001
    sim = hospital(store)
    fed = sim.federation
    for cid in (0, 3):
        pos = split_positions(sim, cid)
        assert len(pos) == len(fed.clients[cid].test)


def test_predict_on_a_clients_test_rows_matches_the_engine(store, tmp_path: Path) -> None:  # noqa: ANN001
    sim = hospital(store)
    frame = pd.read_csv(ROOT / "examples/data/hospital.csv")
    cid = 2
    rows = frame.iloc[split_positions(sim, cid)]
    path = tmp_path / "new.csv"
    rows.to_csv(path, index=False)
    loaded = load(store, sim.run_id, sim.clients[cid].name, "final")
    result = predict(loaded, path)
    expected = engine_outputs(sim, cid)
    assert torch.allclose(result.outputs, expected, atol=1e-5)
    classes = loaded.config["classes"]
    assert list(result.table["prediction"]) == [classes[i] for i in expected.argmax(1).tolist()]
    assert np.allclose(result.table[[f"p({c})" for c in classes]].sum(axis=1), 1.0, atol=1e-5)
    local_acc = float(
        store.client_metrics(sim.run_id)
        .query(f"client_id == {cid} and round == 2 and key == 'local_acc'")["value"]
        .iloc[0]
    )
    assert result.metrics["acc"] == pytest.approx(local_acc)
    ref = float(
        store.client_metrics(sim.run_id)
        .query(f"client_id == {cid} and key == 'ref_local_acc'")["value"]
        .iloc[0]
    )
    assert result.reference["acc"] == pytest.approx(ref)  # the run's own reference on these rows
    assert "patient_id" in result.table.columns  # rows can be matched
    # the same rows from Excel, without the target: the same predictions, no figures
    xlsx = tmp_path / "new.xlsx"
    rows.drop(columns=["readmitted"]).to_excel(xlsx, index=False)
    again = predict(loaded, xlsx)
    assert again.metrics is None and torch.allclose(again.outputs, result.outputs, atol=1e-6)


def test_schema_mismatch_names_the_columns(store) -> None:  # noqa: ANN001
    sim = hospital(store)
    loaded = load(store, sim.run_id, "0")
    frame = pd.read_csv(ROOT / "examples/data/hospital.csv").head(5)
    bad = frame.drop(columns=["bmi", "ward"]).assign(shoe_size=42)
    with pytest.raises(DataError, match=r"missing columns 'bmi', 'ward'.*not trained with: 'shoe_size'"):
        predict(loaded, bad.to_csv(index=False).encode(), "new.csv")
    odd = frame.assign(ward=["general", "space station", None, "general", "icu"])
    result = predict(loaded, odd.to_csv(index=False).encode(), "new.csv")
    assert any("'space station'" in w for w in result.warnings)
    assert len(result.table) == 5


def test_prediction_csv_is_spreadsheet_safe(store) -> None:  # noqa: ANN001
    sim = hospital(store, rounds=1)
    loaded = load(store, sim.run_id, "0")
    frame = pd.read_csv(ROOT / "examples/data/hospital.csv").head(3)
    frame["patient_id"] = ["=HYPERLINK(1)", "P2", "P3"]
    text = prediction_csv(predict(loaded, frame.to_csv(index=False).encode(), "x.csv"))
    assert "'=HYPERLINK(1)" in text


def test_cli_models_and_predict(store, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from engine.cli import main

    sim = hospital(store, rounds=1)
    db = str(store.path)
    assert (
        main(["--db", db, "models", sim.run_id, "--client", "hospital-2", "--out", str(tmp_path / "m")]) == 0
    )
    assert (tmp_path / "m" / sim.run_id / "final" / "client-01-hospital-2" / "README.md").is_file()
    frame = pd.read_csv(ROOT / "examples/data/hospital.csv").head(20)
    frame.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "pred.csv"
    assert (
        main(
            [
                "--db",
                db,
                "predict",
                sim.run_id,
                "--client",
                "hospital-2",
                "--input",
                str(tmp_path / "in.csv"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "figures on 20 rows" in printed and "reference" in printed
    assert len(pd.read_csv(out)) == 20
    frame.drop(columns=["age"]).to_csv(tmp_path / "bad.csv", index=False)
    assert (
        main(
            [
                "--db",
                db,
                "predict",
                sim.run_id,
                "--client",
                "hospital-2",
                "--input",
                str(tmp_path / "bad.csv"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "missing column 'age'" in capsys.readouterr().err


def test_images_in_predict(store) -> None:  # noqa: ANN001
    from PIL import Image

    sim = run(store, rounds=1, data={"dataset": "digits", "max_samples": 300})
    loaded = load(store, sim.run_id, "c-1")
    x = sim.federation.clients[0].test.x[:3]
    files = []
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray((img[0].numpy() * 255).round().astype(np.uint8)).save(buf, format="PNG")
        files.append((f"digit{i}.png", buf.getvalue()))
    result = predict(loaded, images=files)
    assert list(result.table["file"]) == ["digit0.png", "digit1.png", "digit2.png"]
    with torch.no_grad():
        expected = loaded.predictor(x)
    assert torch.allclose(result.outputs, expected, atol=0.05)  # 8-bit pixels
    with pytest.raises(DataError, match="not an image"):
        predict(loaded, images=[("notes.png", b"hello")])


def test_best_validation_and_final_models(store) -> None:  # noqa: ANN001
    """Both are kept; the default (the model card's and Predict's) is the one the app reports."""
    sim = run(store, rounds=4, data={"dataset": "digits", "max_samples": 400})
    idx = index(store, sim.run_id)
    assert idx["default"] == "best"
    for c in sim.clients:
        kept = sim.best[c.id]
        best = load(store, sim.run_id, c.name)
        assert best.config["which"] == "best" and best.config["round"] == kept["round"]
        assert all(torch.equal(best.tensors[k], v) for k, v in kept["model"].items())
        assert best.config["metrics"]["local_acc"] == pytest.approx(kept["scores"]["local_acc"])
        assert load(store, sim.run_id, c.name, "final").config["round"] == 4
    card = (load(store, sim.run_id, "c-1").folder / "README.md").read_text()
    assert "best validation round" in card
    assert load(store, sim.run_id, "federation").config["round"] == sim.server_best["all"]["round"]


def test_predict_page_helpers_read_what_was_kept(store) -> None:  # noqa: ANN001
    sim = run(store, rounds=1, data={"dataset": "digits", "max_samples": 300})
    shutil.rmtree(keep.run_folder(store, sim.run_id))
    with pytest.raises(ModelNotFoundError, match="keeps no models"):
        index(store, sim.run_id)


def test_positions_of_duplicates_are_interchangeable() -> None:
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]])
    assert match_rows(a, torch.tensor([[3.0, 4.0], [1.0, 2.0]])).tolist()[0] == 1


def match_rows(prepared_all: torch.Tensor, wanted: torch.Tensor) -> np.ndarray:
    """Positions in ``prepared_all`` of each row of ``wanted`` (first exact match)."""
    flat_all, flat = prepared_all.reshape(len(prepared_all), -1), wanted.reshape(len(wanted), -1)
    eq = (flat[:, None, :] == flat_all[None, :, :]).all(-1)
    assert bool(eq.any(1).all()), "a test row matches no row of the dataset"
    return eq.float().argmax(1).numpy()


def split_positions(sim: Simulation, cid: int) -> np.ndarray:
    """Dataset positions (= file rows for a file without dropped rows) of a client's local test split."""
    fed = sim.federation
    return match_rows(fed.clients[cid].transform(fed.data.x), fed.clients[cid].test.x)


def test_every_strategy_keeps_what_it_evaluates(store) -> None:  # noqa: ANN001
    """Each registered strategy's kept client model scores its test split exactly as the run's
    evaluation does (the hook's default or the strategy's override), and what the federation keeps
    loads (complete models predict)."""
    from engine.strategies import STRATEGIES

    names = [n for n, _ in STRATEGIES.items()]
    cfg = digits_config(
        rounds=1,
        checkpoint_every=0,
        data={"dataset": "digits", "max_samples": 240, "public_fraction": 0.1},
        clients=[{"name": "c", "count": 3, "model": {"arch": "mlp", "hidden": 8}}],
    )
    for name in names:
        sim = Simulation(parse_config({**cfg, "strategy": {"name": name}}), store=store)
        sim.run()
        for c in sim.clients:
            loaded = load(store, sim.run_id, c.name, "final")
            raw = sim.federation.clients[c.id].test.x
            with torch.no_grad():
                assert torch.allclose(loaded.predictor(raw), engine_outputs(sim, c.id), atol=1e-6), name
        for m in index(store, sim.run_id)["models"]:
            if m["role"] == "federation":
                fed = load(store, sim.run_id, m["name"], m["which"])
                assert (fed.predictor is not None) == (m["part"] == "model"), name


def test_regression_predictions_are_values_in_the_targets_units(store) -> None:  # noqa: ANN001
    cfg = json.loads((ROOT / "examples/data_traffic_tabular.json").read_text())
    cfg.update(rounds=1, checkpoint_every=0)
    cfg["data"]["max_samples"] = 1500
    cfg["clients"][0]["model"] = {"arch": "mlp", "hidden": 16}
    sim = Simulation(parse_config(cfg), store=store)
    sim.run()
    cid = 1
    loaded = load(store, sim.run_id, sim.clients[cid].name, "final")
    fed = sim.federation
    names = loaded.config["schema"]["columns"]
    raw = fed.data.x[split_positions(sim, cid)]
    frame = pd.DataFrame(raw.numpy(), columns=names)
    frame["target"] = (
        fed.clients[cid].test.y * fed.target_std + fed.target_mean
    ).numpy()  # next hour's volume
    result = predict(loaded, frame.to_csv(index=False).encode(), "week.csv")
    column = "prediction (volume in thousand vehicles/hour)"
    values = torch.tensor(result.table[column].to_numpy(copy=True))
    expected = engine_outputs(sim, cid)[:, 0].double() * fed.target_std + fed.target_mean
    assert torch.allclose(values, expected, atol=1e-3)
    r2 = float(
        store.client_metrics(sim.run_id).query(f"client_id == {cid} and key == 'local_r2'")["value"].iloc[0]
    )
    assert result.metrics["r2"] == pytest.approx(r2, abs=1e-4)
    assert result.reference["r2"] <= 0.01  # the training mean explains (almost) nothing


def test_time_series_windows_are_cut_as_in_training(store) -> None:  # noqa: ANN001
    from engine.tracking.storage import default_data_dir

    rng = np.random.default_rng(0)
    rows = []
    for site in ("north", "south", "east"):
        level = rng.uniform(20, 40)
        for h in range(80):
            rows.append(
                {
                    "site": site,
                    "time": f"2024-03-{1 + h // 24:02d} {h % 24:02d}:00",
                    "rain": round(float(rng.random()), 2),
                    "volume": round(level + 10 * np.sin(h / 4) + rng.normal(), 2),
                }
            )
    path = default_data_dir() / "flows.csv"  # the data directory: a file the app may read
    pd.DataFrame(rows).to_csv(path, index=False)
    cfg = {
        "name": "flows",
        "rounds": 1,
        "checkpoint_every": 0,
        "data": {
            "dataset": "csv",
            "path": str(path),
            "target": "volume",
            "task": "regression",
            "window": {"time_column": "time", "length": 6, "horizon": 1, "include_target": True},
            "partition": {"method": "natural", "column": "site"},
        },
        "clients": [
            {
                "name": "site",
                "count": 3,
                "model": {"arch": "gru", "hidden": 8},
                "optimizer": "adam",
                "lr": 0.01,
                "preprocessing": "standardize",
            }
        ],
        "strategy": {"name": "fedavg"},
    }
    sim = Simulation(parse_config(cfg), store=store)
    sim.run()
    loaded = load(store, sim.run_id, "0", "final")
    series = sim.federation.data.columns["site"]
    name = sorted({"north", "south", "east"})[0]  # client 0: the first site in sorted order
    mine = pd.DataFrame(rows).query("site == @name").sample(frac=1.0, random_state=1)  # any row order
    result = predict(loaded, mine.to_csv(index=False).encode(), "week.csv")
    raw = sim.federation.data.x[torch.as_tensor(series == name)]
    with torch.no_grad():
        expected = loaded.predictor(raw)
    assert len(result.table) == len(raw) == 80 - 6  # one prediction per window
    assert torch.allclose(result.outputs, expected, atol=1e-5)
    assert list(result.table["site"].unique()) == [name] and "time" in result.table.columns
    assert result.metrics is not None and np.isfinite(result.metrics["r2"])
    with pytest.raises(DataError, match="past values of 'volume'"):
        predict(loaded, mine.drop(columns=["volume"]).to_csv(index=False).encode(), "week.csv")
