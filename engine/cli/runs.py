"""The run manager's commands: resume, cancel, delete, sweep, report, summary, rename, tag, fork."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, StorageError
from engine.tracking.runs import RunManager
from engine.tracking.schema import ACTIVE
from engine.tracking.storage import Store
from engine.tracking.variants import deep_merge, set_path, strategy_dict


def _manager(args: argparse.Namespace, workers: int | None = None) -> RunManager:
    return RunManager(Store(args.db), workers=workers or getattr(args, "workers", None) or 1)


def _follow(mgr: RunManager, run_ids: list[str], quiet: bool) -> dict[str, str]:
    """Wait for runs, drawing one progress line on stderr; Ctrl+C cancels them."""
    statuses: dict[str, str] = {}
    try:
        while True:
            pending = [r for r in run_ids if r not in statuses]
            for run_id in pending:
                status = mgr.wait(run_id, timeout=0)
                if status not in ACTIVE:
                    statuses[run_id] = status
            if len(statuses) == len(run_ids):
                break
            if not quiet:
                parts = []
                for run_id in run_ids[:4]:
                    p = mgr.progress(run_id)
                    parts.append(f"{run_id[:6]} {p['status'][:4]} {p['current_round']}/{p['rounds']}")
                more = f" (+{len(run_ids) - 4})" if len(run_ids) > 4 else ""
                sys.stderr.write("\r" + "  ".join(parts) + more + "   ")
                sys.stderr.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        for run_id in run_ids:
            if run_id not in statuses:
                mgr.cancel(run_id)
        for run_id in run_ids:
            statuses[run_id] = mgr.wait(run_id, timeout=60)
        raise
    finally:
        if not quiet:
            sys.stderr.write("\n")
    return statuses


def _final_line(store: Store, run_id: str) -> str:
    row = store.get_run(run_id)
    summary = row.get("summary") or {}
    from engine.core.metrics import headline

    key, value = headline(summary)
    figure = f"{key}={value:.4f}" if key else ""
    return f"{run_id}  {row['status']:<11} round {row['current_round']}/{row['rounds']}  {figure}"


def cmd_resume(args: argparse.Namespace) -> int:
    mgr = _manager(args)
    try:
        mgr.resume(args.run_id)
        status = _follow(mgr, [args.run_id], args.json)[args.run_id]
    finally:
        mgr.shutdown(wait=True)
    if args.json:
        print(json.dumps(mgr.store.progress(args.run_id), default=str))
    else:
        print(_final_line(mgr.store, args.run_id))
    return 0 if status == "finished" else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    mgr = _manager(args)
    try:
        for run_id in args.run_ids:
            mgr.cancel(run_id)
            if args.wait:
                status = mgr.wait(run_id, timeout=args.timeout)
                print(f"{run_id}: {status}")
            else:
                status = mgr.store.get_run(run_id)["status"]
                said = "cancel requested (it stops within a few seconds)" if status in ACTIVE else status
                print(f"{run_id}: {said}")
    finally:
        mgr.shutdown(wait=False)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    mgr = _manager(args)
    try:
        for run_id in args.run_ids:
            name = mgr.store.get_run(run_id)["name"]
            mgr.delete(run_id)
            print(f"deleted {run_id} ({name})")
    finally:
        mgr.shutdown(wait=False)
    return 0


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_strategy_arg(text: str) -> dict[str, Any]:
    """``fedprox:mu=0.1,epochs=2`` or a JSON object -> ``{"name": "fedprox", "mu": 0.1, ...}``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--strategies: {text!r} is not valid JSON ({exc.msg})") from None
        return strategy_dict(value)
    name, _, rest = text.partition(":")
    spec: dict[str, Any] = {"name": name.strip()}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--strategies: '{item}' should be key=value, e.g. fedprox:mu=0.1")
        spec[key.strip()] = _parse_value(value.strip())
    return spec


def cmd_sweep(args: argparse.Namespace) -> int:
    from engine.config import load_config
    from engine.reporting.tables import seed_summary

    config = load_config(args.config)
    strategies = [parse_strategy_arg(s) for s in args.strategies] if args.strategies else None
    mgr = _manager(args, workers=args.workers)
    try:
        group_id, run_ids = mgr.sweep(config, seeds=args.seeds, strategies=strategies, name=args.name)
        if not args.json:
            print(f"sweep {group_id}: {len(run_ids)} runs ({mgr.workers} at a time)", file=sys.stderr)
        statuses = _follow(mgr, run_ids, args.json)
    finally:
        mgr.shutdown(wait=True)
    table = seed_summary(mgr.store, run_ids)
    if args.json:
        print(
            json.dumps(
                {
                    "group_id": group_id,
                    "runs": statuses,
                    "summary": json.loads(table.to_json(orient="records")),
                }
            )
        )
    else:
        for run_id in run_ids:
            print(_final_line(mgr.store, run_id))
        if not table.empty:
            print(table.to_string(index=False))
    return 0 if all(s == "finished" for s in statuses.values()) else 1


def cmd_report(args: argparse.Namespace) -> int:
    from engine.reporting.report import write_report

    store = Store(args.db)
    run_ids = list(args.run_ids)
    if args.group:
        run_ids += [r["id"] for r in reversed(store.list_runs(group_id=args.group)) if r["id"] not in run_ids]
    if not run_ids:
        raise ConfigError("name at least one run id (or --group GROUP_ID)")
    path = write_report(store, run_ids, Path(args.out), title=args.title)
    print(f"wrote {path}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from engine.reporting.export import write_table
    from engine.reporting.tables import runs_summary
    from engine.sanitize import csv_text

    store = Store(args.db)
    run_ids = list(args.run_ids) or [r["id"] for r in store.list_runs(group_id=args.group, tag=args.tag)]
    table = runs_summary(store, run_ids)
    if args.out:
        print(f"wrote {write_table(table, Path(args.out))}")
    else:
        print(csv_text(table), end="")
    return 0


def cmd_rename(args: argparse.Namespace) -> int:
    store = Store(args.db)
    store.rename_run(args.run_id, args.name)
    print(f"{args.run_id}: {store.get_run(args.run_id)['name']}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    store = Store(args.db)
    current = store.get_run(args.run_id).get("tags") or []
    if args.set:
        tags = args.tags
    elif args.remove:
        tags = [t for t in current if t not in args.tags]
    else:
        tags = [*current, *args.tags]
    print(f"{args.run_id}: tags {', '.join(store.set_tags(args.run_id, tags)) or '(none)'}")
    return 0


def cmd_fork(args: argparse.Namespace) -> int:
    store = Store(args.db)
    changes: dict[str, Any] = {}
    base = store.get_run(args.run_id)["config"]
    for item in args.set or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--set '{item}' should be path=value, e.g. --set strategy.mu=0.1")
        changes = deep_merge(changes, set_path(deep_merge(base, changes), key.strip(), _parse_value(value)))
    mgr = RunManager(store, workers=1)
    try:
        config = mgr.fork(args.run_id, changes)
        text = json.dumps(config.model_dump(mode="json"), indent=2)
        if args.out:
            out = Path(args.out)
            try:
                out.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise StorageError(f"cannot write {out}: {exc.strerror}") from None
            print(f"wrote {out}")
        else:
            print(text)
        if args.run:
            run_id = mgr.submit(config, parent_id=args.run_id)
            print(f"launched {run_id}", file=sys.stderr)
            status = _follow(mgr, [run_id], False)[run_id]
            print(_final_line(store, run_id))
            return 0 if status == "finished" else 1
    finally:
        mgr.shutdown(wait=True)
    return 0


def cli_commands(sub: argparse._SubParsersAction, add: Any, command: str | None = None) -> None:
    """Subcommands of ``python -m engine``: resume, cancel, delete, sweep, report, summary,
    rename, tag, fork."""
    p = add("resume", cmd_resume, "continue an interrupted, cancelled or failed run from its last checkpoint")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true", help="print the final progress as JSON")
    p = add("cancel", cmd_cancel, "cancel queued or running runs (in this or another process)")
    p.add_argument("run_ids", nargs="+", metavar="run_id")
    p.add_argument("--wait", action="store_true", help="wait until the runs have stopped")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait with --wait")
    p = add("delete", cmd_delete, "delete runs: their figures, events and checkpoint files")
    p.add_argument("run_ids", nargs="+", metavar="run_id")
    p = add("sweep", cmd_sweep, "run one config over several seeds and strategies, grouped")
    p.add_argument("config", help="JSON or YAML experiment config")
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="e.g. --seeds 0 1 2")
    p.add_argument(
        "--strategies",
        nargs="+",
        help='strategies replacing the config\'s: fedavg "fedprox:mu=0.1" or JSON objects',
    )
    p.add_argument("--workers", type=int, default=2, help="runs trained at once")
    p.add_argument("--name", help="name of the sweep (default: the config's)")
    p.add_argument("--json", action="store_true")
    p = add("report", cmd_report, "write a self-contained HTML report of one or several runs")
    p.add_argument("run_ids", nargs="*", metavar="run_id")
    p.add_argument("--group", help="add every run of this sweep group")
    p.add_argument("--title", help="report title")
    p.add_argument("--out", required=True, help="output .html file")
    p = add("summary", cmd_summary, "CSV summary table of runs (final figures, one row per run)")
    p.add_argument("run_ids", nargs="*", metavar="run_id")
    p.add_argument("--group", help="the runs of this sweep group")
    p.add_argument("--tag", help="the runs with this tag")
    p.add_argument("--out", help="output .csv file (default: print)")
    p = add("rename", cmd_rename, "rename a run")
    p.add_argument("run_id")
    p.add_argument("name")
    p = add("tag", cmd_tag, "add (or --remove, or --set) tags of a run")
    p.add_argument("run_id")
    p.add_argument("tags", nargs="*")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--remove", action="store_true", help="remove these tags")
    group.add_argument("--set", action="store_true", help="replace all tags by these")
    p = add("fork", cmd_fork, "a new config from a run's, with changes (printed, saved or run)")
    p.add_argument("run_id")
    p.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="change one value, e.g. --set rounds=50 --set strategy.name=fedprox --set clients.0.lr=0.1",
    )
    p.add_argument("--out", help="write the new config here")
    p.add_argument("--run", action="store_true", help="also run it now (foreground)")
