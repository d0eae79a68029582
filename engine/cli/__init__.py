"""FedMosaic command line (``python -m engine``): run, inspect and export experiments without the
browser. The parser and entry point live here; the commands in :mod:`.experiments` (run, list,
show, export, catalog, schema, validate, hash-password), :mod:`.runs` (the run manager's: resume,
cancel, delete, sweep, report, summary, rename, tag, fork), :mod:`.models` (models, predict) and
:mod:`.flower` (export-flower).

User mistakes exit with status 2 and one clear line on stderr; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.errors import FedMosaicError

DESCRIPTION = "FedMosaic command line: run, inspect and export experiments without the browser."


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=DESCRIPTION)
    parser.add_argument("--db", help="database file (default: $FEDMOSAIC_DB or the per-user data dir)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Any, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--db", default=argparse.SUPPRESS, help="database file")
        return p

    for extra in _extensions():
        extra(sub, add, command)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (``None`` when it names none: help, or a mistake), so the
    parser loads only what that command's options need."""
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word == "--db":
            rest = rest[1:]
        elif not word.startswith("-"):
            return word
    return None


def _extensions() -> list[Any]:
    """The subcommand groups: each module's ``cli_commands(sub, add, command)`` adds its own."""
    from engine.cli import experiments, flower, models, runs

    return [experiments.cli_commands, runs.cli_commands, models.cli_commands, flower.cli_commands]


class _PlainStream:
    """A text stream that drops the control characters a terminal would act on (names and
    messages come from users: an escape sequence in a run name must print as text)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        from engine.sanitize import terminal_safe

        return self._stream.write(terminal_safe(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    from engine.access import trusted_paths

    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PlainStream(out), _PlainStream(err)
    try:
        parser = build_parser(_command(sys.argv[1:] if argv is None else argv))
        args = parser.parse_args(argv)
        with trusted_paths():  # the CLI's user owns the files it names (the app's designs never do)
            return int(args.func(args))
    except FedMosaicError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout, sys.stderr = out, err
