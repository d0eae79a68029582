"""Every shipped data example is a valid experiment config, the offline ones split as their roster
says, and the shipped hospital CSV is exactly what its generator script writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.config import ExperimentConfig
from engine.data import DATASETS, build, natural_groups

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("data_*.json"))
OFFLINE = {"digits", "breast_cancer", "wine", "traffic", "shapes", "csv"}


def test_one_example_per_dataset():
    used = {json.loads(p.read_text())["data"]["dataset"] for p in EXAMPLES}
    assert used == set(DATASETS.names())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_valid_and_builds(path, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # data.path is relative to the repository root
    config = ExperimentConfig.model_validate(json.loads(path.read_text()))
    if config.data.dataset not in OFFLINE:
        return  # downloads: validated only
    roster = config.roster()
    if config.data.partition.method == "natural":
        assert len(roster) == len(natural_groups(config.data, tmp_path))
    fed = build(
        config.data, [c.preprocessing for c in roster], [c.data_share for c in roster], config.seed, tmp_path
    )
    assert len(fed.clients) == len(roster) and all(len(c.train) > 0 for c in fed.clients)


def test_hospital_csv_matches_its_generator(tmp_path, monkeypatch):
    script = REPO / "examples" / "data" / "make_hospital_csv.py"
    spec = importlib.util.spec_from_file_location("make_hospital_csv", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "hospital.csv"
    module.write(out)
    assert out.read_bytes() == (REPO / "examples" / "data" / "hospital.csv").read_bytes()
    rows = module.make()
    assert len(rows) == 600 and sum(1 for r in rows for v in r.values() if v == "") > 50  # missing values


def test_clinical_sites_csv_matches_its_generator(tmp_path):
    from engine.data.datasets.clinical import write_messy_clinical_csv

    out = write_messy_clinical_csv(tmp_path / "clinical_sites.csv")
    assert out.read_bytes() == (REPO / "examples" / "data" / "clinical_sites.csv").read_bytes()
