"""One run in a process of its own: ``python -m engine.tracking.worker --db DB --run RUN_ID``.

The app's run manager (:class:`engine.tracking.runs.RunManager` with ``isolation="process"``) trains each
run here instead of in a thread of the server. A training thread in the server process holds the
interpreter lock for every Python step between torch kernels, and with two runs training the
server's own threads (the page scripts, the websocket) waited for it: pages took seconds to
answer and a browser could lose its connection. In a process of its own a run shares only the
cores, and at a lower scheduling priority (``--nice``), so the pages come first.

The process reads the run's config from the database, trains through the same
:class:`engine.core.simulation.Simulation` and writes every round there, as a thread would; the
manager in the server keeps the run's heartbeat and waits for the process. SIGTERM (or SIGINT)
asks it to stop between batches, ending the run ``cancelled`` with its completed rounds kept; it
also stops when the server that started it is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import traceback
from contextlib import nullcontext
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.tracking.worker", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--db", required=True, help="the database holding the run")
    parser.add_argument("--run", required=True, help="the run's id (its row holds the config)")
    parser.add_argument("--share", type=int, default=None, help="threads this run may use (engine.threads)")
    parser.add_argument("--root", default=None, help="data directory for datasets")
    parser.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    parser.add_argument(
        "--trusted",
        action="store_true",
        help="the run may read any path (it was launched from the command line)",
    )
    parser.add_argument(
        "--nice", type=int, default=0, help="lower this process's scheduling priority by this much"
    )
    args = parser.parse_args(argv)
    if args.nice > 0:
        os.nice(args.nice)
    cancel = threading.Event()

    def stop(signum: int, frame: object) -> None:
        cancel.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = os.getppid()

    def watch_parent() -> None:  # orphaned (the server died): stop as a cancel would
        while not cancel.wait(1.0):
            if os.getppid() != parent:
                cancel.set()

    threading.Thread(target=watch_parent, name="fedmosaic-parent-watch", daemon=True).start()

    from engine.access import trusted_paths
    from engine.config import parse_config
    from engine.core.simulation import Simulation
    from engine.tracking.storage import Store

    store = Store(args.db)
    try:
        config = parse_config(store.get_run(args.run)["config"])
        with trusted_paths() if args.trusted else nullcontext():
            sim = Simulation(
                config,
                store=store,
                run_id=args.run,
                root=Path(args.root) if args.root else None,
                cancel=cancel,
                share=args.share,
            )
            sim.run(resume=args.resume)
    except Exception:  # noqa: BLE001 - Simulation recorded it on the run's row; the manager reads stderr
        traceback.print_exc()
        return 1
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
