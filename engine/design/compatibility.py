"""Which strategies can run a design's roster (and why the others cannot), as a list and as the
compatibility matrix, and the design with another strategy."""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd

from engine.catalog import catalog
from engine.config import parse_config
from engine.design.document import split_problems
from engine.design.schema import dataset_summary
from engine.errors import FedMosaicError
from engine.validate import compatibility


def strategies(design: dict[str, Any]) -> list[dict[str, Any]]:
    """Every strategy with ``reason`` = why it cannot run this design's roster (``None``: it can),
    plus ``family, description, paper, url, mixed_architectures, params``. When the design itself is
    invalid, every strategy carries the first problem as its reason."""
    entries = catalog()["strategies"]
    reasons: dict[str, str | None] = {}
    problem = None
    try:
        config = parse_config(design)
    except FedMosaicError as exc:
        config, problem = None, split_problems(str(exc))[0]
    if config is not None:
        try:
            task = dataset_summary(config.data.model_dump(mode="json"))["task"]
            reasons = compatibility(config, task)
        except FedMosaicError as exc:
            problem = f"data: {exc}"
    out = []
    for e in entries:
        reason = f"fix the design first ({problem})" if problem else reasons.get(e["name"])
        out.append({**e, "reason": reason})
    return out


def compatibility_matrix(design: dict[str, Any]) -> pd.DataFrame:
    """Strategies x (runs?, reason) for the design, collaborative strategies first."""
    rows = [
        {
            "strategy": s["name"],
            "family": s["family"],
            "can run": s["reason"] is None,
            "reason": s["reason"] or "",
        }
        for s in strategies(design)
    ]
    return pd.DataFrame(rows)


def with_strategy(design: dict[str, Any], name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the design using strategy ``name`` with ``params`` (defaults for the rest)."""
    design = copy.deepcopy(design)
    design["strategy"] = {"name": name, **(params or {})}
    return design
