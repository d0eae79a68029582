"""What a run keeps when it ends: every client's model as its strategy evaluates it and what the
federation shares, as safetensors with everything needed to use them elsewhere.

:func:`keep_models` runs when a run finishes or is cancelled (a cancelled run keeps the models of
its last completed round: the round loop puts back the states of a round it did not finish). It
asks the strategy (:meth:`engine.strategies.base.Strategy.kept_model` and
:meth:`~engine.strategies.base.Strategy.kept_federation`) what to keep, and writes one folder per
model under ``<data dir>/models/<run id>/<which>/<name>/``:

- ``model.safetensors`` - the weights (a prediction rule's tensors, such as FedProto's global
  prototypes, under ``rule.``);
- ``preprocessing.safetensors`` - the client's fitted preprocessing (fill, keep, centre, scale);
- ``config.json`` - the architecture, input, label encoding, target scaling, input schema
  (:mod:`engine.artifacts.schema`), the figures at that round, the run, and a privacy slot;
- ``README.md`` - the model card (:mod:`engine.artifacts.card`).

``which`` is ``final`` (the last completed round) and, when the run kept each client's weights at
its best validation round (:attr:`Simulation.best`), also ``best``; ``index.json`` lists them
and says which one the app's figures report (``default``).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from engine.artifacts import card
from engine.artifacts.entries import Entry, entries, run_info, training_labels
from engine.artifacts.schema import schema_of
from engine.sanitize import safe_filename
from engine.tracking.observers import Observer

if TYPE_CHECKING:
    from engine.core.simulation import Simulation
    from engine.tracking.storage import Store

FORMAT = "fedmosaic-model/1"
RULE_PREFIX = "rule."


def models_root(store: Store) -> Path:
    """Folder of every run's kept models, beside the database."""
    return store.models_dir


def run_folder(store: Store, run_id: str) -> Path:
    """Folder of one run's kept models (``run_id`` is checked to be a plain id)."""
    if not run_id or safe_filename(run_id, "") != run_id:
        raise ValueError(f"not a run id: {run_id!r}")
    return models_root(store) / run_id


def _tensors(tree: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tree.items() if isinstance(v, Tensor)}


def _affine_tensors(affine: Any) -> dict[str, Tensor]:
    return {
        k: getattr(affine, k) for k in ("fill", "keep", "center", "scale") if getattr(affine, k) is not None
    }


def write_entry(folder: Path, entry: Entry, which: str, common: dict[str, Any]) -> None:
    """Write one model's folder (weights, preprocessing, config.json, README.md)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    kept = entry.kept
    tensors = _tensors(kept.tensors)
    tensors.update({RULE_PREFIX + k: v for k, v in _tensors(kept.extra).items()})
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": FORMAT})
    save_file(
        _tensors(_affine_tensors(entry.preprocessing)),
        str(folder / "preprocessing.safetensors"),
        metadata={"format": FORMAT},
    )
    config = {
        **plain(
            {
                "format": FORMAT,
                "name": entry.name,
                "which": which,
                "role": entry.role,
                "label": entry.label,
                "client": entry.client,
                "part": kept.part,
                "rule": kept.rule,
                "note": kept.note,
                "model": kept.spec,
                "round": entry.round,
                "metrics_round": entry.metrics_round,
                "metrics": entry.metrics,
                "privacy": entry.privacy,
            }
        ),
        **common,
    }  # common: already plain
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    (folder / "README.md").write_text(card.render(config), encoding="utf-8")


def plain(value: Any) -> Any:
    """``value`` as strict JSON: non-finite numbers become ``null``, tensors lists, other objects text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Tensor):
        return plain(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def keep_models(sim: Simulation, status: str, rnd: int) -> Path | None:
    """Write the run's kept models after its last completed round ``rnd`` (replacing what an
    earlier attempt kept); ``None`` when there is nothing to keep (no store, no round done)."""
    if sim.store is None or sim.run_id is None or rnd < 1:
        return None
    fed = sim.federation
    data = fed.data
    common = {
        "input": {"kind": fed.input_spec.kind, "shape": list(fed.input_spec.shape)},
        "rep_dim": sim.config.rep_dim,
        "n_outputs": fed.n_outputs,
        "task": fed.task,
        "classes": list(data.classes),
        "target": {
            "name": sim.config.data.target or (data.report or {}).get("target"),
            "mean": float(fed.target_mean),
            "std": float(fed.target_std),
            "units": (data.report or {}).get("units"),
        },
        "schema": schema_of(data, sim.config.data),
        "statistics": sim.config.data.statistics,
        "pooled_training_labels": training_labels(
            fed.task, torch.cat([d.train.y for d in fed.clients]), fed.n_outputs
        ),
        "run": run_info(sim, status, rnd),
        "versions": {"torch": torch.__version__},
    }
    common = plain(common)
    found = entries(sim, rnd)
    target = run_folder(sim.store, sim.run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sim.run_id}-", dir=target.parent))
    try:
        index: dict[str, Any] = {
            "format": FORMAT,
            "run_id": sim.run_id,
            "round": rnd,
            "status": status,
            "default": "best" if "best" in found else "final",
            "models": [],
            "roster": [{"position": c.id, "name": c.name, "arch": c.arch} for c in sim.clients],
        }
        for which, items in found.items():
            for entry in items:
                write_entry(staging / which / entry.name, entry, which, common)
                index["models"].append(
                    {
                        "name": entry.name,
                        "which": which,
                        "role": entry.role,
                        "part": entry.kept.part,
                        "round": entry.round,
                        "client": entry.client["name"] if entry.client else None,
                        "position": entry.client["position"] if entry.client else None,
                    }
                )
        (staging / "index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def delete_models(store: Store, run_id: str) -> None:
    """Remove a run's kept models (when the run is deleted)."""
    try:
        folder = run_folder(store, run_id)
    except ValueError:
        return
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


class ModelKeeper(Observer):
    """Keeps the models of a run that finished or was cancelled (an observer of the round loop).
    A finished run then keeps its newest resumable checkpoint only (a running or cancelled one
    keeps two, so a damaged newest one falls back to the one before)."""

    name = "keeping the models"

    def ended(self, sim: Simulation, status: str, rnd: int) -> None:
        if status in ("finished", "cancelled") and hasattr(sim, "strategy"):
            folder = keep_models(sim, status, rnd)
            if folder is not None and status == "finished":
                sim.store.prune_checkpoints(sim.run_id, keep=1)
            if folder is not None:
                sim._log(
                    f"models of round {rnd} kept (download them from Results or with python -m engine "
                    f"models {sim.run_id} --out DIR)"
                )
