"""The thin facade the Streamlit pages call: scenario templates, drafts, the roster table and back,
the partition preview, the compatibility matrix, launching through the run manager, and results as
data frames. Nothing here imports streamlit; pages never run SQL or training themselves.

The design being edited is a plain config dict (the JSON an :class:`~engine.config.ExperimentConfig`
validates). It may be invalid while the user edits it: the helpers here never raise on an invalid
design, they report what is wrong, and only :func:`launch` insists on a valid one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import math
import re
import time
import typing
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from engine.config import ClientSpec, ExperimentConfig, parse_config
from engine.data.config import COLUMN_TYPES, DataConfig
from engine.errors import ConfigError, DataError, FedMosaicError, StorageError, validation_problems
from engine.export import safe_filename
from engine.labels import dataset_label, for_page, label
from engine.privacy import roster as _privacy_cells  # the roster's privacy columns
from engine.robustness.design import adversary_cells, adversary_from_cells
from engine.storage import Store, default_data_dir

ROOT = Path(__file__).resolve().parent.parent
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
    "quickstart": (":material/rocket_launch:", "Quick start",
                   ("Eight identical clients on handwritten digits with label skew, FedAvg: the smallest "
                    "experiment that shows federated learning working.")),
    "hospital": (":material/local_hospital:", "Hospital network",
                 ("Four hospitals with their own scanners (image style) and their own image models "
                  "(small and large CNNs, a ResNet, an MLP); one client per site, prototypes shared.")),
    "hospital_records": (":material/table_view:", "Hospital records (CSV)",
                         ("Readmission prediction from a patient-records CSV, split naturally by hospital; "
                          "the starting point for your own spreadsheet.")),
    "traffic": (":material/traffic:", "City traffic: congestion",
                ("One client per city predicting next-hour congestion (free / busy / jammed) from the past "
                 "12 hours, each city with its own sequence model (LSTM, GRU, 1-D CNN, transformer).")),
    "traffic_volume": (":material/show_chart:", "City traffic: volume",
                       "The same cities predicting next-hour traffic volume (regression) with recurrent models."),
    "compromised_site": (":material/gpp_maybe:", "One compromised site",
                         ("Ten hospitals train one model; one site is compromised and plants a backdoor (a small "
                          "patch that makes any image read as class 0). Launch compares defences side by side: "
                          "accuracy and the attack's success rate per defence.")),
    "privacy_hospitals": (":material/shield:", "Privacy budget per hospital",
                          ("Five hospitals predicting an outcome from patient records, each with its own privacy "
                           "budget ε (DP-SGD on its records; one without), and secure aggregation: the server sees "
                           "only sums. Watch what each budget costs in accuracy.")),
    "edge": (":material/smartphone:", "Phones and edge devices",
             ("Forty small clients on budget phones, flagship phones and Raspberry Pis, with models sized to "
              "each device (HeteroFL); 30% are picked per round and an 80 ms deadline drops stragglers.")),
}
_TEMPLATE_ORDER = list(TEMPLATE_INFO)


def templates() -> list[Template]:
    """The shipped scenario templates, in presentation order (unknown files last, by name)."""
    out = []
    for path in sorted(TEMPLATES_DIR.glob("*.json"),
                       key=lambda p: (_TEMPLATE_ORDER.index(p.stem) if p.stem in _TEMPLATE_ORDER else 99, p.stem)):
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        icon, title, summary = TEMPLATE_INFO.get(path.stem, (":material/science:", config.get("name", path.stem), ""))
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
        return normalize({"name": "my experiment", "rounds": 10,
                          "clients": [{"name": "client", "count": 4, "model": {"arch": "mlp"}}]})


# ---------------------------------------------------------------------------------------------
# The design: validation and normalisation
# ---------------------------------------------------------------------------------------------
def normalize(design: dict[str, Any]) -> dict[str, Any]:
    """The design with every default filled in when it is valid; otherwise returned unchanged."""
    try:
        return parse_config(design).model_dump(mode="json")
    except FedMosaicError:
        return copy.deepcopy(design)


def parse(design: dict[str, Any]) -> ExperimentConfig:
    """The validated config.

    :raises ConfigError: listing every problem as ``field.path: message``.
    """
    return parse_config(design)


def design_problems(design: dict[str, Any]) -> list[str]:
    """Everything that stops this design from launching (field errors, then data/compatibility
    checks); empty when it can launch. Problems of single clients come first, by row."""
    rows = _expanded_rows(design)
    per_client = [f"client {i} ({rows[i].get('name')}): {msg}" for i, msgs in sorted(client_issues(design).items())
                  for msg in msgs if "joins at round" not in msg]
    try:
        config = parse_config(design)
    except FedMosaicError as exc:
        others = [p for p in _split_problems(str(exc)) if not p.startswith(("clients.", "model '"))]
        return per_client + others if per_client else _split_problems(str(exc))
    if per_client:
        return per_client
    from engine.validate import validate

    try:
        return list(validate(config).errors)
    except FedMosaicError as exc:
        return [str(exc)]


def design_warnings(design: dict[str, Any]) -> list[str]:
    """Advisory notes of :func:`engine.validate.validate` (empty if the design is invalid)."""
    try:
        from engine.validate import validate

        return list(validate(parse_config(design)).warnings)
    except FedMosaicError:
        return []


def _split_problems(message: str) -> list[str]:
    message = message.removeprefix("invalid config: ")
    return [p.strip() for p in message.split("; ") if p.strip()] or [message]


def fingerprint(design: dict[str, Any]) -> str:
    """A short stable hash of a design (cache keys, widget keys)."""
    return hashlib.sha1(json.dumps(design, sort_keys=True, default=str).encode()).hexdigest()[:12]


def config_json(design: dict[str, Any]) -> str:
    """The design as an indented JSON document (what *Export JSON* downloads)."""
    return json.dumps(normalize(design), indent=2, sort_keys=False)


def config_from_json(text: str | bytes) -> dict[str, Any]:
    """Read an exported or hand-written config file (JSON or YAML) into a validated design;
    bounded and strict (:mod:`engine.config_file`).

    :raises ConfigError: not JSON/YAML, too large or deep, duplicate keys, not UTF-8, not an
        object, or invalid fields (names them).
    :raises AccessError: its ``data.path`` lies outside the allowed folders (:mod:`engine.access`).
    """
    from engine.access import confine
    from engine.config_file import read_document

    config = parse_config(read_document(text, "the file"))
    confine(config.data, default_data_dir())  # a design from elsewhere reads only the allowed folders
    return config.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------
# Drafts: the autosaved design per browser session, and named drafts
# ---------------------------------------------------------------------------------------------
def drafts_dir(root: Path | None = None) -> Path:
    """Folder of drafts in the data directory (``drafts/`` for named ones, ``drafts/auto/``)."""
    return (root or default_data_dir()) / "drafts"


_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


def new_session_id() -> str:
    """An id for a browser session's autosave (kept in the page URL)."""
    return uuid.uuid4().hex[:16]


def _auto_path(session_id: str, root: Path | None) -> Path:
    if not _SESSION_RE.match(session_id or ""):
        raise StorageError("invalid draft id in the page address; open the app again without '?draft=...'")
    return drafts_dir(root) / "auto" / f"{session_id}.json"


def _write_json(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise StorageError(f"cannot save the draft to {path}: {exc.strerror}; check that the data "
                           f"directory is writable (FEDMOSAIC_HOME)") from None


def autosave(session_id: str, design: dict[str, Any], root: Path | None = None) -> None:
    """Save the session's current design (called after every change)."""
    _write_json(_auto_path(session_id, root), {"saved_at": time.time(), "design": design})


def load_autosave(session_id: str, root: Path | None = None) -> dict[str, Any] | None:
    """The session's autosaved design, or ``None``."""
    try:
        path = _auto_path(session_id, root)
        return json.loads(path.read_text(encoding="utf-8"))["design"]
    except (OSError, KeyError, json.JSONDecodeError, StorageError):
        return None


def latest_autosave(exclude: str | None = None, root: Path | None = None) -> dict[str, Any] | None:
    """The most recently autosaved design of another browser session worth offering to a new tab:
    ``{"id", "name", "saved_at", "design"}``; ``None`` when there is none, or it is only the
    untouched starting design."""
    folder = drafts_dir(root) / "auto"
    if not folder.is_dir():
        return None
    fresh = fingerprint(new_design())
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        if path.stem == exclude or not _SESSION_RE.match(path.stem):
            continue
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
            design = blob["design"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            continue
        if not isinstance(design, dict) or fingerprint(design) == fresh:
            continue
        return {"id": path.stem, "name": str(design.get("name") or "experiment"),
                "saved_at": float(blob.get("saved_at") or path.stat().st_mtime), "design": design}
    return None


def save_draft(name: str, design: dict[str, Any], root: Path | None = None) -> str:
    """Save the design as a named draft (overwrites one of the same name); return the stored name."""
    name = name.strip()
    if not name:
        raise ConfigError("give the draft a name")
    key = safe_filename(name, "draft")
    _write_json(drafts_dir(root) / f"{key}.json", {"name": name, "saved_at": time.time(), "design": design})
    return name


def list_drafts(root: Path | None = None) -> list[dict[str, Any]]:
    """Named drafts, newest first: ``{"key", "name", "saved_at", "clients", "strategy", "dataset"}``."""
    folder = drafts_dir(root)
    out = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
            design = blob["design"]
        except (OSError, KeyError, json.JSONDecodeError):
            continue
        out.append({"key": path.stem, "name": blob.get("name", path.stem), "saved_at": blob.get("saved_at", 0.0),
                    "clients": sum(int(c.get("count", 1)) for c in design.get("clients", [])),
                    "strategy": (design.get("strategy") or {}).get("name", ""),
                    "dataset": dataset_label(design.get("data") or {})})
    return sorted(out, key=lambda d: -d["saved_at"])


def load_draft(key: str, root: Path | None = None) -> dict[str, Any]:
    """A named draft's design.

    :raises ConfigError: no such draft.
    """
    path = drafts_dir(root) / f"{safe_filename(key, 'draft')}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))["design"]
    except (OSError, KeyError, json.JSONDecodeError):
        raise ConfigError(f"no draft '{key}'; pick one from the list of saved drafts") from None


def delete_draft(key: str, root: Path | None = None) -> None:
    """Remove a named draft (no error if it is already gone)."""
    (drafts_dir(root) / f"{safe_filename(key, 'draft')}.json").unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Parameter models -> form fields (strategy, partitioner, dataset options, config fields)
# ---------------------------------------------------------------------------------------------
@dataclass
class FieldSpec:
    """One editable parameter, described for a generated form widget.

    ``kind`` is ``float``, ``int``, ``bool``, ``choice`` (see ``choices``), ``text`` or ``json``
    (anything else, edited as JSON text).
    """

    name: str
    kind: str
    default: Any
    description: str = ""
    optional: bool = False
    required: bool = False
    choices: list[Any] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    exclusive_max: bool = False

    def check(self, value: Any) -> str | None:
        """Why ``value`` is out of bounds, or ``None``."""
        if value is None:
            return None if self.optional else "a value is required"
        if self.kind in ("float", "int"):
            if self.minimum is not None and (value < self.minimum or (self.exclusive_min and value == self.minimum)):
                return f"must be {'>' if self.exclusive_min else '>='} {self.minimum}"
            if self.maximum is not None and (value > self.maximum or (self.exclusive_max and value == self.maximum)):
                return f"must be {'<' if self.exclusive_max else '<='} {self.maximum}"
        return None


def fields_of(model: type[BaseModel], only: Iterable[str] | None = None) -> list[FieldSpec]:
    """The fields of a pydantic parameter model as :class:`FieldSpec` (in declaration order)."""
    wanted = set(only) if only is not None else None
    out = []
    for name, info in model.model_fields.items():
        if wanted is not None and name not in wanted:
            continue
        out.append(_field_spec(name, info))
    return out


def _field_spec(name: str, info: FieldInfo) -> FieldSpec:
    annotation = info.annotation
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        non_none = [a for a in args if a is not type(None)]
        optional = len(non_none) < len(args)
        annotation = non_none[0] if len(non_none) == 1 else annotation
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    spec = FieldSpec(name, "json", default, info.description or "", optional, info.is_required())
    if typing.get_origin(annotation) is Literal:
        spec.kind, spec.choices = "choice", list(typing.get_args(annotation))
    elif annotation is bool:
        spec.kind = "bool"
    elif annotation is int:
        spec.kind = "int"
    elif annotation is float:
        spec.kind = "float"
    elif annotation is str:
        spec.kind = "text"
    for meta in info.metadata:
        for attr, target, exclusive in (("ge", "minimum", False), ("gt", "minimum", True),
                                        ("le", "maximum", False), ("lt", "maximum", True)):
            value = getattr(meta, attr, None)
            if value is not None:
                setattr(spec, target, value)
                if exclusive:
                    setattr(spec, f"exclusive_{target[:3]}", True)
    return spec


def strategy_fields(name: str) -> list[FieldSpec]:
    """The parameters of strategy ``name`` (from its ``Params`` model)."""
    from engine.strategies import STRATEGIES

    return fields_of(STRATEGIES.get(name).Params)


def partition_fields(method: str) -> list[FieldSpec]:
    """The parameters of partitioner ``method``."""
    from engine.data import PARTITIONERS

    return fields_of(PARTITIONERS.get(method).Params)


def dataset_options_model(name: str) -> type[BaseModel] | None:
    """The ``data.options`` model of a dataset: its ``Options`` attribute, else the return type of
    its module's ``options(cfg)`` function; ``None`` for datasets without options."""
    import sys

    from engine.data import DATASETS

    source = DATASETS.get(name)
    model = getattr(source, "Options", None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    func = getattr(sys.modules.get(source.__module__), "options", None)
    if callable(func):
        try:
            hint = typing.get_type_hints(func).get("return")
        except Exception:  # noqa: BLE001 - unresolvable annotations mean: no generated form
            return None
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            return hint
    return None


def dataset_option_fields(name: str) -> list[FieldSpec]:
    """The ``data.options`` of dataset ``name`` as form fields (empty when it has none)."""
    model = dataset_options_model(name)
    return fields_of(model) if model is not None else []


#: Run-level settings the Launch page shows when the config has them (hardware adds the deadline).
LAUNCH_FIELDS = ("rounds", "primary_metric", "fraction", "eval_every", "global_sample", "global_full_every",
                 "checkpoint_every", "rep_dim", "deadline", "deadline_policy", "selection")


def launch_fields() -> list[FieldSpec]:
    """Form fields for the run-level settings of :class:`ExperimentConfig` that exist in this build."""
    present = [n for n in LAUNCH_FIELDS if n in ExperimentConfig.model_fields]
    specs = {s.name: s for s in fields_of(ExperimentConfig, present)}
    return [specs[n] for n in present if n in specs]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
HELD_OUT = ("test_fraction", "validation_fraction", "global_test_fraction", "public_fraction", "max_samples")
"""The ``data`` fields of the held-out sets and subsampling, shown together on the Data page."""


def window_fields() -> list[FieldSpec]:
    """Form fields of a CSV's sliding time windows (``data.window``)."""
    from engine.data.config import WindowConfig

    return fields_of(WindowConfig)


def data_field(name: str) -> FieldSpec:
    """One field of the ``data`` section (``path``, ``download``, ``delimiter``...)."""
    return fields_of(DataConfig, [name])[0]


def held_out_fields() -> list[FieldSpec]:
    """Form fields of :data:`HELD_OUT`."""
    return fields_of(DataConfig, HELD_OUT)


def partitioners() -> dict[str, dict[str, Any]]:
    """Every partitioner by name: ``description`` and ``params`` (catalog entries)."""
    from engine.catalog import catalog

    return {p["name"]: p for p in catalog()["partitioners"]}


def architectures() -> dict[str, list[str]]:
    """Every architecture with the input kinds it reads."""
    from engine.models import ARCHITECTURES

    return {n: sorted(a.kinds) for n, a in ARCHITECTURES.items()}


def preprocessing_methods() -> list[str]:
    """Per-client preprocessing methods (``none``, ``standardize``...)."""
    from engine.data.preprocess import METHODS

    return list(METHODS)


def executors() -> dict[str, str]:
    """Executors by name with their descriptions."""
    from engine.executors import EXECUTORS

    return {n: e.description for n, e in EXECUTORS.items()}


def executor_unavailable() -> dict[str, str]:
    """Executors that cannot run here, with what to do (Ray is an optional extra)."""
    from engine.executors.ray import INSTALL_HINT, available

    return {} if available() else {"ray": INSTALL_HINT}


def datasets() -> list[dict[str, Any]]:
    """Every registered dataset: ``name, description, kind, task, source``."""
    from engine.data import DATASETS

    return [{"name": n, "description": d.description, "kind": d.kind, "task": d.task, "source": d.source}
            for n, d in DATASETS.items()]


def _project_path(path: str) -> str:
    """A path of a file shipped with FedMosaic as ``examples/...`` when the app runs from the project
    folder (portable configs), else absolute (so it is found from any working directory)."""
    if Path(path).is_absolute() or Path(path).exists() or not (ROOT / path).exists():
        return path
    return str(ROOT / path)


def example_csvs() -> list[str]:
    """CSV files shipped with FedMosaic (``examples/data/...``; absolute when run from elsewhere)."""
    return [_project_path(str(p.relative_to(ROOT))) for p in sorted(EXAMPLE_DATA_DIR.glob("*.csv"))]


def upload_filename(name: str) -> str:
    """An uploaded file's name as stored and shown: its last path part, letters and digits of any
    script, spaces, ``-_.()`` kept, anything else ``_``; no leading dot; at most 120 characters."""
    import unicodedata

    base = unicodedata.normalize("NFC", re.split(r"[\\/]", str(name))[-1])
    base = re.sub(r"[^\w .()-]+", "_", base).strip(" ._")
    base = re.sub(r"\s+", " ", base)
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 119 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else base[:120]
    return base or "upload.csv"


def save_upload(filename: str, content: bytes, limit_mb: float = 200.0, root: Path | None = None) -> str:
    """Store an uploaded table under ``<data dir>/uploads/`` with a sanitised name; return the path
    to put in ``data.path`` (relative to the data directory).

    :raises DataError: not a ``.csv``/``.tsv``/``.txt``/``.xlsx``/``.parquet`` file, empty, or over
        ``limit_mb``.
    :raises StorageError: the data directory cannot be written.
    """
    from engine.data.reading import EXTENSIONS

    name = upload_filename(filename)
    if not name.lower().endswith(EXTENSIONS):
        raise DataError(f"'{filename}' is not a table file; upload a .csv (or .tsv/.txt), an Excel .xlsx or a "
                        f".parquet file")
    if not content:
        raise DataError(f"'{filename}' is empty; upload a CSV with a header row and data rows")
    size_mb = len(content) / 1e6
    if size_mb > limit_mb:
        raise DataError(f"'{filename}' is {size_mb:.0f} MB, over the {limit_mb:.0f} MB limit; upload a "
                        f"smaller sample or raise data.max_file_mb")
    folder = (root or default_data_dir()) / "uploads"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    except OSError as exc:
        raise StorageError(f"cannot store the upload in {folder}: {exc.strerror}") from None
    return f"uploads/{name}"


def inspect(data: dict[str, Any]) -> dict[str, Any]:
    """Schema report of the design's CSV (see :func:`engine.data.inspect_csv`).

    :raises DataError: the file cannot be read or used as configured.
    """
    from engine.data import inspect_csv

    cfg = _data_config(data)
    return inspect_csv(None, cfg, default_data_dir())


@dataclass
class Inspection:
    """What the Data page can show about the design's file: the schema report (``None`` when the
    file cannot be read as set), the one error to show (in the page's words), and where it arose:
    ``read`` (the reading settings), ``columns`` (a column's type), ``target`` (target or task),
    ``setup`` (another data setting)."""

    report: dict[str, Any] | None
    error: str | None = None
    stage: str | None = None


def inspect_page(data: dict[str, Any]) -> Inspection:
    """Inspect the design's file for the Data page without ever leaving it empty-handed: when the
    file cannot be used as set, fall back to its schema without a target (so the target, task and
    columns controls stay), then to the bare file (reading controls); the error is returned once,
    naming the page's controls. Stages: ``target`` (the file reads; the target, task, windows,
    image shape or split column is the problem), ``setup`` (a column override or the partition
    column), ``read`` (nothing can be read as set: encoding, separator, the file itself)."""
    from engine.data import inspect_csv

    try:
        cfg = _data_config(data)
    except ConfigError as exc:
        return Inspection(None, for_page(str(exc)), "setup")
    root = default_data_dir()
    problems: list[str] = []
    try:
        report = inspect_csv(None, cfg, root, problems=problems)
    except FedMosaicError as exc:
        first = str(exc)
    else:
        if problems:
            more = f" ({len(problems) - 1} more column{'s' if len(problems) > 2 else ''} noted in the table)" \
                if len(problems) > 1 else ""
            return Inspection(report, for_page(problems[0] + more), "columns")
        return Inspection(report)
    bare = cfg.model_copy(update={"target": None, "task": "auto", "window": None, "image_shape": None,
                                  "split_column": None})
    for fallback, stage in ((bare, "target"),
                            (bare.model_copy(update={"columns": {}, "partition": DataConfig().partition}), "setup")):
        try:
            report = inspect_csv(None, fallback, root, problems=[])
        except FedMosaicError:
            continue
        return Inspection(report, for_page(first), stage)
    return Inspection(None, for_page(first), "read")


def treat_as_missing(data: dict[str, Any], column: str, value: Any) -> dict[str, Any]:
    """The ``data`` section with ``value`` of ``column`` read as missing (``missing_values``)."""
    data = copy.deepcopy(data)
    columns = dict(data.get("columns") or {})
    spec = columns.get(column)
    spec = {"type": spec} if isinstance(spec, str) else dict(spec or {})
    codes = list(spec.get("missing_values") or [])
    if value not in codes:
        codes.append(value)
    spec["missing_values"] = codes
    columns[column] = spec
    data["columns"] = columns
    return data


#: The choices of ``data.statistics`` as the Data page offers them (see :mod:`engine.data.stats`).
STATISTICS = {
    "federated": "Federated: aggregates the sites share (sums, counts), never rows",
    "client": "Each client's own training data alone",
    "centralized": "Centralized statistics: not possible in a real federation",
}
#: Text encodings offered besides "auto" (detected) and what the file was read with.
ENCODINGS = ("utf-8", "cp1252", "latin-1", "iso-8859-15", "utf-16", "cp1250", "cp1251", "mac-roman")


def _data_config(data: dict[str, Any]) -> DataConfig:
    try:
        return DataConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("; ".join(validation_problems(exc, prefix="data."))) from None


def set_column_role(data: dict[str, Any], column: str, role: str, type_: str = "auto") -> dict[str, Any]:
    """Apply one schema-table row: the column's ``role`` (feature, target, split, ignore) and its
    ``type`` override; returns the new ``data`` section."""
    data = copy.deepcopy(data)
    columns = dict(data.get("columns") or {})
    spec = columns.get(column)
    spec = {"type": spec} if isinstance(spec, str) else dict(spec or {})
    if role == "ignore":
        spec["type"] = "ignore"
    else:
        spec["type"] = type_ if type_ in COLUMN_TYPES and type_ != "ignore" else "auto"
    if role == "target":
        data["target"] = column
    elif data.get("target") == column:
        data["target"] = None
    if data.get("split_column") == column and role != "ignore":  # no longer the train/test column
        data["split_column"] = None
    partition = dict(data.get("partition") or {"method": "iid"})
    if role == "split":
        data["partition"] = {"method": "natural", "column": column,
                             **{k: v for k, v in partition.items() if k in ("min_size", "small")
                                and partition.get("method") == "natural"}}
    elif partition.get("method") == "natural" and partition.get("column") == column:
        data["partition"] = {"method": "iid"}
    if spec.get("type") == "auto" and set(spec) <= {"type"}:
        columns.pop(column, None)
    else:
        columns[column] = spec
    data["columns"] = columns
    return data


def schema_frame(report: dict[str, Any], data: dict[str, Any]) -> pd.DataFrame:
    """The Data page's editable schema table from an :func:`inspect` report."""
    natural = data.get("partition", {}).get("column") if data.get("partition", {}).get("method") == "natural" else None
    overrides = data.get("columns") or {}
    rows = []
    for c in report.get("columns", []):
        spec = overrides.get(c["name"])
        forced = spec if isinstance(spec, str) else (spec or {}).get("type", "auto")
        if c["name"] == data.get("target"):
            role = "target"
        elif c["name"] == natural:
            role = "split"
        elif forced == "ignore" or c.get("role") in ("ignored", "id", "split") or c["name"] == data.get("split_column"):
            role = "ignore"
        else:
            role = "feature"
        rows.append({"column": c["name"], "role": role,
                     "type": forced if forced in COLUMN_TYPES and forced != "ignore" else "auto",
                     "inferred": c.get("inferred", ""), "missing": int(c.get("missing", 0)),
                     "unique": int(c.get("unique", 0)), "examples": ", ".join(map(str, c.get("examples", [])))[:60],
                     "note": c.get("note", "")})
    target = data.get("target")
    if target and all(r["column"] != target for r in rows):  # the report lists features only
        counts = report.get("class_counts") or {}
        rows.insert(0, {"column": target, "role": "target", "type": "auto",
                        "inferred": f"target ({report.get('task', '?')})", "missing": 0,
                        "unique": len(counts) if counts else 0,
                        "examples": ", ".join(map(str, list(counts)[:4]))[:60],
                        "note": ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:6])})
    return pd.DataFrame(rows, columns=["column", "role", "type", "inferred", "missing", "unique", "examples", "note"])


ROLES = ("feature", "target", "split", "ignore")


def apply_schema(data: dict[str, Any], before: pd.DataFrame, after: pd.DataFrame) -> dict[str, Any]:
    """The ``data`` section after the user edited the schema table from ``before`` to ``after``."""
    for (_, b), (_, a) in zip(before.iterrows(), after.iterrows(), strict=False):
        if a["role"] != b["role"] or a["type"] != b["type"]:
            data = set_column_role(data, str(a["column"]), str(a["role"] or "feature"), str(a["type"] or "auto"))
    return data


def dataset_summary(data: dict[str, Any]) -> dict[str, Any]:
    """``{"name", "samples", "task", "input", "kind", "classes", "columns"}`` of the configured dataset.

    :raises FedMosaicError: the dataset cannot be loaded (names the fix).
    """
    from engine.data import load_dataset

    ds = load_dataset(_data_config(data), default_data_dir())
    return {"name": ds.name, "samples": len(ds), "task": ds.task, "input": str(ds.input_spec),
            "kind": ds.input_spec.kind, "shape": list(ds.input_spec.shape), "classes": list(ds.classes),
            "columns": sorted(ds.columns), "report": ds.report}


def preview(design: dict[str, Any]) -> dict[str, Any]:
    """The partition preview for the design's data section and roster (client sizes, clients x
    classes counts, heterogeneity); see :func:`engine.data.partition_preview`. A ``natural`` split
    previews one client per value whatever the roster size.

    :raises FedMosaicError: the split is impossible as configured (names the fix).
    """
    from engine.data import partition_preview

    cfg = _data_config(design.get("data") or {})
    clients = _expanded_rows(design)
    n = len(clients)
    shares: list[float | None] | None = [c.get("data_share") for c in clients]
    if cfg.partition.method == "natural":
        n, shares = None, None
    out = partition_preview(cfg, n, shares, int(design.get("seed", 0) or 0), default_data_dir(), profile_sites=True)
    natural = cfg.partition.method == "natural"
    if not natural or len(out["clients"]) == len(clients):
        for row, c in zip(out["clients"], clients, strict=False):
            name = str(c.get("name", row["name"]))
            row["group"] = row["name"] if natural else None
            row["name"] = name if not natural or name == row["name"] else f"{name} ({row['name']})"
    return out


def natural_names(data: dict[str, Any]) -> list[str]:
    """The clients a ``natural`` partition makes (one per value of its column)."""
    from engine.data import natural_groups

    return natural_groups(_data_config(data), default_data_dir())


# ---------------------------------------------------------------------------------------------
# The roster table
# ---------------------------------------------------------------------------------------------
#: Width multipliers offered as sizes in the roster table (``width`` knob of every architecture).
SIZES: dict[str, float] = {"tiny": 0.25, "small": 0.5, "medium": 1.0, "large": 2.0, "x-large": 4.0}
ROSTER_COLUMNS = ["select", "name", "arch", "size", "knobs", "optimizer", "lr", "epochs", "batch_size",
                  "preprocessing", "device", "tier", "join_round", "data_share", "attack", "attack_settings",
                  *_privacy_cells.COLUMNS, "params", "memory_mb", "issues"]
#: Roster fields a value can be applied to for the selected rows at once.
BULK_FIELDS = ["arch", "size", "optimizer", "lr", "epochs", "batch_size", "preprocessing", "device", "tier",
               "join_round", "data_share", "attack", *_privacy_cells.COLUMNS]


def _expanded_rows(design: dict[str, Any]) -> list[dict[str, Any]]:
    """Client dicts with ``count`` expanded (names suffixed ``-1``, ``-2``... as the engine does)."""
    out = []
    for spec in design.get("clients") or []:
        count = int(spec.get("count", 1) or 1)
        base = {k: v for k, v in spec.items() if k != "count"}
        if count == 1:
            out.append(copy.deepcopy(base))
            continue
        for i in range(count):
            out.append({**copy.deepcopy(base), "name": f"{base.get('name', 'client')}-{i + 1}"})
    return out


def _arch_defaults(arch: str) -> dict[str, Any]:
    from engine.models import ARCHITECTURES

    try:
        return ARCHITECTURES.get(arch).Params().model_dump()
    except FedMosaicError:
        return {}


def _size_label(width: Any) -> str:
    for label, w in SIZES.items():
        if isinstance(width, (int, float)) and math.isclose(float(width), w):
            return label
    return "custom"


def knobs_text(model: dict[str, Any]) -> str:
    """Non-default architecture knobs (other than ``width``) as ``key=value, ...``."""
    model = model if isinstance(model, dict) else {"arch": str(model)}
    defaults = _arch_defaults(str(model.get("arch", "")))
    parts = [f"{k}={_fmt(v)}" for k, v in model.items()
             if k not in ("arch", "width") and (k not in defaults or defaults[k] != v)]
    width = model.get("width", 1.0)
    if _size_label(width) == "custom":
        parts.insert(0, f"width={_fmt(width)}")
    return ", ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) < 1e15 else str(v)
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def parse_knobs(text: str) -> dict[str, Any]:
    """``"hidden=64, depth=3"`` -> ``{"hidden": 64, "depth": 3}`` (numbers, true/false, else text).

    :raises ConfigError: a part without ``=``.
    """
    out: dict[str, Any] = {}
    for part in re.split(r"[,;]\s*(?![^\[]*\])", text or ""):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ConfigError(f"size knobs: '{part}' needs the form name=value, e.g. hidden=64")
        key, value = (s.strip() for s in part.split("=", 1))
        out[key] = _literal(value)
    return out


def _literal(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null", ""):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text.strip("'\"")


def roster_frame(design: dict[str, Any]) -> pd.DataFrame:
    """The roster as the Clients page's editable table: one row per client, with parameter
    count, estimated memory and the row's problems (empty when fine)."""
    rows = _expanded_rows(design)
    issues = client_issues(design)
    costs = client_costs(design)
    out = []
    for i, c in enumerate(rows):
        model = c.get("model") or {"arch": "mlp"}
        model = {"arch": model} if isinstance(model, str) else model
        cost = costs.get(i, {})
        share = c.get("data_share")
        attack, attack_settings = adversary_cells(c.get("adversary"))
        out.append({
            "select": False, "name": str(c.get("name", f"client {i + 1}")), "arch": str(model.get("arch", "")),
            "size": _size_label(model.get("width", 1.0)), "knobs": knobs_text(model),
            "optimizer": c.get("optimizer", "sgd"), "lr": float(c.get("lr", 0.05)),
            "epochs": int(c.get("epochs", 1)), "batch_size": int(c.get("batch_size", 32)),
            "preprocessing": c.get("preprocessing", "none"), "device": c.get("device", "cpu"),
            "tier": c.get("tier") or "", "join_round": int(c.get("join_round", 1)),
            "data_share": float(share) if share is not None else None,
            "attack": attack, "attack_settings": attack_settings, **_privacy_cells.cells(c),
            "params": cost.get("params"), "memory_mb": cost.get("memory_mb"),
            "issues": "; ".join(issues.get(i, [])),
        })
    frame = pd.DataFrame(out, columns=ROSTER_COLUMNS)
    return frame.astype({"params": "Int64", "memory_mb": "Float64", "data_share": "Float64",
                         **_privacy_cells.DTYPES})


def frame_to_clients(frame: pd.DataFrame, design: dict[str, Any]) -> list[dict[str, Any]]:
    """Client specs from the edited roster table (unchanged fields such as momentum, weight decay,
    augmentation and cold start are kept from the design's rows), compacted into ``count`` groups."""
    previous = _expanded_rows(design)
    clients = []
    for i, (_, row) in enumerate(frame.iterrows()):
        base = copy.deepcopy(previous[i]) if i < len(previous) else (copy.deepcopy(previous[-1]) if previous else {})
        base.pop("count", None)
        arch = str(row.get("arch") or "mlp")
        old_model = base.get("model") if isinstance(base.get("model"), dict) else {}
        knobs_given = str(row.get("knobs") or "")
        if old_model.get("arch") and arch != old_model.get("arch") and knobs_given.strip() == knobs_text(old_model):
            knobs_given = ""  # a new architecture starts from its own default knobs
        try:
            knobs = parse_knobs(knobs_given)
        except ConfigError:
            knobs = {"_knobs": knobs_given}
        size = str(row.get("size") or "medium")
        if old_model.get("arch") == arch and "width" not in knobs and size == "custom":
            knobs["width"] = old_model.get("width", 1.0)
        width = knobs.pop("width", SIZES.get(size, 1.0))
        model = _full_model({"arch": arch, **({"width": width} if width != 1.0 else {}), **knobs})
        share = row.get("data_share")
        base.update({
            "name": str(row.get("name") or f"client {i + 1}").strip() or f"client {i + 1}", "model": model,
            "optimizer": row.get("optimizer") or "sgd", "lr": _num(row.get("lr"), 0.05, float),
            "epochs": _num(row.get("epochs"), 1, int), "batch_size": _num(row.get("batch_size"), 32, int),
            "preprocessing": row.get("preprocessing") or "none", "device": row.get("device") or "cpu",
            "tier": (str(row.get("tier")) or None) if row.get("tier") not in (None, "") and not _isna(row.get("tier")) else None,
            "join_round": _num(row.get("join_round"), 1, int),
            "data_share": None if _isna(share) else float(share),
            "privacy": _privacy_cells.from_cells(row, base.get("privacy")),
        })
        settings_text = "" if _isna(row.get("attack_settings")) else str(row.get("attack_settings") or "")
        try:
            settings: dict[str, Any] | None = parse_knobs(settings_text)
        except ConfigError:
            settings = None
        adversary = adversary_from_cells(None if _isna(row.get("attack")) else row.get("attack"), settings,
                                         settings_text)
        base.pop("adversary", None)
        if adversary is not None:
            base["adversary"] = adversary
        clients.append(base)
    return compact(clients)


def _full_model(model: dict[str, Any]) -> dict[str, Any]:
    """The model spec with every knob filled in (as the config normalises it), or as given if invalid."""
    if "_knobs" in model:
        return model
    from engine.models import arch_params

    try:
        arch, params = arch_params(model)
    except FedMosaicError:
        return model
    return {"arch": arch.name, **params.model_dump()}


def _isna(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _num(value: Any, default: Any, cast: type) -> Any:
    if _isna(value):
        return default
    try:
        return cast(value)
    except (TypeError, ValueError):
        return default


def compact(clients: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge runs of identical clients named ``base-1 .. base-n`` into one spec with ``count: n``
    (the inverse of the engine's expansion), so exported configs stay short."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(clients):
        c = clients[i]
        m = re.fullmatch(r"(.+)-1", str(c.get("name", "")))
        j = i + 1
        if m:
            base_name = m.group(1)
            body = {k: v for k, v in c.items() if k not in ("name", "count")}
            while j < len(clients):
                other = clients[j]
                if (other.get("name") != f"{base_name}-{j - i + 1}"
                        or {k: v for k, v in other.items() if k not in ("name", "count")} != body
                        or int(other.get("count", 1)) != 1):
                    break
                j += 1
        if m and j - i >= 2:
            out.append({**{k: v for k, v in c.items() if k != "count"}, "name": m.group(1), "count": j - i})
        else:
            j = i + 1
            out.append(dict(c))
        i = j
    return out


def set_clients(design: dict[str, Any], clients: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of the design with a new roster (normalised when valid)."""
    design = copy.deepcopy(design)
    design["clients"] = compact(clients)
    return normalize(design)


def standardize_for_tables(design: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A design whose clients all use no preprocessing, with ``standardize`` instead (the sound
    default for a table, whose columns come in very different units); returns it and whether it
    changed. A roster where someone chose a method is left alone."""
    clients = design.get("clients") or []
    if not clients or any((c.get("preprocessing") or "none") != "none" for c in clients):
        return design, False
    design = copy.deepcopy(design)
    for c in design["clients"]:
        c["preprocessing"] = "standardize"
    return design, True


def add_like(design: dict[str, Any], index: int, n: int) -> dict[str, Any]:
    """Append ``n`` copies of client ``index`` (named ``<name> (2)``, ``(3)``...)."""
    rows = _expanded_rows(design)
    if not rows:
        rows = [{"name": "client", "model": {"arch": "mlp"}}]
        index = 0
    if not 0 <= index < len(rows):
        raise ConfigError(f"no client number {index + 1}; pick one of 1..{len(rows)}")
    if not 1 <= n <= 1000:
        raise ConfigError("add between 1 and 1000 clients at a time")
    source = rows[index]
    names = {str(r.get("name")) for r in rows}
    stem = re.sub(r"\s*\(\d+\)$", "", str(source.get("name", "client")))
    k = 2
    for _ in range(n):
        while f"{stem} ({k})" in names:
            k += 1
        names.add(f"{stem} ({k})")
        rows.append({**copy.deepcopy(source), "name": f"{stem} ({k})"})
    return set_clients(design, rows)


def apply_to(design: dict[str, Any], indices: Iterable[int], field_name: str, value: Any) -> dict[str, Any]:
    """Set one roster field to ``value`` for the clients at ``indices`` (table row numbers)."""
    if field_name not in BULK_FIELDS:
        raise ConfigError(f"cannot bulk-edit '{field_name}'; editable: {', '.join(BULK_FIELDS)}")
    frame = roster_frame(design)
    for i in indices:
        if 0 <= i < len(frame):
            if field_name == "arch":
                frame.at[i, "knobs"] = ""
            if field_name == "attack" and frame.at[i, "attack"] != value:
                frame.at[i, "attack_settings"] = ""  # another attack's settings do not apply
            if field_name in _privacy_cells.COLUMNS and not value:
                value = None  # 0 or empty: clears that privacy setting
            frame.at[i, field_name] = value
    return set_clients(design, frame_to_clients(frame, design))


def client_row(design: dict[str, Any], index: int) -> dict[str, Any]:
    """Client ``index`` of the expanded roster (a copy), with its model as a dict.

    :raises ConfigError: no such client.
    """
    rows = _expanded_rows(design)
    if not 0 <= index < len(rows):
        raise ConfigError(f"no client number {index}; the roster has {len(rows)} clients")
    row = copy.deepcopy(rows[index])
    model = row.get("model") or {"arch": "mlp"}
    row["model"] = {"arch": model} if isinstance(model, str) else model
    return row


def update_client(design: dict[str, Any], index: int, changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of the design with client ``index`` changed. ``changes`` holds ClientSpec fields;
    ``arch``, ``size`` and ``knobs`` (text) rebuild the model spec (a new architecture starts from
    its default knobs).

    :raises ConfigError: no such client, or knobs that are not ``name=value`` pairs.
    """
    rows = _expanded_rows(design)
    row = client_row(design, index)
    changes = dict(changes)
    arch = changes.pop("arch", None)
    size = changes.pop("size", None)
    knobs = changes.pop("knobs", None)
    if arch is not None or size is not None or knobs is not None:
        old = row["model"]
        arch = arch or old.get("arch", "mlp")
        if arch != old.get("arch") and knobs is not None and knobs.strip() == knobs_text(old).strip():
            knobs = None  # the old architecture's knobs do not apply to the new one
        model = dict(parse_knobs(knobs)) if knobs is not None else (
            {k: v for k, v in old.items() if k not in ("arch", "width")} if arch == old.get("arch") else {})
        width = model.pop("width", SIZES.get(size, old.get("width", 1.0)) if size != "custom" else old.get("width", 1.0))
        row["model"] = _full_model({"arch": arch, "width": width, **model})
    row.update(changes)
    rows[index] = row
    return set_clients(design, rows)


def remove_clients(design: dict[str, Any], indices: Iterable[int]) -> dict[str, Any]:
    """Drop the clients at ``indices``."""
    drop = set(indices)
    return set_clients(design, [c for i, c in enumerate(_expanded_rows(design)) if i not in drop])


def resize_roster(design: dict[str, Any], n: int, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Make the roster ``n`` clients long: extra clients copy the last one, surplus ones are
    dropped; ``names`` (e.g. the sites of a natural split) rename them in order."""
    if n < 1:
        raise ConfigError("the roster needs at least one client")
    rows = _expanded_rows(design) or [{"name": "client", "model": {"arch": "mlp"}}]
    rows = rows[:n] + [copy.deepcopy(rows[-1]) for _ in range(n - len(rows))]
    if names is not None:
        for row, name in zip(rows, names, strict=False):
            row["name"] = str(name)
    else:
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            name = str(row.get("name", "client"))
            if name in seen:
                stem = re.sub(r"[-# ]?\(?\d+\)?$", "", name) or "client"
                row["name"] = f"{stem}-{i + 1}"
            seen[str(row["name"])] = i
    return set_clients(design, rows)


def client_issues(design: dict[str, Any]) -> dict[int, list[str]]:
    """Problems per client row (0-based): invalid fields, an architecture that cannot read the data,
    an unknown tier, duplicate names, shares over 1, late joiners after the last round."""
    rows = _expanded_rows(design)
    issues: dict[int, list[str]] = {}
    input_spec = _input_spec(design.get("data") or {})
    names: dict[str, int] = {}
    for i, c in enumerate(rows):
        found: list[str] = []
        adversary = c.get("adversary")
        if isinstance(adversary, dict) and "_settings" in adversary:
            found.append(f"attack settings '{adversary['_settings']}': use name=value pairs, e.g. target=3, share=0.5")
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
            from engine.models import check_reads

            try:
                check_reads(spec.model, input_spec)
            except FedMosaicError as exc:
                found.append(str(exc).split(". Architectures")[0] + f"; pick one that reads {input_spec.kind}")
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
                issues.setdefault(i, []).append(f"data shares add up to {sum(shares):.2f}; they must add up to at most 1")
    return issues


def _input_spec(data: dict[str, Any]):
    try:
        from engine.data import load_dataset

        return load_dataset(_data_config(data), default_data_dir()).input_spec
    except Exception:  # noqa: BLE001 - no data yet means no per-client reading check
        return None


def tier_names(design: dict[str, Any] | None = None) -> list[str]:
    """Device tiers of the hardware catalogue plus the design's own ``tiers`` (empty if this build
    has no hardware catalogue)."""
    try:
        from engine.hardware.tiers import TIERS
    except ImportError:
        return []
    custom = [str(k) for k in ((design or {}).get("tiers") or {})]
    return list(dict.fromkeys([*TIERS.names(), *custom]))


def device_names() -> list[str]:
    """Real devices this machine offers, plus ``auto``."""
    from engine.hardware.devices import detect

    return [d.name for d in detect()] + ["auto"]


def client_costs(design: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Per client row: ``params`` (trainable scalars), ``flops`` (forward, per sample) and
    ``memory_mb`` (estimated training memory) for the design's dataset; rows whose model cannot be
    built are left out."""
    data = design.get("data") or {}
    try:
        from engine.data import load_dataset

        ds = load_dataset(_data_config(data), default_data_dir())
    except Exception:  # noqa: BLE001 - costs need a loadable dataset
        return {}
    rep_dim = int(design.get("rep_dim", 64) or 64)
    out = {}
    for i, c in enumerate(_expanded_rows(design)):
        model = c.get("model")
        if not isinstance(model, dict) or "_knobs" in model:
            continue
        try:
            params, flops = _model_cost(json.dumps(model, sort_keys=True), ds.input_spec.kind,
                                        tuple(ds.input_spec.shape), rep_dim, ds.n_outputs)
        except Exception:  # noqa: BLE001, S112 - an invalid model shows up in the row's issues instead
            continue
        try:
            from engine.hardware.devices import estimate_memory

            memory = estimate_memory(model, ds.input_spec, rep_dim, ds.n_outputs, int(c.get("batch_size", 32) or 32),
                                     str(c.get("optimizer", "sgd")), float(c.get("momentum", 0.0) or 0.0)).total
        except Exception:  # noqa: BLE001 - no estimate for a model that cannot be built
            memory = None
        out[i] = {"params": params, "flops": flops,
                  "memory_mb": round(memory / 2**20, 2) if memory is not None else None}
    return out


@lru_cache(maxsize=512)
def _model_cost(spec_json: str, kind: str, shape: tuple[int, ...], rep_dim: int, n_out: int) -> tuple[int, int]:
    import torch

    from engine.models import InputSpec, build_model, count_params, flops_per_sample

    spec = InputSpec(kind, shape)  # type: ignore[arg-type]
    with torch.random.fork_rng(devices=[]):
        model = build_model(json.loads(spec_json), spec, rep_dim, n_out)
    return count_params(model), flops_per_sample(model, spec)


# ---------------------------------------------------------------------------------------------
# Strategies and the compatibility matrix
# ---------------------------------------------------------------------------------------------
def strategies(design: dict[str, Any]) -> list[dict[str, Any]]:
    """Every strategy with ``reason`` = why it cannot run this design's roster (``None``: it can),
    plus ``family, description, paper, url, mixed_architectures, params``. When the design itself is
    invalid, every strategy carries the first problem as its reason."""
    from engine.catalog import catalog

    entries = catalog()["strategies"]
    reasons: dict[str, str | None] = {}
    problem = None
    try:
        config = parse_config(design)
    except FedMosaicError as exc:
        config, problem = None, _split_problems(str(exc))[0]
    if config is not None:
        try:
            from engine.validate import compatibility

            task = dataset_summary(config.data.model_dump(mode="json"))["task"]
            reasons = compatibility(config, task)
        except FedMosaicError as exc:
            problem = f"data: {exc}"
    out = []
    for e in entries:
        reason = f"fix the design first ({problem})" if problem else reasons.get(e["name"])
        out.append({**e, "reason": reason})
    return out


# ---------------------------------------------------------------------------------------------
# Robustness: attacks in the roster, defences at launch (engine/robustness)
# ---------------------------------------------------------------------------------------------
def attack_options() -> list[str]:
    """The Clients page's attack choices (titles), ``honest`` first."""
    from engine.robustness.design import attack_options as options

    return options()


def attack_help() -> str:
    """What each attack does, one line each, for the attack column's help."""
    from engine.robustness.attacks import ATTACKS

    return "honest: not compromised. " + " ".join(f"{a.title}: {a.description}" for _, a in ATTACKS.items())


def attack_fields(title: str) -> list[FieldSpec]:
    """The settings of the attack shown as ``title`` (for the one-client form)."""
    from engine.robustness.attacks import ATTACKS
    from engine.robustness.design import attack_name

    name = attack_name(title)
    return fields_of(ATTACKS.get(name).Params) if name else []


def adversary_form(title: str, settings_text: str) -> dict[str, Any] | None:
    """A client's ``adversary`` from the one-client form: the attack shown as ``title`` with its
    settings as ``name=value`` text (``None`` for honest).

    :raises ConfigError: settings that are not ``name=value`` pairs.
    """
    return adversary_from_cells(title, parse_knobs(settings_text) if settings_text.strip() else {})


def defences(design: dict[str, Any], strategies: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every defence with ``name, title, description, paper, url`` and ``reason``: why it cannot
    apply to this design with the chosen ``strategies`` (default: the design's), or ``None``."""
    from engine.robustness.check import defence_reason, defence_refusals
    from engine.robustness.defences import DEFENCES
    from engine.strategies import STRATEGIES

    names = list(strategies) or [str((design.get("strategy") or {}).get("name", "fedavg"))]
    out = []
    for name, cls in DEFENCES.items():
        reason = next((why for s in names if s in STRATEGIES
                       for why in [defence_reason(STRATEGIES.get(s), name)] if why), None)
        if reason is None and name != "none":
            try:
                refusals = defence_refusals(parse_config({**design, "defence": {"name": name}}))
            except FedMosaicError:
                refusals = []
            reason = refusals[0] if refusals else None
        out.append({"name": name, "title": cls.title, "description": cls.description, "paper": cls.paper,
                    "url": cls.url, "reason": reason})
    return sorted(out, key=lambda d: (d["name"] != "none", d["reason"] is not None))


def defence_fields(name: str) -> list[FieldSpec]:
    """Form fields of a defence's settings."""
    from engine.robustness.defences import DEFENCES

    return fields_of(DEFENCES.get(name).Params)


def attack_view(store: Store, run_ids: Sequence[str]) -> tuple[pd.DataFrame, str] | None:
    """The attack chart's table for these runs (finished ones) and the primary metric's name, or
    ``None`` when the chart says nothing about them (no compromised client, one defence only)."""
    from engine.metrics import shared_primary
    from engine.robustness.report import attack_rows, attack_table, comparable

    runs = [store.get_run(i) for i in run_ids]
    runs = [r for r in runs if r.get("status") == "finished"]
    if not comparable(runs):
        return None
    return attack_table(attack_rows(runs)), shared_primary(runs).label


def attack_chart(table: pd.DataFrame, metric_label: str) -> Any:
    """The attack chart (:func:`engine.robustness.report.attack_chart`)."""
    from engine.robustness.report import attack_chart as chart

    return chart(table, metric_label)


def run_attack(run: dict[str, Any], rounds: pd.DataFrame) -> dict[str, Any] | None:
    """What a run's compromised clients did (``None`` without any): the attack and defence in
    words, the final attack success rate, and the share of combinations (Krum) or the scale
    (clipping) the defence gave attackers and honest clients, averaged over rounds."""
    from engine.robustness.design import defence_label
    from engine.robustness.report import attack_label, has_attack

    config = run.get("config") or {}
    if not has_attack(config):
        return None

    def last(key: str) -> float | None:
        values = rounds[rounds["key"] == key].sort_values("round")["value"] if not rounds.empty else []
        return float(values.iloc[-1]) if len(values) else None

    def mean(key: str) -> float | None:
        values = rounds[rounds["key"] == key]["value"] if not rounds.empty else []
        return float(values.mean()) if len(values) else None

    return {"attack": attack_label(config), "defence": defence_label(config.get("defence")), "asr": last("backdoor_asr"),
            "kept_attackers": mean("defence_kept_attackers"), "kept_honest": mean("defence_kept_honest"),
            "scale_attackers": mean("defence_scale_attackers"), "scale_honest": mean("defence_scale_honest")}


def compromised_summary(design: dict[str, Any]) -> str | None:
    """The roster's compromised clients in words (``Compromised: row 9 (site-7, Backdoor
    trigger).``), or ``None`` when every client is honest."""
    from engine.robustness.design import HONEST

    rows = [(i, r["name"], r["attack"]) for i, r in _attack_cells(design) if r["attack"] != HONEST]
    if not rows:
        return None
    shown = ", ".join(f"row {i} ({name}, {attack})" for i, name, attack in rows[:4])
    return f"Compromised: {shown}" + (f" and {len(rows) - 4} more." if len(rows) > 4 else ".")


def _attack_cells(design: dict[str, Any]) -> list[tuple[int, dict[str, str]]]:
    """``(row, {"name", "attack"})`` for every client row, without the table's costs and checks."""
    out = []
    for i, c in enumerate(_expanded_rows(design)):
        attack, _ = adversary_cells(c.get("adversary"))
        out.append((i, {"name": str(c.get("name", f"client {i}")), "attack": attack}))
    return out


def has_adversaries(design: dict[str, Any]) -> bool:
    """Whether the design's roster has a compromised client."""
    return any(c.get("adversary") for c in design.get("clients") or [] if isinstance(c, dict))


def compatibility_matrix(design: dict[str, Any]) -> pd.DataFrame:
    """Strategies x (runs?, reason) for the design, collaborative strategies first."""
    rows = [{"strategy": s["name"], "family": s["family"], "can run": s["reason"] is None,
             "reason": s["reason"] or ""} for s in strategies(design)]
    return pd.DataFrame(rows)


def primary_preview(design: dict[str, Any]) -> tuple[str, str] | None:
    """The primary metric a launch of this design would use and why (``auto`` resolved on the
    previewed split, as the run will), or ``None`` when the design cannot be split yet."""
    key = {"data": design.get("data"), "seed": design.get("seed", 0), "primary_metric": design.get("primary_metric"),
           "clients": [(c.get("name"), c.get("data_share")) for c in _expanded_rows(design)]}
    return _primary_preview(json.dumps(key, sort_keys=True, default=str))


@lru_cache(maxsize=64)
def _primary_preview(key: str) -> tuple[str, str] | None:
    from engine.metrics import choose_primary

    spec = json.loads(key)
    design = {"data": spec["data"], "seed": spec["seed"],
              "clients": [{"name": n, "data_share": share} for n, share in spec["clients"]]}
    try:
        split = preview(design)
        counts = split["histogram"] if split["task"] == "classification" else None
        chosen = choose_primary(str(spec.get("primary_metric") or "auto"), split["task"], counts,
                                [c["name"] for c in split["clients"]])
    except (FedMosaicError, ValueError, KeyError, TypeError):
        return None
    return chosen.metric.label, chosen.reason


def with_strategy(design: dict[str, Any], name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the design using strategy ``name`` with ``params`` (defaults for the rest)."""
    design = copy.deepcopy(design)
    design["strategy"] = {"name": name, **(params or {})}
    return design


# ---------------------------------------------------------------------------------------------
# Runs: launching and listing through the run manager
# ---------------------------------------------------------------------------------------------
def manager(db_path: str | Path | None = None, workers: int | None = None):
    """The process's run manager (:func:`engine.runs.get_manager`). The app trains each run in a
    process of its own (``isolation="process"``: a training thread in the server would hold the
    interpreter lock the pages need); ``FEDMOSAIC_ISOLATION=thread`` keeps them in the server."""
    from engine.runs import get_manager

    return get_manager(db_path=db_path, workers=workers,
                       isolation=os.environ.get("FEDMOSAIC_ISOLATION") or "process")


MAX_SEEDS = 100
"""Most seeds one sweep launches."""
MAX_SEED = 2**31 - 1


def parse_seeds(text: str | int | Sequence[int]) -> list[int]:
    """Seeds from ``"0, 1, 2"``, ``"0-4"`` or a number/list.

    :raises ConfigError: not integers, negative, too large, or more than :data:`MAX_SEEDS` seeds.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        text = [text]
    if not isinstance(text, str):
        try:
            seeds = [int(s) for s in text]
        except (TypeError, ValueError):
            raise ConfigError("seeds must be whole numbers like 0, 1, 2") from None
    else:
        seeds = []
        for part in re.split(r"[,\s]+", text.strip()):
            if not part:
                continue
            m = re.fullmatch(r"(\d{1,30})\s*(?:-|\.\.)\s*(\d{1,30})", part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi < lo:
                    raise ConfigError(f"seeds: the range {part} counts down; write the smaller seed first, "
                                      f"e.g. {hi}-{lo}")
                if hi - lo + 1 > MAX_SEEDS:
                    raise ConfigError(f"seeds: the range {part} holds {hi - lo + 1:,} seeds, too many for one "
                                      f"sweep; use at most {MAX_SEEDS} (e.g. {lo}-{lo + MAX_SEEDS - 1})")
                seeds.extend(range(lo, hi + 1))
            elif re.fullmatch(r"-?\d{1,30}", part):
                seeds.append(int(part))
            else:
                raise ConfigError(f"seeds: '{part[:20]}' is not a seed; write numbers like 0, 1, 2 or a range "
                                  f"like 0-4")
    if not seeds:
        raise ConfigError("give at least one seed, e.g. 0")
    if any(s < 0 for s in seeds):
        raise ConfigError("seeds must be 0 or larger")
    if any(s > MAX_SEED for s in seeds):
        raise ConfigError(f"seeds go up to {MAX_SEED:,}; pick smaller ones")
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"{len(seeds)} seeds is too many for one sweep; use at most {MAX_SEEDS}")
    return list(dict.fromkeys(seeds))


@dataclass
class Launched:
    """What :func:`launch` started: the run ids and, for a sweep, its group id."""

    run_ids: list[str]
    group_id: str | None = None


def launch(design: dict[str, Any], *, strategies: Sequence[str] | None = None, seeds: Sequence[int] = (),
           strategy_params: dict[str, dict[str, Any]] | None = None, name: str | None = None,
           tags: Sequence[str] = (), mgr: Any = None,
           defences: Sequence[dict[str, Any] | str] | None = None) -> Launched:
    """Validate the design and start it through the run manager: one run, or a sweep over
    ``strategies`` x ``defences`` x ``seeds`` (each strategy with its own ``strategy_params``;
    ``defences``: ``{"name": ..., **params}`` dicts replacing the design's ``defence``).

    :raises ConfigError: the design (or one strategy's parameters) is invalid; the message says what
        to change.
    :raises CompatibilityError: a chosen strategy cannot run this roster.
    :raises StorageError: the database cannot be written.
    """
    mgr = mgr or manager()
    strategy_params = strategy_params or {}
    names = list(strategies or [design.get("strategy", {}).get("name", "fedavg")])
    seeds = list(seeds) or [int(design.get("seed", 0) or 0)]
    if not names:
        raise ConfigError("choose at least one strategy")
    guards = [({"name": d} if isinstance(d, str) else dict(d)) for d in (defences or [design.get("defence") or "none"])]
    if not guards:
        raise ConfigError("choose at least one defence (none: the strategy's own average)")
    configs = []
    for s in names:
        params = strategy_params.get(s)
        if params is None and design.get("strategy", {}).get("name") == s:
            params = {k: v for k, v in design["strategy"].items() if k != "name"}
        for guard in guards:
            configs.append(parse_config({**with_strategy(design, s, params), "defence": guard}))
    from engine.validate import check

    for config in configs:
        check(config)
    tags = [t for t in (str(t).strip() for t in tags) if t]
    if len(configs) == 1 and len(seeds) == 1:
        config = configs[0].model_copy(update={"seed": seeds[0]})
        return Launched([mgr.submit(config, name=name or config.name, tags=tags)])
    specs = list({json.dumps(c.strategy.model_dump(mode="json"), sort_keys=True): c.strategy.model_dump(mode="json")
                  for c in configs}.values())
    group, ids = mgr.sweep(configs[0], seeds=seeds, strategies=specs, name=name, tags=tags,
                           defences=[c.defence.model_dump(mode="json") for c in configs[:len(guards)]]
                           if len(guards) > 1 else None)
    return Launched(list(ids), group)


def headline(summary: dict[str, Any] | None) -> tuple[str | None, float | None]:
    """A run's headline figure from its summary (:func:`engine.metrics.headline`: the primary
    metric on the clients' own test data at their best validation rounds)."""
    from engine.metrics import headline as figure

    return figure(summary if isinstance(summary, dict) else None)


def headline_label(key: str | None) -> str:
    """Short words for a summary key in tables: ``balanced accuracy (best rounds)``, ``worst 10%
    (best rounds)``, ``trivial predictor``."""
    if not key:
        return ""
    from engine.charts import short_label

    if key.startswith("ref_"):
        return f"trivial predictor ({short_label(key)})"
    stat = key.rsplit("_", 1)[-1]
    what = {"worst10": "worst 10% of clients", "std": "spread over clients", "best": "best client"}.get(stat)
    when = " (best rounds)" if key.startswith("best_") else " (final round)" if stat in ("mean", "worst10", "std") \
        else ""
    where = ", server model" if "server_" in key else ", global test" if "global_" in key else ""
    return f"{what or short_label(key)}{where}{when}"


def runs_frame(store: Store, *, status: Sequence[str] = (), search: str = "") -> pd.DataFrame:
    """Every run as one row for the Runs page: id, name, status, progress (0..1), round, rounds,
    strategy, dataset, clients, seed, tags, group, created, duration, headline metric, error."""
    rows = []
    for r in store.list_runs():
        key, value = headline(r.get("summary") if isinstance(r.get("summary"), dict) else None)
        rounds = int(r.get("rounds") or 0)
        cur = int(r.get("current_round") or 0)
        tags = r.get("tags") if isinstance(r.get("tags"), list) else []
        started, finished = r.get("started_at"), r.get("finished_at")
        end = finished or (r.get("heartbeat_at") if r.get("status") in ("running",) else None) or finished
        rows.append({
            "id": r["id"], "name": r.get("name") or "", "status": r.get("status") or "",
            "progress": (cur / rounds) if rounds else 0.0, "round": cur, "rounds": rounds,
            "strategy": r.get("strategy") or "", "dataset": r.get("dataset") or "",
            "clients": int(r.get("n_clients") or 0), "seed": r.get("seed"), "tags": ", ".join(map(str, tags)),
            "group": r.get("group_id") or "",
            "created": pd.to_datetime(r.get("created_at"), unit="s") if r.get("created_at") else pd.NaT,
            "duration_s": (end - started) if started and end else None,
            "metric": headline_label(key), "value": value, "error": r.get("error") or "",
        })
    frame = pd.DataFrame(rows, columns=["id", "name", "status", "progress", "round", "rounds", "strategy",
                                        "dataset", "clients", "seed", "tags", "group", "created",
                                        "duration_s", "metric", "value", "error"])
    if status:
        frame = frame[frame["status"].isin(list(status))]
    if search.strip():
        needle = search.strip().lower()
        hay = (frame["id"] + " " + frame["name"] + " " + frame["strategy"] + " " + frame["dataset"] + " "
               + frame["tags"] + " " + frame["group"]).str.lower()
        frame = frame[hay.str.contains(needle, regex=False)]
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
def short_label(run: dict[str, Any]) -> str:
    """A compact label of a run for legends and table headers: ``variant · seed N`` for sweep
    members (their shared name says nothing new), else the run's name."""
    if run.get("group_id") and run.get("variant"):
        return f"{run['variant']} · seed {run.get('seed')}"
    return str(run.get("name") or run.get("id"))


def config_diff(configs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Settings that differ between configs: one row per dotted path, one column per run label."""
    flat = {label: _flatten(cfg) for label, cfg in configs.items()}
    keys = sorted(set().union(*[f.keys() for f in flat.values()])) if flat else []
    rows = []
    for k in keys:
        values = [flat[label].get(k, "—") for label in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            rows.append({"setting": k, **{label: _show(v) for label, v in zip(flat, values, strict=True)}})
    return pd.DataFrame(rows, columns=["setting", *flat])


def _show(v: Any) -> str:
    return json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def export(store: Store, run_ids: str | Sequence[str], fmt: str):
    """One run's (or several runs') export in memory: ``csv``, ``clients-wide-csv``, ``json``,
    ``html``, ``manifest``... (see :data:`engine.export.FORMATS`)."""
    from engine.export import render

    return render(store, run_ids, fmt)


# ---------------------------------------------------------------------------------------------
# Results: the headline row, the overfitting flag, the verdict and its missing baselines
# ---------------------------------------------------------------------------------------------
@dataclass
class Headline:
    """What a run's Results page opens with."""

    metric: Any
    """The primary metric (:class:`engine.metrics.Metric`)."""
    reason: str
    best: float | None
    """Own-test figure, mean over clients, at each client's best validation round."""
    final: float | None
    """The same in the last evaluated round."""
    reference: float | None
    """The trivial predictor's figure (majority class / mean), mean over clients."""
    best_rounds: list[int]
    """Each client's best validation round."""
    bytes_total: float | None
    sim_time_s: float | None

    @property
    def rounds_text(self) -> str:
        """``7`` or ``median 7 (3-12)`` over clients."""
        if not self.best_rounds:
            return "—"
        lo, hi = min(self.best_rounds), max(self.best_rounds)
        if lo == hi:
            return str(lo)
        med = sorted(self.best_rounds)[len(self.best_rounds) // 2]
        return f"median {med} ({lo}–{hi})"


def run_headline(store: Store, run_id: str, round_df: pd.DataFrame | None = None,
                 client_df: pd.DataFrame | None = None) -> Headline:
    """The headline row of one run: primary metric at the best validation rounds and in the
    final round, the best rounds, bytes exchanged and simulated time (from the stored run)."""
    from engine.metrics import headline_key, run_primary

    run = store.get_run(run_id)
    rounds = round_df if round_df is not None else store.round_metrics(run_id)
    keys = set(rounds["key"]) if not rounds.empty else set()
    metric = run_primary(run, keys)
    last: dict[str, float] = {}
    if not rounds.empty:
        evaluated = rounds[rounds["key"] == headline_key(metric, best=False)]
        rnd = int(evaluated["round"].max()) if not evaluated.empty else int(rounds["round"].max())
        last = dict(zip(rounds[rounds["round"] == rnd]["key"], rounds[rounds["round"] == rnd]["value"], strict=True))
        final_row = rounds[rounds["round"] == rounds["round"].max()]
        last.update({k: v for k, v in zip(final_row["key"], final_row["value"], strict=True)
                     if k.startswith(("cum_", "sim_"))})
    clients = client_df if client_df is not None else store.client_metrics(run_id)
    best_rounds: list[int] = []
    if not clients.empty:
        part = clients[(clients["run_id"] == run_id) & (clients["key"] == "best_round")]
        if not part.empty:
            best_rounds = [int(v) for v in part.sort_values("round").groupby("client_id")["value"].last()]

    def get(key: str) -> float | None:
        value = last.get(key)
        return float(value) if value is not None and math.isfinite(value) else None

    up, down = get("cum_bytes_up"), get("cum_bytes_down")
    reason = (run.get("manifest") or {}).get("primary_reason") or ""
    return Headline(metric, reason, get(headline_key(metric)), get(headline_key(metric, best=False)),
                    get(f"ref_local_{metric.key}_mean"), best_rounds,
                    (up or 0.0) + (down or 0.0) if up is not None or down is not None else None,
                    get("sim_time_s"))


def overfitting_flag(round_df: pd.DataFrame) -> str | None:
    """The overfitting warning of one run (:func:`engine.verdict.overfitting`): held-out loss
    (validation, else own test) rising while the training loss falls; ``None`` when it does not."""
    from engine.verdict import overfitting

    if round_df is None or round_df.empty:
        return None
    wide = round_df.pivot_table(index="round", columns="key", values="value", aggfunc="first")
    held = next((k for k in ("val_loss_mean", "local_loss_mean") if k in wide.columns), None)
    if held is None or "train_loss_mean" not in wide.columns:
        return None
    part = wide[["train_loss_mean", held]].dropna()
    flag = overfitting(list(part.index), list(part["train_loss_mean"]), list(part[held]))
    return flag.message if flag else None


def setting_runs(store: Store, run_id: str) -> list[str]:
    """The finished runs of ``run_id``'s setting (its seeds): the sweep members with its variant,
    else the run alone."""
    run = store.get_run(run_id)
    if not run.get("group_id"):
        return [run_id]
    return [r["id"] for r in store.list_runs(group_id=run["group_id"])
            if (r.get("variant") or r.get("strategy")) == (run.get("variant") or run.get("strategy"))
            and (r["status"] == "finished" or r["id"] == run_id)]


def verdicts(store: Store, run_ids: Sequence[str], *, best_round: bool = True):
    """The verdicts of the strategies among ``run_ids`` against their paired ``local`` (and
    ``centralized``) runs, and the pairings (:func:`engine.verdict.verdicts_for`)."""
    from engine.verdict import verdicts_for

    return verdicts_for(store, list(run_ids), best_round=best_round)


def missing_baselines(pairings: Sequence[Any], baseline: str = "local") -> list[tuple[str, int]]:
    """``(run id, seed)`` of the strategy runs that have no paired ``baseline`` run yet."""
    return [(p.runs[seed]["id"], seed) for p in pairings for seed in p.missing.get(baseline, [])]


def launch_baselines(run_ids: Sequence[str], baseline: str = "local", mgr: Any = None) -> list[str]:
    """Launch ``baseline`` (``local``) on the same split and seed as each of ``run_ids``: the
    same config with only the strategy changed, in the same sweep when the run is in one (so
    Compare's whole-sweep view pairs them). Returns the new run ids.

    :raises ConfigError: the baseline cannot run this config.
    """
    mgr = mgr or manager()
    created = []
    for run_id in dict.fromkeys(run_ids):
        run = mgr.store.get_run(run_id)
        config = parse_config({**run["config"], "strategy": {"name": baseline}})
        base = str(run.get("name") or config.name).split(" · ")[0]
        name = f"{base} · {baseline} · seed {config.seed}"
        created.append(mgr.submit(config, name=name, group_id=run.get("group_id"), tags=run.get("tags") or [],
                                  parent_id=run_id, variant=baseline if run.get("group_id") else None))
    return created
