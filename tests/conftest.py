"""Shared fixtures. Every test gets its own data directory and database (no user state touched),
and torch uses one thread: the models here are tiny and 2 cores are shared by the suite (runs
too: FEDMOSAIC_THREADS caps the thread policy's budget, engine/threads.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("FEDMOSAIC_THREADS", "1")
# the app trains runs in processes of their own; tests keep them in threads (monkeypatched gates,
# no interpreter start per run); tests/test_worker.py covers the process path
os.environ.setdefault("FEDMOSAIC_ISOLATION", "thread")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("fedmosaic-home")
    monkeypatch.setenv("FEDMOSAIC_HOME", str(home))
    monkeypatch.setenv("FEDMOSAIC_DB", str(home / "test.db"))
    return home


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    from engine.tracking.storage import Store

    s = Store(tmp_path / "runs.db")
    yield s
    s.close()


def digits_config(**overrides):  # noqa: ANN001, ANN201
    """A small valid config dict on digits; keyword overrides replace top-level keys."""
    base = {
        "name": "test",
        "seed": 0,
        "rounds": 2,
        "data": {"dataset": "digits", "partition": {"method": "dirichlet", "alpha": 0.5}},
        "clients": [
            {
                "name": "c",
                "count": 4,
                "model": {"arch": "mlp", "hidden": 32},
                "optimizer": "sgd",
                "lr": 0.05,
                "momentum": 0.9,
                "epochs": 1,
                "batch_size": 32,
            }
        ],
        "strategy": {"name": "fedavg"},
    }
    base.update(overrides)
    return base


os.environ.setdefault("PYTHONHASHSEED", "0")
