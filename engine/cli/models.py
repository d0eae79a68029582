"""Subcommands of ``python -m engine`` for kept models: ``models`` (download) and ``predict``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import DataError


def _store(args: argparse.Namespace) -> Any:
    from engine.tracking.storage import Store

    return Store(args.db)


def cmd_models(args: argparse.Namespace) -> int:
    from engine.artifacts.bundle import export_models
    from engine.artifacts.load import index

    store = _store(args)
    if args.list:
        idx = index(store, args.run_id)
        for m in idx["models"]:
            mark = " (reported)" if m["which"] == idx["default"] else ""
            print(f"{m['which']:<6} {m['name']:<40} {m['part']:<10} round {m['round']}{mark}")
        return 0
    if not args.out:
        raise DataError("give --out DIR (a folder) or --out FILE.zip, or --list to see the models")
    path = export_models(store, args.run_id, Path(args.out), args.client, onnx=args.onnx)
    print(f"wrote {path}")
    return 0


def _inputs(path: Path) -> tuple[Path | None, list[tuple[str, bytes]] | None]:
    """A table file, one image, or a folder of images."""
    from engine.artifacts.predict import is_image_name

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_image_name(p.name))
        if not files:
            raise DataError(
                f"{path} holds no image files (.png, .jpg...); give a table file or a folder of images"
            )
        return None, [(p.name, p.read_bytes()) for p in files]
    if not path.is_file():
        raise DataError(f"--input {path} is not a file or folder")
    if is_image_name(path.name):
        return None, [(path.name, path.read_bytes())]
    return path, None


def cmd_predict(args: argparse.Namespace) -> int:
    from engine.artifacts.load import load
    from engine.artifacts.predict import predict
    from engine.sanitize import write_csv

    loaded = load(_store(args), args.run_id, args.client, args.which)
    table, images = _inputs(Path(args.input))
    result = predict(loaded, table, images=images)
    out = Path(args.out)
    try:
        write_csv(result.table, out, float_format="%.6g")
    except OSError as exc:
        raise DataError(f"cannot write {out}: {exc.strerror or exc}") from None
    which = loaded.config["which"]
    print(
        f"wrote {out}: {len(result.table)} predictions of {loaded.config['name']} ({which}, round "
        f"{loaded.config['round']})"
    )
    for w in result.warnings:
        print(f"warning: {w}")
    if result.metrics:
        print(
            f"figures on {result.rows_scored} rows with their target (reference: a predictor that ignores "
            "the input):"
        )
        for key, value in result.metrics.items():
            ref = (result.reference or {}).get(key)
            print(f"  {key:<8} {value:.4f}" + (f"   reference {ref:.4f}" if ref is not None else ""))
    return 0


def cli_commands(sub: argparse._SubParsersAction, add: Any, command: str | None = None) -> None:
    """``models`` and ``predict``."""
    p = add(
        "models", cmd_models, "download a run's kept models (weights, config.json, preprocessing, model card)"
    )
    p.add_argument("run_id")
    p.add_argument(
        "--client",
        help="one client's model (its name or roster position), or 'federation'; default: every model",
    )
    p.add_argument("--out", help="output folder, or a .zip file")
    p.add_argument("--onnx", action="store_true", help="add model.onnx to each complete model (onnx extra)")
    p.add_argument("--list", action="store_true", help="list the kept models instead")
    p = add("predict", cmd_predict, "predict with a kept model on a table (CSV, .xlsx, Parquet) or images")
    p.add_argument("run_id")
    p.add_argument(
        "--client",
        help="the client's name or roster position, or 'federation' (default: the federation's model)",
    )
    p.add_argument(
        "--which",
        choices=["best", "final"],
        help="weights of the best validation round or of the last round (default: what the app reports)",
    )
    p.add_argument(
        "--input", required=True, help="table file with the training columns, an image, or a folder of images"
    )
    p.add_argument("--out", required=True, help="output .csv file")
