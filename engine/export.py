"""Exports of a run: CSV of its figures, the JSON config (re-runnable with ``python -m engine run``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from engine.errors import FedMosaicError, StorageError
from engine.storage import Store


def safe_filename(name: str, default: str = "export") -> str:
    """A file name with only letters, digits, ``-``, ``_`` and ``.``; no path parts, no leading dot."""
    name = Path(str(name)).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name[:120] or default


def round_table(store: Store, run_id: str) -> pd.DataFrame:
    """One row per round, one column per round metric."""
    long = store.round_metrics(run_id)
    if long.empty:
        return pd.DataFrame({"round": []})
    wide = long.pivot_table(index="round", columns="key", values="value", aggfunc="first")
    wide.columns.name = None
    return wide.reset_index()


def config_json(store: Store, run_id: str) -> str:
    """The run's full config as JSON (valid input for ``python -m engine run``)."""
    return json.dumps(store.get_run(run_id)["config"], indent=2)


def export_run(store: Store, run_id: str, fmt: str, out: Path) -> Path:
    """Write ``csv`` (round metrics, one row per round) or ``json`` (the config) to ``out``.

    :raises StorageError: the file cannot be written.
    """
    store.get_run(run_id)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv":
            round_table(store, run_id).to_csv(out, index=False)
        elif fmt == "json":
            out.write_text(config_json(store, run_id), encoding="utf-8")
        else:
            raise FedMosaicError(f"unknown export format '{fmt}'; use csv or json")
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror}") from None
    return out
