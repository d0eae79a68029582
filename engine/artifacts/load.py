"""Reading kept models back: the index of a run's models, one model as a ready-to-use module with
its preprocessing, and resolving what a user names (a client's name, its roster position, a folder
name, ``federation``).

Weights are read with :mod:`safetensors` (no pickle); ``config.json`` is plain JSON checked for its
format; a model is rebuilt from its architecture spec through the registry, never by evaluating
text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from engine.artifacts.keep import FORMAT, RULE_PREFIX, run_folder
from engine.core.seeding import seeded
from engine.data.preprocess import Affine
from engine.errors import ModelNotFoundError
from engine.models import InputSpec, build_model

WHICH = ("best", "final")
WHICH_TEXT = {"best": "best validation round", "final": "last round"}


def index(store: Any, run_id: str) -> dict[str, Any]:
    """The run's ``index.json``: ``{"round", "status", "default", "models": [{"name", "which",
    "role", "part", "round", "client", "position"}]}``.

    :raises ModelNotFoundError: the run keeps no models (not ended yet, failed, or older than
        this feature).
    """
    store.get_run(run_id)  # RunNotFoundError first
    try:
        path = run_folder(store, run_id) / "index.json"
    except ValueError:
        raise ModelNotFoundError(f"'{run_id}' is not a run id") from None
    if not path.is_file():
        run = store.get_run(run_id)
        why = {
            "running": "it is still running",
            "queued": "it has not started",
            "failed": "it failed before keeping any",
            "interrupted": "it was interrupted; resume it",
        }.get(run["status"], "it ended before this version kept models; run it again")
        raise ModelNotFoundError(f"run {run_id} keeps no models: {why}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ModelNotFoundError(
            f"run {run_id}: its models are in an unknown format ({data.get('format')!r})"
        )
    return data


def resolve(store: Any, run_id: str, name: str | None = None, which: str | None = None) -> dict[str, Any]:
    """The index entry a user names: a client's name, its roster position, a folder name,
    ``federation`` (the first federation model) or ``federation-<arch>``; ``which`` is ``best``,
    ``final`` or ``None`` (the run's default: what the app reports).

    :raises ModelNotFoundError: naming the models the run has.
    """
    idx = index(store, run_id)
    which = which or idx["default"]
    if which not in WHICH:
        raise ModelNotFoundError(f"'{which}' is not a kind of kept model; use best or final")
    pool = [m for m in idx["models"] if m["which"] == which]
    if not pool:
        raise ModelNotFoundError(
            f"run {run_id} keeps no {WHICH_TEXT[which]} models; use "
            f"{' or '.join(sorted({m['which'] for m in idx['models']}))}"
        )
    if name is None:
        complete = [m for m in pool if m["role"] == "federation" and m["part"] == "model"]
        return complete[0] if complete else pool[0]
    text = str(name).strip()
    for test in (
        lambda m: m["name"] == text,
        lambda m: m["client"] == text,
        lambda m: text.isdigit() and m["position"] == int(text),
        lambda m: text == "federation" and m["role"] == "federation" and m["part"] == "model",
        lambda m: m["role"] == "federation" and m["name"].startswith(text),
    ):
        found = [m for m in pool if test(m)]
        if found:
            return found[0]
    names = [m["client"] or m["name"] for m in pool]
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    raise ModelNotFoundError(f"run {run_id} keeps no model named '{text}'; it keeps: {shown}")


def folder_of(store: Any, run_id: str, entry: dict[str, Any]) -> Path:
    """The folder of an index entry (names are checked to stay inside the run's folder)."""
    from engine.sanitize import safe_filename

    which, name = str(entry["which"]), str(entry["name"])
    if which not in WHICH or safe_filename(name, "") != name:
        raise ModelNotFoundError(f"damaged model index of run {run_id}: entry {name!r}")
    return run_folder(store, run_id) / which / name


class Predictor(nn.Module):
    """A kept model with its preprocessing: raw features in, outputs out (logits for a
    classifier, standardised values for regression). ``rule="prototype"`` scores each class by the
    negative squared distance of the representation to its global prototype (FedProto)."""

    def __init__(
        self,
        model: nn.Module,
        preprocessing: Affine,
        rule: str = "head",
        extra: dict[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.rule = rule
        for key in ("fill", "keep", "center", "scale"):
            value = getattr(preprocessing, key)
            self.register_buffer(f"pre_{key}", value if value is not None else None)
        extra = extra or {}
        self.register_buffer("prototypes", extra.get("prototypes"))
        self.register_buffer("proto_counts", extra.get("proto_counts"))

    def prepare(self, x: Tensor) -> Tensor:
        """The client's preprocessing (:class:`engine.data.preprocess.Affine`, written out so it
        exports to ONNX): fill missing values, blank unseen categories, centre and scale."""
        if self.pre_fill is not None:
            x = torch.where(torch.isnan(x), self.pre_fill, x)
        if self.pre_keep is not None:
            x = x * self.pre_keep
        if self.pre_center is not None and self.pre_scale is not None:
            x = (x - self.pre_center) / self.pre_scale
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.prepare(x)
        if self.rule == "prototype" and self.prototypes is not None:
            from engine.strategies.fedproto import prototype_logits

            return prototype_logits(self.model.features(x), self.prototypes, self.proto_counts)
        return self.model(x)


@dataclass
class Loaded:
    """A kept model read back: its ``config.json``, folder and the ready :class:`Predictor`
    (``None`` for parts that do not predict on their own: a body, a head, prototypes)."""

    config: dict[str, Any]
    folder: Path
    predictor: Predictor | None
    tensors: dict[str, Tensor]


def read_config(folder: Path) -> dict[str, Any]:
    """A kept model's ``config.json`` (format checked)."""
    path = folder / "config.json"
    if not path.is_file():
        raise ModelNotFoundError(f"no config.json in {folder.name}; the model's files are incomplete")
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("format") != FORMAT:
        raise ModelNotFoundError(f"{folder.name}: unknown model format {config.get('format')!r}")
    return config


def load_folder(folder: Path) -> Loaded:
    """Read a kept model's folder (a run's or a downloaded one)."""
    from safetensors.torch import load_file

    config = read_config(folder)
    tensors = load_file(str(folder / "model.safetensors"))
    weights = {k: v for k, v in tensors.items() if not k.startswith(RULE_PREFIX)}
    extra = {k[len(RULE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(RULE_PREFIX)}
    if config.get("part") != "model" or not config.get("model"):
        return Loaded(config, folder, None, tensors)
    pre = load_file(str(folder / "preprocessing.safetensors"))
    spec = InputSpec(config["input"]["kind"], tuple(config["input"]["shape"]))
    with seeded(0, "kept-model"):  # its initial weights are overwritten; the global RNG is left as it was
        model = build_model(config["model"], spec, int(config["rep_dim"]), int(config["n_outputs"]))
    model.load_state_dict(weights)
    affine = Affine(
        center=pre.get("center"), scale=pre.get("scale"), fill=pre.get("fill"), keep=pre.get("keep")
    )
    predictor = Predictor(model, affine, config.get("rule", "head"), extra).eval()
    return Loaded(config, folder, predictor, tensors)


def load(store: Any, run_id: str, name: str | None = None, which: str | None = None) -> Loaded:
    """A run's kept model by the name a user gives (:func:`resolve`)."""
    entry = resolve(store, run_id, name, which)
    return load_folder(folder_of(store, run_id, entry))
