"""Scenario templates: the shipped experiment configs (``examples/templates/<id>.json``), how the
Home page presents them, the design a fresh session starts from, and the example data files."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.design.document import normalize
from engine.design.roster import default_client
from engine.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
"""The project folder (the shipped templates and example data live under ``examples/``)."""
TEMPLATES_DIR = ROOT / "examples" / "templates"
EXAMPLE_DATA_DIR = ROOT / "examples" / "data"


# ---------------------------------------------------------------------------------------------
# Scenario templates
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Template:
    """A scenario template: a full experiment config plus how the Home page presents it."""

    id: str
    title: str
    icon: str
    summary: str
    config: dict[str, Any]


#: Presentation of the shipped templates (their configs live in ``examples/templates/<id>.json``).
TEMPLATE_INFO: dict[str, tuple[str, str, str]] = {
    "quickstart": (
        ":material/rocket_launch:",
        "Quick start",
        (
            "Eight identical clients on handwritten digits with label skew, FedAvg: the smallest "
            "experiment that shows federated learning working."
        ),
    ),
    "hospital": (
        ":material/local_hospital:",
        "Hospital network",
        (
            "Four hospitals with their own scanners (image style) and their own image models "
            "(small and large CNNs, a ResNet, an MLP); one client per site, prototypes shared."
        ),
    ),
    "hospital_records": (
        ":material/table_view:",
        "Hospital records (CSV)",
        (
            "Readmission prediction from a patient-records CSV, split naturally by hospital; "
            "the starting point for your own spreadsheet."
        ),
    ),
    "traffic": (
        ":material/traffic:",
        "City traffic: congestion",
        (
            "One client per city predicting next-hour congestion (free / busy / jammed) from the past "
            "12 hours, each city with its own sequence model (LSTM, GRU, 1-D CNN, transformer)."
        ),
    ),
    "traffic_volume": (
        ":material/show_chart:",
        "City traffic: volume",
        "The same cities predicting next-hour traffic volume (regression) with recurrent models.",
    ),
    "compromised_site": (
        ":material/gpp_maybe:",
        "One compromised site",
        (
            "Ten hospitals train one model; one site is compromised and plants a backdoor (a small "
            "patch that makes any image read as class 0). Launch compares defences side by side: "
            "accuracy and the attack's success rate per defence."
        ),
    ),
    "privacy_hospitals": (
        ":material/shield:",
        "Privacy budget per hospital",
        (
            "Five hospitals predicting an outcome from patient records, each with its own privacy "
            "budget ε (DP-SGD on its records; one without), and secure aggregation: the server sees "
            "only sums. Watch what each budget costs in accuracy."
        ),
    ),
    "edge": (
        ":material/smartphone:",
        "Phones and edge devices",
        (
            "Forty small clients on budget phones, flagship phones and Raspberry Pis, with models sized to "
            "each device (HeteroFL); 30% are picked per round and an 80 ms deadline drops stragglers."
        ),
    ),
}
_TEMPLATE_ORDER = list(TEMPLATE_INFO)


def templates() -> list[Template]:
    """The shipped scenario templates, in presentation order (unknown files last, by name)."""
    out = []
    for path in sorted(
        TEMPLATES_DIR.glob("*.json"),
        key=lambda p: (_TEMPLATE_ORDER.index(p.stem) if p.stem in _TEMPLATE_ORDER else 99, p.stem),
    ):
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        icon, title, summary = TEMPLATE_INFO.get(
            path.stem, (":material/science:", config.get("name", path.stem), "")
        )
        out.append(Template(path.stem, title, icon, summary, config))
    return out


def template(template_id: str) -> dict[str, Any]:
    """The config of one template, as a fresh dict.

    :raises ConfigError: no such template (naming the valid ones).
    """
    for t in templates():
        if t.id == template_id:
            config = copy.deepcopy(t.config)
            data = config.get("data") or {}
            if data.get("path"):
                data["path"] = _project_path(data["path"])
            return config
    raise ConfigError(f"no template '{template_id}'; templates: {', '.join(t.id for t in templates())}")


def new_design() -> dict[str, Any]:
    """The design a fresh session starts from (the quick-start template, or a minimal config)."""
    try:
        return normalize(template("quickstart"))
    except ConfigError:
        return normalize(
            {"name": "my experiment", "rounds": 10, "clients": [{**default_client(), "count": 4}]}
        )


def _project_path(path: str) -> str:
    """A path of a file shipped with FedMosaic as ``examples/...`` when the app runs from the project
    folder (portable configs), else absolute (so it is found from any working directory)."""
    if Path(path).is_absolute() or Path(path).exists() or not (ROOT / path).exists():
        return path
    return str(ROOT / path)


def example_csvs() -> list[str]:
    """CSV files shipped with FedMosaic (``examples/data/...``; absolute when run from elsewhere)."""
    return [_project_path(str(p.relative_to(ROOT))) for p in sorted(EXAMPLE_DATA_DIR.glob("*.csv"))]
