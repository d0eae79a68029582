"""What stops a design from launching and what its clients cost: problems per client row and for
the whole design (field errors, an architecture that cannot read the data, unknown tiers...),
advisory warnings, and each client's parameters, FLOPs and estimated training memory."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import torch
from pydantic import ValidationError

from engine.config import ClientSpec, ExperimentConfig, parse_config
from engine.data import load_dataset
from engine.design.choices import tier_names
from engine.design.document import split_problems
from engine.design.roster import DEFAULTS, expanded_rows
from engine.design.schema import data_config
from engine.errors import FedMosaicError, validation_problems
from engine.hardware.devices import estimate_memory
from engine.models import InputSpec, build_model, check_reads, count_params, flops_per_sample
from engine.tracking.storage import default_data_dir
from engine.validate import validate


def design_problems(design: dict[str, Any]) -> list[str]:
    """Everything that stops this design from launching (field errors, then data/compatibility
    checks); empty when it can launch. Problems of single clients come first, by row."""
    rows = expanded_rows(design)
    per_client = [
        f"client {i} ({rows[i].get('name')}): {msg}"
        for i, msgs in sorted(client_issues(design).items())
        for msg in msgs
        if "joins at round" not in msg
    ]
    try:
        config = parse_config(design)
    except FedMosaicError as exc:
        others = [p for p in split_problems(str(exc)) if not p.startswith(("clients.", "model '"))]
        return per_client + others if per_client else split_problems(str(exc))
    if per_client:
        return per_client
    try:
        return list(validate(config).errors)
    except FedMosaicError as exc:
        return [str(exc)]


def design_warnings(design: dict[str, Any]) -> list[str]:
    """Advisory notes of :func:`engine.validate.validate` (empty if the design is invalid)."""
    try:
        return list(validate(parse_config(design)).warnings)
    except FedMosaicError:
        return []


def client_issues(design: dict[str, Any]) -> dict[int, list[str]]:
    """Problems per client row (0-based): invalid fields, an architecture that cannot read the data,
    an unknown tier, duplicate names, shares over 1, late joiners after the last round."""
    rows = expanded_rows(design)
    issues: dict[int, list[str]] = {}
    input_spec = _input_spec(design.get("data") or {})
    names: dict[str, int] = {}
    for i, c in enumerate(rows):
        found: list[str] = []
        adversary = c.get("adversary")
        if isinstance(adversary, dict) and "_settings" in adversary:
            found.append(
                f"attack settings '{adversary['_settings']}': use name=value pairs, e.g. target=3, share=0.5"
            )
            c = {**c, "adversary": {k: v for k, v in adversary.items() if k != "_settings"}}
        model = c.get("model")
        if isinstance(model, dict) and "_knobs" in model:
            found.append(f"size knobs '{model['_knobs']}': use name=value pairs, e.g. hidden=64")
            c = {**c, "model": {k: v for k, v in model.items() if k != "_knobs"}}
        try:
            spec = ClientSpec.model_validate({**c, "count": 1})
        except ValidationError as exc:
            found.extend(validation_problems(exc, empty="client", clean=True))
            spec = None
        except FedMosaicError as exc:
            found.append(str(exc))
            spec = None
        if spec is not None and input_spec is not None:
            try:
                check_reads(spec.model, input_spec)
            except FedMosaicError as exc:
                found.append(
                    str(exc).split(". Architectures")[0] + f"; pick one that reads {input_spec.kind}"
                )
        if spec is not None and spec.tier:
            tiers = tier_names(design)
            if tiers and spec.tier not in tiers:
                found.append(f"tier '{spec.tier}' is unknown; pick one of {', '.join(tiers)}")
        name = str(c.get("name", ""))
        if name in names:
            found.append(f"same name as client {names[name]}; names must be unique")
        names.setdefault(name, i)
        rounds = int(design.get("rounds", 0) or 0)
        if rounds and int(c.get("join_round", 1) or 1) > rounds:
            found.append(f"joins at round {c.get('join_round')} but the run has {rounds} rounds")
        if found:
            issues[i] = found
    shares = [float(c["data_share"]) for c in rows if c.get("data_share") not in (None, "")]
    if shares and sum(shares) > 1 + 1e-9:
        for i, c in enumerate(rows):
            if c.get("data_share") not in (None, ""):
                issues.setdefault(i, []).append(
                    f"data shares add up to {sum(shares):.2f}; they must add up to at most 1"
                )
    return issues


def _input_spec(data: dict[str, Any]):
    try:
        return load_dataset(data_config(data), default_data_dir()).input_spec
    except Exception:  # noqa: BLE001 - no data yet means no per-client reading check
        return None


def client_costs(design: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Per client row: ``params`` (trainable scalars), ``flops`` (forward, per sample) and
    ``memory_mb`` (estimated training memory) for the design's dataset; rows whose model cannot be
    built are left out."""
    data = design.get("data") or {}
    try:
        ds = load_dataset(data_config(data), default_data_dir())
    except Exception:  # noqa: BLE001 - costs need a loadable dataset
        return {}
    default_rep_dim = ExperimentConfig.model_fields["rep_dim"].default
    rep_dim = int(design.get("rep_dim", default_rep_dim) or default_rep_dim)
    out = {}
    for i, c in enumerate(expanded_rows(design)):
        model = c.get("model")
        if not isinstance(model, dict) or "_knobs" in model:
            continue
        try:
            params, flops = _model_cost(
                json.dumps(model, sort_keys=True),
                ds.input_spec.kind,
                tuple(ds.input_spec.shape),
                rep_dim,
                ds.n_outputs,
            )
        except Exception:  # noqa: BLE001, S112 - an invalid model shows up in the row's issues instead
            continue
        try:
            memory = estimate_memory(
                model,
                ds.input_spec,
                rep_dim,
                ds.n_outputs,
                int(c.get("batch_size") or DEFAULTS["batch_size"]),
                str(c.get("optimizer") or DEFAULTS["optimizer"]),
                float(c.get("momentum") or DEFAULTS["momentum"]),
            ).total
        except Exception:  # noqa: BLE001 - no estimate for a model that cannot be built
            memory = None
        out[i] = {
            "params": params,
            "flops": flops,
            "memory_mb": round(memory / 2**20, 2) if memory is not None else None,
        }
    return out


@lru_cache(maxsize=512)
def _model_cost(
    spec_json: str, kind: str, shape: tuple[int, ...], rep_dim: int, n_out: int
) -> tuple[int, int]:
    spec = InputSpec(kind, shape)  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):
        model = build_model(json.loads(spec_json), spec, rep_dim, n_out)
    return count_params(model), flops_per_sample(model, spec)
