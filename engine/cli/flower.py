"""``python -m engine export-flower CONFIG|RUN_ID --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_export_flower(args: argparse.Namespace) -> int:
    from engine.interop.flower import export_flower
    from engine.tracking.storage import Store

    store = Store(args.db) if not Path(args.source).exists() else None
    out = export_flower(args.source, Path(args.out), store=store, sites=not args.no_data)
    print(f"wrote the Flower app to {out}")
    print(f"  cd {out} && pip install -e . && flwr run .")
    return 0


def cli_commands(sub: argparse._SubParsersAction, add: Any, command: str | None = None) -> None:
    p = add(
        "export-flower",
        cmd_export_flower,
        "export an experiment (a config file or a run id) as a runnable Flower app",
    )
    p.add_argument("source", help="config file (JSON or YAML) or run id")
    p.add_argument("--out", required=True, help="new folder for the app")
    p.add_argument(
        "--no-data",
        action="store_true",
        help="do not write each site's rows of the experiment's data under data/",
    )
