"""What a run keeps, decided before anything is written: one :class:`Entry` per model (each
client's model as its strategy evaluates it, and what the federation shares), named for its
folder, with the figures at its round, the training labels, the run's description and each
model's privacy guarantee. :mod:`engine.artifacts.keep` writes them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from engine.sanitize import safe_filename
from engine.types import Kept

if TYPE_CHECKING:
    from engine.core.simulation import Simulation


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
