"""The app at rest: the server's CPU while one browser tab shows Home and nothing runs.

Starts ``streamlit run app.py`` as ``make run`` does (the repository's ``.streamlit/config.toml``),
or with extra server flags (``--flags``, e.g. the file watcher the old config left on), opens Home
in headless Chromium, waits until the page is drawn, then samples the server process's CPU time
(user + system, from ``/proc``) over a few windows while the tab stays open. Also counts the
"Inotify queue overflowed" lines the file watcher writes to the server log.

    python -m bench.app_idle                                        # the shipped config
    python -m bench.app_idle --flags --server.fileWatcherType auto  # the file watcher on

A checkout set up by ``make setup`` holds its ``.venv`` folder inside the repository (45,000
files), which Streamlit's watcher walks; a git worktree whose ``.venv`` is a symlink does not show
that. ``--copy`` runs the server from a scratch copy of the repository (``git archive HEAD``) with a
real ``.venv`` folder inside (hard links to this interpreter's venv, no extra disk).

Prints one line per window (percent of one core) and the log count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.app_server import ROOT, chromium_page, serving

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def scratch_copy() -> tuple[Path, Path]:
    """A copy of the repository at HEAD with a ``.venv`` folder of hard links to this venv;
    returns (root, its python)."""
    root = Path(tempfile.mkdtemp(prefix="fedmosaic-checkout-"))
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    venv = Path(sys.prefix).resolve()
    subprocess.run(["cp", "-al", str(venv), str(root / ".venv")], check=True)
    return root, root / ".venv" / "bin" / "python"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument(
        "--copy",
        action="store_true",
        help="serve from a scratch copy of the repository with a real .venv folder inside",
    )
    parser.add_argument("--flags", nargs=argparse.REMAINDER, default=[], help="extra streamlit server flags")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="fedmosaic-idle-"))
    log = home / "server.log"
    root, python = scratch_copy() if args.copy else (ROOT, Path(sys.executable))
    env = {"FEDMOSAIC_WORKERS": "2", "PYTHONUNBUFFERED": "1"}
    app = serving(home, env=env, flags=args.flags, root=root, python=python, log=log, timeout=120)
    try:
        with app as server, chromium_page(viewport=None, default_timeout=None, failure_dir=home) as page:
            proc = server.proc
            page.goto(server.url)
            page.get_by_text("Quick start", exact=False).first.wait_for(timeout=120_000)
            page.wait_for_timeout(3000)
            print(
                f"flags: {' '.join(args.flags) or '(the repository config)'}; load average "
                f"{os.getloadavg()[0]:.2f}"
            )
            for i in range(args.windows):
                c0, t0 = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(args.seconds)
                share = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
                print(f"window {i + 1}: server CPU {100 * share:.1f}% of a core over {args.seconds:.0f} s")
    finally:
        if args.copy:
            shutil.rmtree(root, ignore_errors=True)
    overflow = log.read_text(errors="replace").count("Inotify queue overflowed")
    print(f"'Inotify queue overflowed' lines in the server log: {overflow}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
