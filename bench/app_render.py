"""How fast the pages render with a lot of data: the Runs page with 500 runs, and the Results page
of one run with 100 clients x 200 rounds. Rows are written straight through the Store's write
methods (no training), then each page is rendered headless with Streamlit's ``AppTest``, which
runs the page script exactly as the server does (the browser's drawing time is not included).

    .venv/bin/python -m bench.app_render            # prints a table; --json for one JSON line
    .venv/bin/python -m bench.app_render --live     # in Chromium, with runs training beside it

``--live``: the server is started as the app runs (``FEDMOSAIC_WORKERS=2``); in the browser three
runs are launched from the Launch page (the quick-start design, 300 rounds, seeds 0-2: two train,
the third waits in the queue), and while they train every page is opened from the sidebar in turn
(``--repeats`` times), the Results page of a running run too, and the Runs, Results and Home pages
are reloaded. Each time is from the click (or the navigation) until the script has finished and
the page's heading is on screen. ``--isolation thread`` trains the runs inside the server process
as it did before (``FEDMOSAIC_ISOLATION``), for the comparison.

Numbers are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.app_server import chromium_page, serving, start_server  # noqa: E402 - after the path

ARCHS = ("mlp", "cnn", "resnet", "gru")
TIERS = ("phone", "laptop", "edge", "server")


def synthetic_config(
    n_clients: int, n_rounds: int, strategy: str = "fedavg_by_arch", seed: int = 0, name: str = "synthetic"
) -> dict[str, Any]:
    """A valid config matching the synthetic figures (digits, mixed architectures)."""
    per = [n_clients // len(ARCHS) + (1 if i < n_clients % len(ARCHS) else 0) for i in range(len(ARCHS))]
    clients = [
        {"name": f"{arch}-site", "count": k, "model": {"arch": arch if arch != "resnet" else "cnn"}}
        for arch, k in zip(ARCHS, per, strict=True)
        if k
    ]
    return {
        "name": name,
        "seed": seed,
        "rounds": n_rounds,
        "data": {"dataset": "digits"},
        "clients": clients,
        "strategy": {"name": strategy},
    }


def write_synthetic_run(
    store: Any,
    *,
    n_clients: int = 10,
    n_rounds: int = 20,
    status: str = "finished",
    seed: int = 0,
    strategy: str = "fedavg_by_arch",
    name: str | None = None,
    rounds_done: int | None = None,
    group_id: str | None = None,
    tags: tuple[str, ...] = (),
    late_joiners: int = 0,
    dropout: float = 0.1,
) -> str:
    """Write a plausible finished (or partial) run without training: the roster, every round's
    round and client metrics (accuracy rising with noise, bytes, simulated times with stragglers
    and dropouts), events and the summary. Returns the run id."""
    rng = np.random.default_rng(seed + 1000 * n_clients)
    config = synthetic_config(
        n_clients, n_rounds, strategy, seed, name or f"synthetic {n_clients}x{n_rounds}"
    )
    run_id = store.create_run(config, status="queued", name=config["name"], group_id=group_id, tags=tags)
    join = {cid: (1 if cid < n_clients - late_joiners else max(2, n_rounds // 3)) for cid in range(n_clients)}
    clients = []
    for cid in range(n_clients):
        arch = ARCHS[cid % len(ARCHS)]
        n_params = int(rng.integers(5_000, 200_000))
        clients.append(
            {
                "client_id": cid,
                "name": f"{arch}-site-{cid + 1}",
                "arch": arch,
                "model": {"arch": arch},
                "n_params": n_params,
                "flops": n_params * 2,
                "n_train": int(rng.integers(50, 400)),
                "n_test": int(rng.integers(10, 100)),
                "label_counts": [int(x) for x in rng.integers(0, 40, 10)],
                "device": "cpu",
                "tier": TIERS[cid % len(TIERS)],
                "join_round": join[cid],
                "preprocessing": "none",
                "optimizer": "sgd",
                "lr": 0.05,
                "epochs": 1,
                "batch_size": 32,
            }
        )
    store.write_clients(run_id, clients)
    store.update_run(run_id, status="running", started_at=time.time())
    skill = rng.uniform(0.6, 0.95, n_clients)
    speed = np.array([{"phone": 4.0, "laptop": 1.5, "edge": 6.0, "server": 0.5}[c["tier"]] for c in clients])
    cum = {"bytes_up": 0.0, "bytes_down": 0.0, "wall_s": 0.0, "sim_time_s": 0.0}
    done = n_rounds if rounds_done is None else rounds_done
    summary: dict[str, float] = {}
    for rnd in range(1, done + 1):
        progress = 1 - np.exp(-rnd / max(3, n_rounds / 5))
        per_client: dict[int, dict[str, float]] = {}
        times = []
        for cid in range(n_clients):
            if join[cid] > rnd:
                continue
            catch = 1 - np.exp(-(rnd - join[cid] + 1) / 3)
            acc = float(np.clip(skill[cid] * progress * (0.7 + 0.3 * catch) + rng.normal(0, 0.02), 0, 1))
            dropped = bool(rng.random() < dropout)
            t = float(speed[cid] * rng.uniform(0.8, 1.6))
            times.append(0.0 if dropped else t)
            per_client[cid] = {
                "selected": 1.0,
                "completed": 0.0 if dropped else 1.0,
                "status": 2.0 if dropped else 0.0,
                "online": 1.0,
                "bytes_up": 0.0 if dropped else 4.0 * clients[cid]["n_params"],
                "bytes_down": 4.0 * clients[cid]["n_params"],
                "local_acc": acc,
                "local_loss": float(2.3 * (1 - acc)),
                "global_acc": acc - 0.05,
                "global_loss": float(2.3 * (1.05 - acc)),
                "train_loss": float(2.0 * (1 - acc)),
                "sim_compute_s": 0.8 * t,
                "sim_transfer_s": 0.2 * t,
                "sim_total_s": t,
            }
        accs = np.array([m["local_acc"] for m in per_client.values()])
        kept = [m for m in per_client.values() if m["completed"]]
        rm = {
            "server_acc": float(accs.mean() + 0.02),
            "server_loss": float(2.3 * (1 - accs.mean())),
            "local_acc_mean": float(accs.mean()),
            "local_acc_wmean": float(accs.mean()),
            "local_acc_std": float(accs.std()),
            "local_acc_worst10": float(np.sort(accs)[: max(1, len(accs) // 10)].mean()),
            "local_acc_best": float(accs.max()),
            "global_acc_mean": float(accs.mean() - 0.05),
            "local_loss_mean": float(2.3 * (1 - accs.mean())),
            "train_loss_mean": float(2.0 * (1 - accs.mean())),
            "n_selected": float(len(per_client)),
            "n_completed": float(len(kept)),
            "bytes_up": float(sum(m["bytes_up"] for m in kept)),
            "bytes_down": float(sum(m["bytes_down"] for m in per_client.values())),
            "wall_s": float(rng.uniform(0.5, 1.5)),
            "sim_round_s": float(max(times) if times else 0.0),
        }
        for k in ("bytes_up", "bytes_down", "wall_s"):
            cum[k] += rm[k]
            rm[f"cum_{k}"] = cum[k]
        cum["sim_time_s"] += rm["sim_round_s"]
        rm["sim_time_s"] = cum["sim_time_s"]
        events = [
            ("warning", f"{clients[c]['name']} dropped out")
            for c, m in per_client.items()
            if not m["completed"]
        ][:3]
        store.write_round(run_id, rnd, rm, per_client, events)
        summary = rm
    store.update_run(
        run_id,
        status=status,
        finished_at=time.time() if status not in ("running", "queued") else None,
        summary=dict(summary),
    )
    return run_id


def _timed(at_factory: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        at = at_factory()
        t0 = time.perf_counter()
        at.run()
        out.append(time.perf_counter() - t0)
        if at.exception:
            raise RuntimeError(f"page raised: {at.exception[0].value}")
        errors = [e.value for e in at.error]
        if errors:
            raise RuntimeError(f"page showed errors: {errors}")
    return out


def browser_times(home: Path, big: str, repeats: int) -> dict[str, list[float]]:
    """Seconds from navigation until the page is drawn in headless Chromium (script finished, table
    or charts on screen), for the Runs page and the big run's Results tabs."""
    out: dict[str, list[float]] = {}
    flags = ["--server.headless", "true", "--server.fileWatcherType", "none"]
    with (
        serving(home, flags=flags, timeout=120) as server,
        chromium_page(default_timeout=None, failure_dir=home) as page,
    ):
        url = server.url
        idle = (
            "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
            " return !w || !w.innerText.includes('Running'); }"
        )

        def ready(selector: str, t0: float) -> float:
            page.wait_for_timeout(50)
            page.wait_for_function(idle, timeout=60_000)
            page.locator(selector).first.wait_for(timeout=60_000)
            return time.perf_counter() - t0

        def reload(path: str, selector: str) -> float:
            t0 = time.perf_counter()
            page.goto(f"{url}/{path}")
            return ready(selector, t0)

        def navigate(title: str, selector: str) -> float:
            t0 = time.perf_counter()
            page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
            return ready(selector, t0)

        table, chart = "[data-testid='stDataFrame'] canvas", "[data-testid='stPlotlyChart'] .main-svg"
        reload(f"results?run={big}", chart)  # warm up: imports, the run manager, plotly.js, caches
        out["browser: runs page (sidebar click)"] = []
        out["browser: results page (sidebar click)"] = []
        for _ in range(repeats):
            out["browser: runs page (sidebar click)"].append(navigate("Runs", table))
            out["browser: results page (sidebar click)"].append(navigate("Results", chart))
        out["browser: runs page (full reload)"] = [reload("runs", table) for _ in range(repeats)]
        out["browser: results page (full reload)"] = [
            reload(f"results?run={big}", chart) for _ in range(repeats)
        ]
    return out


def _cpu_s(pids: set[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux ``/proc``; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.0


def _children(root: int) -> set[int]:
    """``root``'s descendant processes (Linux ``/proc``)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(parts[1]), []).append(int(stat.parent.name))
    out, todo = set(), [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


PAGES = [
    ("Home", "FedMosaic"),
    ("Data", "Data"),
    ("Clients", "Clients"),
    ("Launch", "Launch"),
    ("Advisor", "Advisor"),
    ("Runs", "Runs"),
    ("Results", None),
    ("Compare", "Compare runs"),
    ("Predict", "Predict"),
    ("Catalog", "Catalog"),
]


def live_times(home: Path, repeats: int, isolation: str, rounds: int = 300) -> dict[str, list[float]]:
    """Seconds to open each page (sidebar click) and to reload pages while two runs train and a
    third waits, in headless Chromium (see the module docstring)."""
    import threading
    import urllib.request

    from engine.tracking.storage import Store

    server = start_server(
        home,
        env={"FEDMOSAIC_WORKERS": "2", "FEDMOSAIC_ISOLATION": isolation},
        drop=("OMP_NUM_THREADS", "FEDMOSAIC_THREADS"),  # the app as a user starts it
        flags=["--server.headless", "true"],
        log=home / "server.log",
        timeout=120,
    )
    proc, url = server.proc, server.url
    out: dict[str, list[float]] = {}
    store = Store(home / "bench.db")
    console: list[str] = []  # the browser's own log: "disconnected from server" is written there
    try:
        stalls: list[float] = []  # how long the server took to answer its health check, every 0.25 s
        probing = threading.Event()

        def probe() -> None:
            while not probing.is_set():
                t0 = time.perf_counter()
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=60).read()
                except OSError:
                    pass
                stalls.append(time.perf_counter() - t0)
                probing.wait(0.25)

        threading.Thread(target=probe, daemon=True).start()
        with chromium_page(default_timeout=120_000, failure_dir=home) as page:
            page.on("console", lambda msg: console.append(msg.text))
            idle = (
                "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
                " return !w || !w.innerText.includes('Running'); }"
            )

            def ready(heading: str | None, t0: float) -> float:
                page.wait_for_timeout(50)
                page.wait_for_function(idle, timeout=120_000)
                target = (
                    page.get_by_role("heading", name=heading).first
                    if heading
                    else page.locator(
                        "[data-testid='stMainBlockContainer'] h1, [data-testid='stMainBlockContainer'] h2"
                    ).first
                )
                target.wait_for(timeout=120_000)
                return time.perf_counter() - t0

            browser_pids = _children(os.getpid()) - {proc.pid} - _children(proc.pid)
            cpu: dict[str, list[float]] = {}  # CPU seconds of one action: the server's, the browser's

            def measured(name: str | None, action: Any, heading: str | None) -> float:
                before = (_cpu_s({proc.pid}), _cpu_s(browser_pids))
                t0 = time.perf_counter()
                action()
                took = ready(heading, t0)
                if name:
                    after = (_cpu_s({proc.pid}), _cpu_s(browser_pids))
                    cpu.setdefault(f"{name} · server CPU s", []).append(after[0] - before[0])
                    cpu.setdefault(f"{name} · browser CPU s", []).append(after[1] - before[1])
                return took

            def click(title: str, heading: str | None, name: str | None = None) -> float:
                link = page.locator("[data-testid='stSidebarNav'] a", has_text=title).first
                return measured(name, link.click, heading)

            def reload(path: str, heading: str | None, name: str | None = None) -> float:
                return measured(name, lambda: page.goto(f"{url}/{path}"), heading)

            # launch three runs of the quick-start design from the Launch page
            reload("launch", "Launch")
            rounds_box = page.get_by_label("Rounds", exact=True)
            rounds_box.fill(str(rounds))
            rounds_box.press("Enter")
            page.wait_for_function(idle)
            seeds = page.get_by_label("Seeds", exact=True)
            seeds.fill("0-2")
            seeds.press("Enter")
            page.wait_for_function(idle)
            page.locator(".st-key-launch-go button").click()
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                statuses = [r["status"] for r in store.list_runs()]
                if statuses.count("running") >= 2:
                    break
                time.sleep(0.5)
            else:
                page.screenshot(path=str(home / "launch.png"))
                raise RuntimeError(f"the runs did not start (statuses {statuses}); see {home / 'launch.png'}")
            live = next(r["id"] for r in store.list_runs() if r["status"] == "running")
            reload("runs", "Runs")  # warm up every page once: imports, caches, plotly.js
            for title, heading in PAGES:
                click(title, heading)
            for _ in range(repeats):
                for title, heading in PAGES:
                    name = f"live: {title} (sidebar click)"
                    out.setdefault(name, []).append(click(title, heading, name))
            for name, path, heading in [
                ("live: Results of a running run (open)", f"results?run={live}", None),
                ("live: Runs (full reload)", "runs", "Runs"),
                ("live: Results (full reload)", f"results?run={live}", None),
                ("live: Home (full reload)", "", "FedMosaic"),
            ]:
                out[name] = [reload(path, heading, name) for _ in range(repeats)]
            out.update(cpu)
            states = [r["status"] for r in store.list_runs()]
            out["_runs_while_measured"] = [float(states.count("running")), float(states.count("queued"))]
        probing.set()
        out["live: server health check answer (every 0.25 s)"] = stalls
    finally:
        for r in store.list_runs():
            if r["status"] in ("queued", "running"):
                store.request_cancel(r["id"])
        server.stop(wait=30)
    text = (home / "server.log").read_text(errors="replace")
    out["_disconnects"] = [
        float(
            text.count("disconnected from server")
            + sum("disconnected from server" in line for line in console)
        )
    ]
    return out


def _live(home: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    print(f"load average before the live part: {os.getloadavg()[0]:.2f}", flush=True)
    live = live_times(home, args.repeats, args.isolation)
    counts = live.pop("_runs_while_measured")
    disconnects = live.pop("_disconnects")[0]
    print(
        f"(live: {counts[0]:.0f} running and {counts[1]:.0f} queued at the end; 'disconnected' lines in the "
        f"server log: {disconnects:.0f}; isolation: {args.isolation}; load average after: "
        f"{os.getloadavg()[0]:.2f})",
        flush=True,
    )
    return live


def _print_live(home: Path, args: argparse.Namespace) -> int:
    live = _live(home, args)
    summary = {
        k: {"median_s": round(statistics.median(v), 3), "max_s": round(max(v), 3), "n": len(v)}
        for k, v in live.items()
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{'page':<44}{'median s':>10}{'max s':>10}{'n':>4}")
        for k, v in summary.items():
            print(f"{k:<44}{v['median_s']:>10.3f}{v['max_s']:>10.3f}{v['n']:>4}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--browser",
        action="store_true",
        help="also time the pages in headless Chromium (needs /usr/bin/chromium and playwright)",
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="time the pages in Chromium while two runs train and a third waits (see above)",
    )
    parser.add_argument(
        "--live-only",
        action="store_true",
        help="--live without the server-side renders (and without the 500 synthetic runs)",
    )
    parser.add_argument(
        "--isolation",
        default="process",
        choices=["process", "thread"],
        help="--live: where the app trains its runs",
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    home = Path(tempfile.mkdtemp(prefix="fedmosaic-bench-"))
    os.environ["FEDMOSAIC_HOME"] = str(home)
    os.environ["FEDMOSAIC_DB"] = str(home / "bench.db")
    from streamlit.testing.v1 import AppTest

    from engine.reporting.results import TABS as RESULTS_TABS
    from engine.tracking.storage import Store
    from pages.common.ui import PAGES as SCRIPTS

    store = Store(home / "bench.db")
    if args.live_only:
        return _print_live(home, args)
    t0 = time.perf_counter()
    big = write_synthetic_run(
        store, n_clients=args.clients, n_rounds=args.rounds, name="big run", late_joiners=5
    )
    t_big = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(args.runs - 1):
        write_synthetic_run(
            store,
            n_clients=4,
            n_rounds=3,
            seed=i,
            name=f"run {i}",
            strategy=("fedavg_by_arch", "local", "fedproto")[i % 3],
            tags=(f"batch{i % 5}",),
        )
    t_many = time.perf_counter() - t0

    def page(path: str, tab: str | None = None, **query: str) -> Any:
        def make() -> Any:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
            for k, v in query.items():
                at.query_params[k] = v
            if tab:
                at.session_state["res.tab"] = tab
            at.switch_page(path)
            return at

        return make

    # the first render in a process also pays for imports and the manager's start-up
    _timed(page(SCRIPTS["home"]), 1)
    results = {
        f"runs_page_{args.runs}": _timed(page(SCRIPTS["runs"]), args.repeats),
        "home_page": _timed(page(SCRIPTS["home"]), args.repeats),
        "compare_page_4_runs": _timed(page(SCRIPTS["compare"]), args.repeats),
    }
    for tab in RESULTS_TABS:
        name = f"results_{args.clients}x{args.rounds}: {tab}"
        results[name] = _timed(page(SCRIPTS["results"], tab=tab, run=big), args.repeats)
    if args.browser:
        results.update(browser_times(home, big, args.repeats))
    if args.live:
        results.update(_live(home, args))
    summary = {
        k: {"median_s": round(statistics.median(v), 3), "max_s": round(max(v), 3)} for k, v in results.items()
    }
    rows = store.db.execute("SELECT COUNT(*) FROM client_metrics WHERE run_id = ?", [big]).fetchone()[0]
    summary["setup"] = {
        "write_big_run_s": round(t_big, 1),
        "big_run_client_metric_rows": rows,
        f"write_{args.runs - 1}_runs_s": round(t_many, 1),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{'page':<44}{'median s':>10}{'max s':>10}")
        for k, v in summary.items():
            if "median_s" in v:
                print(f"{k:<44}{v['median_s']:>10.3f}{v['max_s']:>10.3f}")
        print(f"(setup: {summary['setup']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
