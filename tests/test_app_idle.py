"""The app at rest costs nothing: the shipped Streamlit config watches no files (the watcher walked
the repository's .venv and kept a core busy, docs/benchmarks.md), and ``make dev``, which reloads
on save, polls the app's files with .venv excluded."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_config_watches_no_files():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"


def test_make_dev_polls_outside_the_venv():
    dev = (ROOT / "Makefile").read_text().split("\ndev:", 1)[1].split("\n\n", 1)[0]
    assert "--server.fileWatcherType poll" in dev and "--server.folderWatchBlacklist $(VENV)" in dev
