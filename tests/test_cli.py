"""The command line: every subcommand, JSON output, one-line errors (no tracebacks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import digits_config

from engine.cli import main


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(digits_config()))
    return path


def test_run_json_then_list_show_export(config_file, tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    assert main(["--db", db, "run", str(config_file), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["rounds"] == 2
    assert 0 <= summary["final"]["global_acc_mean"] <= 1
    run_id = summary["run_id"]

    assert main(["--db", db, "list"]) == 0
    assert run_id in capsys.readouterr().out
    assert main(["--db", db, "show", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "finished"

    out_csv = tmp_path / "r.csv"
    assert main(["--db", db, "export", run_id, "--format", "csv", "--out", str(out_csv)]) == 0
    table = pd.read_csv(out_csv)
    assert list(table["round"]) == [1, 2]
    out_json = tmp_path / "c.json"
    assert main(["--db", db, "export", run_id, "--format", "json", "--out", str(out_json)]) == 0
    again = tmp_path / "again.json"
    again.write_text(out_json.read_text())
    assert main(["--db", db, "validate", str(again)]) == 0


def test_catalog_schema_and_validate(config_file, capsys):
    assert main(["catalog", "--json"]) == 0
    cat = json.loads(capsys.readouterr().out)
    assert {"mlp", "cnn", "gru"} <= {a["name"] for a in cat["architectures"]}
    assert {"fedavg", "local", "centralized"} <= {s["name"] for s in cat["strategies"]}
    assert "digits" in {d["name"] for d in cat["datasets"]}
    assert main(["schema"]) == 0
    assert "ExperimentConfig" in capsys.readouterr().out
    assert main(["validate", str(config_file)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_user_mistakes_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(digits_config(clients=[{"name": "x", "lr": -1}])))
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "--db", str(tmp_path / "x.db"), "run", str(bad)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "clients.0.lr" in proc.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "engine", "show", "nope", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert missing.returncode == 2 and "no run with id 'nope'" in missing.stderr
