"""Export an experiment (a config, or a run) as a runnable Flower app.

The app (``pyproject.toml``, a server app, a client app, a task module, ``experiment.json`` and a
README) is written from the templates in ``engine/interop/templates`` with :class:`string.Template`
(values substituted as text; nothing is evaluated), under sanitised file names. It depends on
``flwr`` and on FedMosaic, whose code it runs (:mod:`engine.interop.flower_runtime`):

- strategies that map onto Flower's own (:data:`NATIVE`: FedAvg, FedProx, FedAvgM, FedAdam,
  FedYogi) run as that Flower strategy on the server, with FedMosaic's client turn on the sites;
- heterogeneous ones (:data:`BRIDGED`: per-architecture FedAvg, FedPer, LG-FedAvg, FedProto) run
  as a custom Flower strategy built on FedMosaic's own strategy code.

Each site's preprocessing is the experiment's (fitted as a FedMosaic run of this config fits it,
or a run's own), shipped in the app. With ``sites`` the export also writes each site's rows of the
experiment's data (``data/site-<n>.parquet``, with a ``split`` column: the same train/test split as
FedMosaic), so ``flwr run .`` runs as it is; in a real federation each site brings its own table.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import CompatibilityError, StorageError

TEMPLATES = Path(__file__).parent / "templates"
NATIVE = {
    "fedavg": "FedAvg",
    "fedprox": "FedProx",
    "fedavgm": "FedAvgM",
    "fedadam": "FedAdam",
    "fedyogi": "FedYogi",
}
"""FedMosaic strategy -> the Flower strategy class the exported server app uses."""
BRIDGED = ("fedavg_by_arch", "fedper", "lg_fedavg", "fedproto")
"""Strategies exported as a custom Flower strategy running FedMosaic's strategy code."""
FILES = {"pyproject.toml.tmpl": "pyproject.toml", "README.md.tmpl": "README.md"}
PACKAGE_FILES = {
    "server_app.py.tmpl": "server_app.py",
    "client_app.py.tmpl": "client_app.py",
    "task.py.tmpl": "task.py",
}


def support(strategy: str) -> str | None:
    """How a strategy exports to Flower (``"Flower's FedAvg"``, ``"custom Flower strategy"``), or
    ``None`` when it does not (the catalog shows it)."""
    if strategy in NATIVE:
        return f"Flower's {NATIVE[strategy]}"
    if strategy in BRIDGED:
        return "custom Flower strategy on FedMosaic's code"
    return None


def _identifier(text: str, default: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", str(text).lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"{default}_{name}".strip("_")
    return name[:40]


def _project(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", str(text).lower()).strip("-")
    return (name or "experiment")[:40]


def _render(name: str, values: dict[str, Any]) -> str:
    template = string.Template((TEMPLATES / name).read_text(encoding="utf-8"))
    return template.substitute({k: str(v) for k, v in values.items()})


def _toml_text(text: str) -> str:
    """Text safe inside a TOML basic string and a Python docstring (quotes, backslashes and
    control characters dropped)."""
    return re.sub(r'["\\\x00-\x1f\x7f]', "", str(text))[:200]


def experiment_spec(
    config: Any, root: Path, *, run_config: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Any]:
    """``experiment.json`` of a config and the federation a FedMosaic run of it builds."""
    from engine.artifacts.schema import schema_of
    from engine.data import build as build_federation

    roster = config.roster()
    fed = build_federation(
        config.data, [c.preprocessing for c in roster], [c.data_share for c in roster], config.seed, root
    )
    data = fed.data
    name = config.strategy.name
    spec = {
        "format": "fedmosaic-flower/1",
        "config": run_config or config.model_dump(mode="json"),
        "mode": "native" if name in NATIVE else "bridge",
        "flower_strategy": NATIVE.get(name),
        "task": fed.task,
        "classes": list(data.classes),
        "n_outputs": fed.n_outputs,
        "input": {"kind": fed.input_spec.kind, "shape": list(fed.input_spec.shape)},
        "rep_dim": config.rep_dim,
        "schema": schema_of(data, config.data),
        "target": {"name": config.data.target, "mean": float(fed.target_mean), "std": float(fed.target_std)},
        "test_fraction": config.data.test_fraction,
        "split_column": "split",
    }
    return spec, fed


def site_tables(fed: Any, spec: dict[str, Any], config: Any, root: Path) -> list[pd.DataFrame]:
    """Each site's rows of the experiment's data, train then test, with a ``split`` column."""
    data = fed.data
    schema = spec["schema"]
    if schema.get("form") == "table" or schema.get("form") == "pixels":
        from engine.data.tables.dataset import _read, resolve_path

        frame = _read(resolve_path(config.data.path, root), config.data).frame
        rows = data.rows if data.rows is not None else np.arange(len(data))
        source = frame.iloc[rows].reset_index(drop=True)
    else:  # built-in dataset: its features as named columns, its classes by name
        x = data.x.reshape(len(data), -1).numpy()
        source = pd.DataFrame(x, columns=[c if isinstance(c, str) else c["name"] for c in schema["columns"]])
        target = schema.get("target") or "target"
        schema["target"] = spec["target"]["name"] = target
        values = data.y.numpy()
        source[target] = [data.classes[int(v)] for v in values] if data.classes else values
    tables = []
    for client in fed.clients:
        part = pd.concat(
            [
                source.iloc[client.index].assign(split="train"),
                source.iloc[client.test_index].assign(split="test"),
            ],
            ignore_index=True,
        )
        tables.append(part)
    return tables


def export_flower(
    source: str | Path, out: Path, *, store: Any = None, sites: bool = True, root: Path | None = None
) -> Path:
    """Write the Flower app of a config file or a stored run (its id) to ``out``.

    :param sites: also write each site's rows of the experiment's data under ``data/``.
    :raises CompatibilityError: the strategy does not export (naming those that do).
    :raises StorageError: ``out`` exists and is not empty, or cannot be written.
    """
    from engine.config import load_config, parse_config
    from engine.tracking.storage import default_data_dir

    root = root or default_data_dir()
    run = None
    text = str(source)
    if store is not None and not Path(text).exists():
        run = store.get_run(text)
        config = parse_config(run["config"])
        label = f"run {run['id']}"
    else:
        config = load_config(source)
        label = f"config {Path(text).name}"
    name = config.strategy.name
    if support(name) is None:
        raise CompatibilityError(
            f"{name} does not export to Flower; strategies that do: {', '.join([*NATIVE, *BRIDGED])}"
        )
    private = [
        w
        for w, on in (
            ("DP-SGD clients", any(c.privacy is not None for c in config.roster())),
            ("server-side DP", getattr(config, "server_dp", None) is not None),
            ("secure aggregation", getattr(config, "secure_aggregation", None) is not None),
            ("simulated attacks", any(getattr(c, "adversary", None) is not None for c in config.roster())),
            (
                "a robust aggregation (defence)",
                getattr(getattr(config, "defence", None), "name", "none") != "none",
            ),
        )
        if on
    ]
    if private:  # the exported sites and server would run without them: refuse rather than drop them silently
        raise CompatibilityError(
            f"this experiment uses {' and '.join(private)}, which the Flower export does not "
            f"carry (its sites would train and share without them); remove them to export, "
            f"or run the experiment in FedMosaic"
        )
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise StorageError(f"{out} is not empty; choose a new folder for the Flower app")
    spec, fed = experiment_spec(config, root, run_config=run["config"] if run else None)
    roster = config.roster()
    package = _identifier(f"{config.name}_flower", "fedmosaic")
    schema = spec["schema"]
    columns = [c["name"] if isinstance(c, dict) else c for c in schema.get("columns", [])]
    strategy_text = (
        f"{name} as Flower's {NATIVE[name]} strategy; each site trains with FedMosaic's client turn"
        if name in NATIVE
        else f"{name} as a custom Flower strategy running FedMosaic's own {name} code (each site may "
        f"receive a different message)"
    )
    values = {
        "title": _toml_text(config.name),
        "source": _toml_text(label),
        "project": _project(config.name),
        "package": package,
        "strategy": name,
        "strategy_text": _toml_text(strategy_text),
        "rounds": config.rounds,
        "n_sites": len(roster),
        "last_site": len(roster) - 1,
        "seed": config.seed,
        "rep_dim": config.rep_dim,
        "site_names": _toml_text(
            ", ".join(c.name for c in roster[:10]) + (" ..." if len(roster) > 10 else "")
        ),
        "models": _toml_text(", ".join(sorted({c.model_key for c in roster}))),
        "columns": _toml_text(", ".join(columns[:30]) + (" ..." if len(columns) > 30 else "")),
        "target": _toml_text(spec["target"]["name"] or schema.get("target") or "target"),
        "test_percent": round(100 * config.data.test_fraction),
        "preprocessing_text": _toml_text(
            f"each site's fitted {', '.join(sorted({c.preprocessing for c in roster}))} "
            f"({config.data.statistics} statistics), shipped in preprocessing/"
        ),
        "data_text": "data/ holds each site's rows of the experiment's data (the same split as FedMosaic)."
        if sites
        else "Put each site's table in data/site-<n>.csv.",
    }
    if schema.get("readable") is False or schema.get("form") == "window":
        raise CompatibilityError(
            "this experiment's data cannot be exported as a site's table: "
            + (
                schema.get("why")
                or "time-series windows (data.window) are not exported to "
                "Flower yet; export a tabular or image experiment"
            )
        )
    try:
        pkg = out / package
        (pkg / "preprocessing").mkdir(parents=True, exist_ok=True)
        for tmpl, target in FILES.items():
            (out / target).write_text(_render(tmpl, values), encoding="utf-8")
        for tmpl, target in PACKAGE_FILES.items():
            (pkg / target).write_text(_render(tmpl, values), encoding="utf-8")
        (pkg / "__init__.py").write_text(
            f'"""Flower app of {values["title"]}, exported by FedMosaic."""\n', encoding="utf-8"
        )
        tables = site_tables(fed, spec, config, root) if sites else []
        (pkg / "experiment.json").write_text(json.dumps(_plain(spec), indent=2), encoding="utf-8")
        from safetensors.torch import save_file

        from engine.artifacts.keep import _affine_tensors, _tensors

        for i, client in enumerate(fed.clients):
            save_file(
                _tensors(_affine_tensors(client.transform)),
                str(pkg / "preprocessing" / f"site-{i}.safetensors"),
            )
        if sites:  # Parquet: the values exactly as read (no re-typing), nothing a spreadsheet would run
            (out / "data").mkdir(exist_ok=True)
            for i, table in enumerate(tables):
                table.to_parquet(out / "data" / f"site-{i}.parquet", index=False)
    except OSError as exc:
        raise StorageError(f"cannot write the Flower app to {out}: {exc.strerror or exc}") from None
    return out


def _plain(value: Any) -> Any:
    from engine.artifacts.keep import plain

    return plain(value)


def flower_app_zip(design: dict[str, Any], root: Path | None = None, *, sites: bool = True) -> bytes:
    """The Flower app of a design (a config dict, as the pages hold it) as a zip, for a download
    button: the same files as :func:`export_flower`, under a folder named after the design.

    :raises ConfigError: the design is not a valid config.
    :raises CompatibilityError: its strategy does not export.
    """
    import io
    import tempfile
    import zipfile

    from engine.config import parse_config

    config = parse_config(design)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")
        app = export_flower(path, Path(tmp) / "app", sites=sites, root=root)
        folder = _project(config.name) + "-flower"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(app.rglob("*")):
                if file.is_file():
                    zf.write(file, f"{folder}/{file.relative_to(app).as_posix()}")
        return buf.getvalue()
