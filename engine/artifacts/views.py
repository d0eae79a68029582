"""What the pages show of kept models (Results' Models section, the Predict page): plain data in
the page's words, computed here so pages only lay it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.artifacts.load import WHICH_TEXT, index
from engine.errors import ModelNotFoundError

PART_TEXT = {
    "model": "complete model",
    "body": "shared body only",
    "head": "shared head only",
    "prototypes": "global prototypes",
}


@dataclass
class Choice:
    """One model a user can pick: ``key`` is what :func:`engine.artifacts.load.resolve` reads."""

    key: str
    label: str
    role: str
    part: str
    rounds: dict[str, int]

    @property
    def predicts(self) -> bool:
        return self.part == "model"


@dataclass
class Kept:
    """A run's kept models as the pages show them (``why`` when there are none)."""

    choices: list[Choice]
    default: str | None
    round: int | None = None
    why: str | None = None

    def which_options(self) -> list[str]:
        """``best`` and/or ``final``, the reported one first."""
        found = sorted({w for c in self.choices for w in c.rounds}, key=lambda w: w != self.default)
        return found


def kept(store: Any, run_id: str) -> Kept:
    """The models a run keeps, one choice per client and federation model (with the rounds of
    its best-validation and final weights)."""
    try:
        idx = index(store, run_id)
    except ModelNotFoundError as exc:
        return Kept([], None, why=str(exc))
    by_name: dict[str, Choice] = {}
    for m in idx["models"]:
        choice = by_name.get(m["name"])
        if choice is None:
            if m["role"] == "client":
                label = f"{m['client']} (client {m['position']})"
                key = m["client"]
            else:
                label = (
                    "federation"
                    + m["name"][len("federation") :]
                    + f" ({PART_TEXT.get(m['part'], m['part'])})"
                )
                key = m["name"]
            choice = by_name[m["name"]] = Choice(key, label, m["role"], m["part"], {})
        choice.rounds[m["which"]] = int(m["round"])
    choices = sorted(by_name.values(), key=lambda c: (c.role != "federation", c.label))
    return Kept(choices, idx["default"], idx.get("round"))


def which_label(which: str, rounds: dict[str, int] | None = None, reported: str | None = None) -> str:
    """``best validation round (round 7, reported)``."""
    parts = []
    if rounds and which in rounds:
        parts.append(f"round {rounds[which]}")
    if reported == which:
        parts.append("what Results reports")
    return WHICH_TEXT[which] + (f" ({', '.join(parts)})" if parts else "")


def runs_with_models(store: Any, limit: int = 500) -> list[dict[str, Any]]:
    """Runs that keep models (finished or cancelled after a round), newest first."""
    found = []
    for run in store.list_runs(limit=limit):
        if run["status"] not in ("finished", "cancelled"):
            continue
        if (store.models_dir / run["id"] / "index.json").is_file():
            found.append(run)
    return found


def schema_summary(config: dict[str, Any]) -> dict[str, Any]:
    """What a model reads, for the Predict page: the kind of input, the columns (with the target's
    name), whether images are accepted, and a one-row template of the columns."""
    schema = config.get("schema", {})
    form = schema.get("form")
    columns = [c["name"] if isinstance(c, dict) else c for c in schema.get("columns", [])]
    columns += [c for c in schema.get("required", []) if c not in columns]
    return {
        "form": form,
        "columns": columns,
        "target": schema.get("target"),
        "images": config["input"]["kind"] == "image",
        "readable": schema.get("readable", True),
        "why": schema.get("why"),
        "task": config["task"],
        "classes": config.get("classes", []),
        "units": (config.get("target") or {}).get("units"),
        "window": (schema.get("data") or {}).get("window"),
    }


def template_csv(config: dict[str, Any]) -> str:
    """An empty table with the model's columns (and its target, optional), to fill in."""
    import pandas as pd

    from engine.sanitize import csv_text

    s = schema_summary(config)
    names = s["columns"] + ([s["target"]] if s["target"] else [])
    return csv_text(pd.DataFrame(columns=names))
