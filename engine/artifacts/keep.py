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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from engine.artifacts import card
from engine.artifacts.schema import schema_of
from engine.sanitize import safe_filename
from engine.tracking.observers import Observer
from engine.types import Kept

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


@dataclass
class Entry:
    """One model to write: its folder name, what it is, the kept tensors and its figures."""

    name: str
    role: str  # client | federation
    kept: Kept
    preprocessing: Any  # engine.data.preprocess.Affine
    metrics: dict[str, float]
    round: int
    metrics_round: int | None
    client: dict[str, Any] | None = None
    label: str | None = None
    privacy: dict[str, Any] | None = None


def federation_name(label: str, spec: dict[str, Any] | None, taken: set[str]) -> str:
    """A folder name for a federation model: ``federation``, ``federation-mlp``, ``federation-prototypes``."""
    if label == "all":
        base = "federation"
    elif label.startswith("{") and spec is not None:
        base = f"federation-{spec.get('arch', 'model')}"
    else:
        base = f"federation-{label}"
    base = safe_filename(base, "federation")
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def client_name(position: int, name: str) -> str:
    """A client's folder name: ``client-03-<name>`` (its roster position keeps names unique)."""
    return f"client-{position:02d}-{safe_filename(name, 'client')}"[:80]


def server_suffix(label: str) -> str:
    """The suffix the round loop gives a server model's figures (``server_acc[mlp]``)."""
    if label == "all":
        return ""
    return f"[{json.loads(label)['arch']}]" if label.startswith("{") else f"[{label}]"


def _last_evaluated(sim: Simulation) -> tuple[int | None, dict[str, float], dict[int, dict[str, float]]]:
    for record in reversed(sim.history):
        if any(k.startswith(("local_", "global_", "server_")) for k in record.metrics) or any(
            any(k.startswith("local_") for k in m) for m in record.clients.values()
        ):
            return record.round, record.metrics, record.clients
    return None, {}, {}


def _figures(metrics: dict[str, float], prefixes: tuple[str, ...]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefixes) and isinstance(v, (int, float))}


def entries(sim: Simulation, rnd: int) -> dict[str, list[Entry]]:
    """The models a run keeps after round ``rnd``, as ``{"final": [...], "best": [...]}``."""
    strategy, fed = sim.strategy, sim.federation
    eval_round, round_metrics, per_client = _last_evaluated(sim)
    final: list[Entry] = []
    best: list[Entry] = []
    kept_best = getattr(sim, "best", {}) or {}
    for c in sim.clients:
        if c.spec.join_round > max(rnd, 1):
            continue  # never joined: nothing it learnt
        kept = strategy.kept_model(c, sim.states[c.id])
        info = {
            "id": c.id,
            "name": c.name,
            "position": c.id,
            "n_train": c.n_train,
            "n_test": c.n_test,
            "arch": c.arch,
            "preprocessing": c.spec.preprocessing,
            "training_labels": training_labels(fed.task, fed.clients[c.id].train.y, fed.n_outputs),
        }
        figures = _figures(per_client.get(c.id, {}), ("local_", "global_", "val_", "ref_"))
        privacy = privacy_of(sim, c.id)
        final.append(
            Entry(
                client_name(c.id, c.name),
                "client",
                kept,
                fed.clients[c.id].transform,
                figures,
                rnd,
                eval_round,
                info,
                privacy=privacy,
            )
        )
        b = kept_best.get(c.id)
        if b is not None and isinstance(b.get("model"), dict):
            best_kept = Kept(
                b["model"],
                kept.spec,
                kept.part,
                kept.rule,
                kept.extra,
                note=("prediction rule tensors are those of the final round" if kept.extra else ""),
            )
            scores = {
                **_figures(b.get("scores", {}), ("local_", "global_")),
                **{f"val_{k}": float(v) for k, v in b.get("val", {}).items()},
                **_figures(figures, ("ref_",)),
            }
            best.append(
                Entry(
                    client_name(c.id, c.name),
                    "client",
                    best_kept,
                    fed.clients[c.id].transform,
                    scores,
                    int(b["round"]),
                    int(b["round"]),
                    info,
                    privacy=privacy,
                )
            )
    taken: set[str] = set()
    server_best = getattr(sim, "server_best", {}) or {}
    shared_privacy = privacy_of(sim, None)
    for label, kept in strategy.kept_federation().items():
        name = federation_name(label, kept.spec, taken)
        suffix = server_suffix(label) if label != "prototypes" else ""
        figures = {}
        if kept.part == "model":
            figures = {
                k[len("server_") : -len(suffix) if suffix else None]: float(v)
                for k, v in round_metrics.items()
                if k.startswith("server_") and k.endswith(suffix) and (suffix or "[" not in k)
            }
        final.append(
            Entry(
                name,
                "federation",
                kept,
                fed.reference,
                figures,
                rnd,
                eval_round,
                label=label,
                privacy=shared_privacy,
            )
        )
        b = server_best.get(label)
        if b is not None and isinstance(b.get("model"), dict):
            best.append(
                Entry(
                    name,
                    "federation",
                    Kept(b["model"], kept.spec, kept.part),
                    fed.reference,
                    {
                        **_figures(b.get("scores", {}), ("",)),
                        **{f"val_{k}": float(v) for k, v in b.get("val", {}).items()},
                    },
                    int(b["round"]),
                    int(b["round"]),
                    label=label,
                    privacy=shared_privacy,
                )
            )
    out = {"final": final}
    if best:
        out["best"] = best
    return out


def training_labels(task: str, y: Tensor, n_outputs: int) -> dict[str, Any]:
    """What the input-blind reference predictor is fitted on (:func:`engine.core.scores.constant_outputs`):
    the training labels' class counts, or their mean (standard units)."""
    if task == "classification":
        return {"counts": torch.bincount(y.long(), minlength=n_outputs).tolist()}
    return {"mean": float(y.float().mean()) if len(y) else 0.0}


def run_info(sim: Simulation, status: str, rnd: int) -> dict[str, Any]:
    """What the model card says about the run."""
    from engine.labels import dataset_label

    cfg = sim.config
    data = cfg.data.model_dump(mode="json")
    return {
        "id": sim.run_id,
        "name": cfg.name,
        "status": status,
        "strategy": cfg.strategy.name,
        "strategy_params": cfg.strategy.params(),
        "dataset": dataset_label(data),
        "data": data,
        "seed": cfg.seed,
        "rounds": cfg.rounds,
        "rounds_done": rnd,
        "n_clients": len(sim.clients),
        "primary_metric": getattr(getattr(sim, "primary", None), "key", None),
        "kept_at": time.time(),
    }


def privacy_of(sim: Simulation, client_id: int | None) -> dict[str, Any] | None:
    """The privacy settings behind a kept model, ``None`` when there are none: a client's DP-SGD
    settings and spend (:meth:`engine.privacy.ledger.ClientLedger.summary`); for what the
    federation shares, each DP client's and the run's server-side settings."""
    ledger = getattr(sim, "privacy", None)
    if client_id is not None:
        return ledger.summary(client_id) if ledger else None
    server = getattr(
        sim, "private_agg", None
    )  # DP-FedAvg's spend, secure aggregation (engine/privacy/server.py)
    out: dict[str, Any] = dict((server.summary() if server is not None else None) or {})
    if ledger:
        clients = {c.name: ledger.summary(c.id) for c in sim.clients if ledger.summary(c.id)}
        if clients:
            out["clients (DP-SGD)"] = clients
    return out or None


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
