"""ONNX export of every architecture in the zoo (the ``onnx`` extra): onnxruntime's outputs on a
client's test split equal torch's within 1e-4, preprocessing (missing values, scaling) included."""

from __future__ import annotations

import json

import pytest
import torch

from engine.artifacts.load import load
from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.models import ARCHITECTURES
from tests.test_artifacts import ROOT, split_positions

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from engine.artifacts.onnx_export import export_onnx, run_onnx  # noqa: E402

SMALL = {
    "mlp": {"hidden": 16},
    "cnn": {"channels": 4},
    "cnn1d": {"channels": 4},
    "fedavg_cnn": {"channels": 4, "depth": 1, "padding": "same"},
    "resnet": {"channels": 4, "stages": 2},
    "lstm": {"hidden": 8},
    "gru": {"hidden": 8, "bidirectional": True},
    "transformer": {"d_model": 16, "heads": 2, "layers": 1, "ff": 16},
}


def _check(store, sim: Simulation, raw_test: dict[int, torch.Tensor]) -> None:  # noqa: ANN001
    for c in sim.clients:
        loaded = load(store, sim.run_id, c.name, "final")
        x = raw_test[c.id]
        with torch.no_grad():
            expected = loaded.predictor(x)
        got = torch.as_tensor(run_onnx(export_onnx(loaded), x))
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-4, rtol=0), (c.arch, float((got - expected).abs().max()))


def test_every_image_architecture_exports(store) -> None:  # noqa: ANN001
    archs = [n for n, a in ARCHITECTURES.items() if "image" in a.kinds]
    assert set(archs) >= set(SMALL) - {"nothing"}  # a new architecture gets a small size here
    cfg = parse_config(
        {
            "name": "onnx",
            "rounds": 1,
            "data": {"dataset": "digits", "max_samples": 300},
            "clients": [{"name": n, "model": {"arch": n, **SMALL.get(n, {})}} for n in archs],
            "strategy": {"name": "local"},
            "checkpoint_every": 0,
        }
    )
    sim = Simulation(cfg, store=store)
    sim.run()
    _check(
        store, sim, {c.id: sim.federation.clients[c.id].test.x for c in sim.clients}
    )  # digits: no preprocessing


def test_tabular_architectures_with_missing_values_and_scaling(store) -> None:  # noqa: ANN001
    cfg = json.loads((ROOT / "examples/data_csv_hospital.json").read_text())
    cfg["data"]["path"] = str(ROOT / "examples/data/hospital.csv")
    archs = ["mlp", "lstm", "mlp", "gru", "mlp"]  # five sites; every architecture is checked above
    cfg.update(
        rounds=1,
        checkpoint_every=0,
        strategy={"name": "local"},
        clients=[
            {"name": n, "model": {"arch": n, **SMALL.get(n, {})}, "preprocessing": "standardize"}
            for n in archs
        ],
    )
    sim = Simulation(parse_config(cfg), store=store)
    sim.run()
    raw = {c.id: sim.federation.data.x[split_positions(sim, c.id)] for c in sim.clients}
    assert any(torch.isnan(x).any() for x in raw.values())  # the graph fills missing values itself
    _check(store, sim, raw)


def test_prototype_rule_exports(store) -> None:  # noqa: ANN001
    cfg = parse_config(
        {
            "name": "onnx",
            "rounds": 1,
            "data": {"dataset": "digits", "max_samples": 300},
            "clients": [{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 8}}],
            "strategy": {"name": "fedproto", "inference": "prototype"},
            "checkpoint_every": 0,
        }
    )
    sim = Simulation(cfg, store=store)
    sim.run()
    assert load(store, sim.run_id, "c-1", "final").config["rule"] == "prototype"
    _check(store, sim, {c.id: sim.federation.clients[c.id].test.x for c in sim.clients})
