"""Start the app for a browser, written once for the browser tests (``tests/test_e2e_*.py``) and the
benches that drive the app in Chromium (``bench/app_render.py``, ``bench/app_idle.py``).

``start_server`` runs ``streamlit run app.py`` on a free localhost port with its own FedMosaic home
and database, and returns once ``/_stcore/health`` answers "ok" (a ``RuntimeError`` with the end of
the server's log when it dies or does not answer in time); ``serving`` stops it afterwards.
``chromium_page`` opens a headless Chromium page, saves a screenshot when the code inside fails, and
always closes the browser.

    with serving(home, flags=["--server.headless", "true"]) as server, chromium_page() as page:
        page.goto(server.url)

Only ``--server.port`` is added to the flags a caller passes: everything else comes from the
repository's ``.streamlit/config.toml`` (``bench.app_idle`` measures exactly that configuration).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("FEDMOSAIC_CHROMIUM", "/usr/bin/chromium"))
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
VIEWPORT = {"width": 1440, "height": 1000}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ``streamlit run app.py``: its process, its address and its log file (or None)."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path | None, log_file: IO[str] | None):
        self.proc = proc
        self.url = url
        self.log = log
        self._log_file = log_file

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the server's log ("" when it was not kept)."""
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")[-chars:] if self.log and self.log.exists() else ""

    def stop(self, wait: float = 10) -> None:
        """Ask the server to stop, kill it if it has not within ``wait`` seconds, close its log."""
        self.proc.terminate()
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()


def start_server(
    home: Path,
    *,
    db: str = "bench.db",
    env: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
    flags: Iterable[str] = (),
    root: Path = ROOT,
    python: str | Path = sys.executable,
    log: Path | None = None,
    timeout: float = 60,
) -> Server:
    """Run ``streamlit run app.py`` from ``root`` (so its ``.streamlit/config.toml`` applies) on a
    free port and wait until it answers its health check.

    :param home: the app's ``FEDMOSAIC_HOME``; the database is ``home / db`` (``FEDMOSAIC_DB``)
    :param env: more environment variables for the server (over this process's own)
    :param drop: environment variables the server must not inherit
    :param flags: streamlit flags after ``--server.port``
    :param python: the interpreter that runs streamlit
    :param log: where the server's output goes (discarded when None)
    :param timeout: seconds to wait for the health check to answer "ok"
    :raises RuntimeError: the server exited or did not answer in time (with the log's end)
    """
    port = free_port()
    server_env = {
        **os.environ,
        "FEDMOSAIC_HOME": str(home),
        "FEDMOSAIC_DB": str(home / db),
        **(env or {}),
    }
    for var in drop:
        server_env.pop(var, None)
    log_file = log.open("w") if log is not None else None
    proc = subprocess.Popen(
        [str(python), "-m", "streamlit", "run", "app.py", "--server.port", str(port), *flags],
        cwd=root,
        env=server_env,
        stdout=log_file if log_file is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, f"http://127.0.0.1:{port}", log, log_file)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return server
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            exited = proc.poll() is not None
            why = f"exited with code {proc.returncode}" if exited else f"no answer in {timeout:g} s"
            server.stop()
            tail = server.log_tail() if log is not None else "(its output was discarded)"
            raise RuntimeError(f"streamlit did not start ({why}): {tail}")
        time.sleep(0.3)


@contextmanager
def serving(home: Path, **options: Any) -> Iterator[Server]:
    """``start_server(home, **options)`` for the duration of a ``with`` block, then stopped."""
    server = start_server(home, **options)
    try:
        yield server
    finally:
        server.stop()


def failure_path(folder: Path | None) -> Path | None:
    """Where a failure screenshot goes: ``FEDMOSAIC_E2E_FAILURE`` if set, else ``folder/failure.png``."""
    if os.environ.get("FEDMOSAIC_E2E_FAILURE"):
        return Path(os.environ["FEDMOSAIC_E2E_FAILURE"])
    return folder / "failure.png" if folder is not None else None


@contextmanager
def chromium_page(
    *,
    viewport: Mapping[str, int] | None = VIEWPORT,
    default_timeout: float | None = 60_000,
    accept_downloads: bool | None = None,
    failure_dir: Path | None = None,
    full_page: bool = False,
) -> Iterator[Any]:
    """A page of a headless Chromium (``CHROMIUM`` with ``CHROMIUM_ARGS``) for a ``with`` block.

    :param viewport: the page's size (None: Playwright's default)
    :param default_timeout: milliseconds every wait may take (None: Playwright's default)
    :param accept_downloads: passed to ``new_page`` when set
    :param failure_dir: when the block raises, the page is saved to ``failure_path(failure_dir)``
        (if there is one) and where is printed; the exception goes on
    :param full_page: screenshot the whole scrollable page on failure, not just the viewport
    """
    from playwright.sync_api import sync_playwright

    options: dict[str, Any] = {}
    if viewport is not None:
        options["viewport"] = dict(viewport)
    if accept_downloads is not None:
        options["accept_downloads"] = accept_downloads
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(**options)
            if default_timeout is not None:
                page.set_default_timeout(default_timeout)
            try:
                yield page
            except Exception:
                shot = failure_path(failure_dir)
                if shot is not None:
                    try:
                        page.screenshot(path=str(shot), full_page=full_page)
                        print(f"screenshot of the failure: {shot}")
                    except Exception as exc:  # the page may be gone; the original error matters
                        print(f"no screenshot of the failure ({exc})")
                raise
        finally:
            browser.close()
