"""Commands about one experiment: run, list, show, export, catalog, schema, validate and
hash-password. Each imports what it needs when it runs, so ``list`` never loads torch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.errors import ConfigError


def _store(args: argparse.Namespace):  # noqa: ANN202
    from engine.tracking.storage import Store

    return Store(args.db)


def _progress(total: int, quiet: bool, primary=None):  # noqa: ANN001, ANN202
    """A progress bar with the headline figure; ``primary()`` gives the run's primary metric."""
    from engine.core.metrics import headline

    def on_round(record) -> None:  # noqa: ANN001
        if quiet:
            return
        done = record.round
        width = 30
        filled = int(width * done / total)
        key, value = headline(record.metrics, primary() if primary else None)
        figure = f"{key}={value:.4f}" if key else ""
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] round {done}/{total} {figure}   ")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return on_round


def cmd_run(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from engine.core.simulation import Simulation
    from engine.validate import check

    config = load_config(args.config)
    if args.seed is not None:
        config = config.model_copy(update={"seed": args.seed})
    check(config)
    store = _store(args)
    sim = Simulation(
        config,
        store=store,
        on_round=_progress(
            config.rounds, args.json, lambda: getattr(sim, "primary", None) and sim.primary.metric
        ),
    )
    summary = sim.run()
    status = store.get_run(sim.run_id)["status"]
    final = {k: v for k, v in summary["final"].items()}
    if args.json:
        print(
            json.dumps(
                {"run_id": sim.run_id, "status": status, "rounds": summary["rounds_done"], "final": final},
                default=float,
            )
        )
    else:
        from engine.core.metrics import headline, run_primary, summary_keys

        print(f"run {sim.run_id}: {status} after {summary['rounds_done']} rounds")
        metric = run_primary({"summary": final})
        key, value = headline(final, metric)
        if key:
            print(
                f"  headline: {metric.label} {value:.4f} ({key}: own test data, mean over clients, at each "
                f"client's best validation round)"
            )
        first = [k for k in summary_keys(metric) if isinstance(final.get(k), (int, float))]
        rest = sorted(
            k
            for k in final
            if k not in first
            and isinstance(final[k], (int, float))
            and (k.endswith("_mean") or k.startswith("server_"))
        )
        for key in [*first, *rest]:
            print(f"  {key:32s} {final[key]:.4f}")
    return 0 if status == "finished" else 1


def _refreshed(store, fetch) -> list[dict[str, Any]]:  # noqa: ANN001
    """``fetch()``'s runs with the status they really have: one whose process is gone reads
    ``interrupted`` (written to the database when it is writable, shown only when it is read-only)."""
    stale = store.refresh()
    runs = fetch()
    for run in runs:
        if run["id"] in stale:
            run.update(status="interrupted", error=stale[run["id"]])
    return runs


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    runs = [r for r in _refreshed(store, store.list_runs) if not args.status or r["status"] == args.status]
    if args.json:
        print(json.dumps(runs, default=str))
        return 0
    if not runs:
        print("no runs yet")
    for r in runs:
        print(
            f"{r['id']}  {r['status']:<11} {r['strategy']:<14} {r['dataset']:<14} "
            f"round {r['current_round']}/{r['rounds']}  {r['name']}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    run = _refreshed(store, lambda: [store.get_run(args.run_id)])[0]
    if args.json:
        print(json.dumps(run, default=str, indent=2))
        return 0
    print(
        f"{run['id']}  {run['name']}  [{run['status']}]  strategy={run['strategy']}  "
        f"dataset={run['dataset']}  clients={run['n_clients']}  round {run['current_round']}/{run['rounds']}"
    )
    if run.get("error"):
        print(f"error: {run['error']}")
    for key, value in sorted((run.get("summary") or {}).items()):
        if value is not None and (
            key.endswith("_mean") or key.startswith(("server_", "backdoor_asr", "defence_"))
        ):
            print(f"  {key:28s} {value:.4f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from engine.reporting import export

    path = export.export_run(_store(args), args.run_id, args.format, Path(args.out))
    print(f"wrote {path}")
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from engine.catalog import catalog

    cat = catalog()
    if args.json:
        print(json.dumps(cat, indent=2, default=str))
        return 0
    for section, entries in cat.items():
        print(f"{section}:")
        for e in entries:
            print(f"  {e['name']:<16} {e.get('description', '')}")
            for p in e.get("params", []):
                print(f"      {p['name']:<14} default {p['default']!r:<10} {p['description']}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from engine.config import config_schema

    print(json.dumps(config_schema(), indent=2))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from engine.validate import validate

    config = load_config(args.config)
    report = validate(config)
    for w in report.warnings:
        print(f"warning: {w}")
    if report.errors:
        for e in report.errors:
            print(f"error: {e}", file=sys.stderr)
        return 2
    runnable = [n for n, why in report.compatible.items() if why is None]
    print(
        f"ok: {config.name} ({len(config.roster())} clients, strategy {config.strategy.name}); "
        f"strategies that can run this roster: {', '.join(runnable)}"
    )
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from engine.auth import ENV_HASH, MIN_LENGTH, hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass

        password = getpass.getpass("Password for the app: ")
        if getpass.getpass("Again: ") != password:
            raise ConfigError("the two passwords differ; try again")
    if len(password) < MIN_LENGTH:
        raise ConfigError(f"use a password of at least {MIN_LENGTH} characters")
    value = hash_password(password)
    print(value)
    print(
        f"# set it as {ENV_HASH}='{value}' or password_hash = \"{value}\" in .streamlit/secrets.toml",
        file=sys.stderr,
    )
    return 0


def cli_commands(sub: argparse._SubParsersAction, add: Any, command: str | None = None) -> None:
    """Subcommands of ``python -m engine``: run, list, show, export, catalog, schema, validate,
    hash-password (``command``: the one being run, so ``export``'s formats load only for it)."""
    p = add("run", cmd_run, "run an experiment config in the foreground")
    p.add_argument("config", help="JSON or YAML experiment config")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p = add("list", cmd_list, "list runs")
    p.add_argument("--status", help="only runs with this status")
    p.add_argument("--json", action="store_true")
    p = add("show", cmd_show, "show one run")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true")
    p = add("export", cmd_export, "export a run's figures or config")
    p.add_argument("run_id")
    if command in (None, "export"):  # the formats module loads torch: only when it is the command
        from engine.reporting.export import FORMATS

        p.add_argument(
            "--format",
            choices=list(FORMATS),
            default="csv",
            help="; ".join(f"{f.name}: {f.description}" for f in FORMATS.values()),
        )
    else:
        p.add_argument("--format", default="csv")
    p.add_argument("--out", required=True, help="output file")
    p = add("catalog", cmd_catalog, "list architectures, strategies, datasets, partitioners")
    p.add_argument("--json", action="store_true")
    add("schema", cmd_schema, "print the experiment config's JSON Schema")
    p = add("validate", cmd_validate, "check a config without running it")
    p.add_argument("config")
    p = add("hash-password", cmd_hash_password, "make the password hash the app asks for when exposed")
    p.add_argument("--stdin", action="store_true", help="read the password from the first line of stdin")
