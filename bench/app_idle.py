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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_copy() -> tuple[Path, Path]:
    """A copy of the repository at HEAD with a ``.venv`` folder of hard links to this venv;
    returns (root, its python)."""
    root = Path(tempfile.mkdtemp(prefix="fedmosaic-checkout-"))
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    venv = Path(sys.prefix).resolve()
    subprocess.run(["cp", "-al", str(venv), str(root / ".venv")], check=True)
    return root, root / ".venv" / "bin" / "python"


def start_server(
    home: Path, flags: list[str], log: Path, workers: int = 2, root: Path = ROOT, python: str = sys.executable
) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` from ``root`` (its config applies) on a free port."""
    port = free_port()
    env = {
        **os.environ,
        "FEDMOSAIC_HOME": str(home),
        "FEDMOSAIC_DB": str(home / "bench.db"),
        "FEDMOSAIC_WORKERS": str(workers),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [str(python), "-m", "streamlit", "run", "app.py", "--server.port", str(port), *flags],
        cwd=root,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("streamlit did not start: " + log.read_text()[-2000:])


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
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="fedmosaic-idle-"))
    log = home / "server.log"
    root, python = scratch_copy() if args.copy else (ROOT, Path(sys.executable))
    proc, url = start_server(home, args.flags, log, root=root, python=str(python))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
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
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
        if args.copy:
            shutil.rmtree(root, ignore_errors=True)
    overflow = log.read_text(errors="replace").count("Inotify queue overflowed")
    print(f"'Inotify queue overflowed' lines in the server log: {overflow}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
