"""The engine-overhead work in Flower 1.42's simulation engine (Ray backend), for a side-by-side.

Same work as ``bench/engine_overhead.py`` (its ``CONFIG``): 10 clients on digits, Dirichlet(0.3),
the SAME client splits (built by ``engine.data.build``, as the hand loop does), the hand loop's
MLP (64-128-64-10) with the same initialisation (``torch.manual_seed(0)``), SGD lr 0.05 momentum
0.9, 2 local epochs, batch 32, FedAvg weighted by sample counts, and the global model evaluated on
the global test set after every round (Flower's centralised ``evaluate_fn``; no client-side
evaluation). Flower API used: the Message API -- ``ServerApp`` with ``@app.main()`` running
``flwr.serverapp.strategy.FedAvg.start``, ``ClientApp`` with ``@app.train()`` -- launched with
``flwr.simulation.run_simulation`` (Ray backend, ``--cpus`` CPUs for Ray, default 2, each
client actor reserving ``--client-cpus`` CPUs, default 1, so two actors train in parallel; one
torch thread in every process). ``run_simulation`` is flagged deprecated in 1.42 in favour of
the ``flwr run`` CLI, which runs the same simulation runtime behind a detached local SuperLink
daemon on fixed ports; the in-process call is used here so that one process does all the work
and its start-to-exit time can be measured. Telemetry is turned off (FLWR_TELEMETRY_ENABLED=0).

Measured (:func:`measure`):

* whole process: wall time of ``python -m bench.flower_side --child`` from spawn to exit, as a
  user would run it (interpreter start, imports, data split, Ray start, the rounds, shutdown);
* in-process: the child's own time after its imports, up to ``run_simulation`` returning;
* inside the loop: from the end of the initial (round-0) central evaluation to the end of the
  last round's central evaluation, timestamps taken by the ``evaluate_fn``. Before the strategy
  starts, the ServerApp sends one ``query`` message to every node (the ClientApp loads torch and
  the splits): Ray's start and actor spawning are setup, kept out of the loop as the hand loop
  keeps its data split out (without it, round 1 would absorb ~15 s of Ray start-up here);
  ``ray_ready_s`` is that setup, from the ServerApp's start to the last warm-up reply;
* the final global accuracy.

Flower lives in its own venv so the project's stays untouched::

    python3 -m venv /tmp/flwr-venv
    /tmp/flwr-venv/bin/pip install torch==2.13.0            # pin: an unpinned torch pulls CUDA
    /tmp/flwr-venv/bin/pip install "flwr[simulation]==1.42.0"
    # from the repository root: engine + its dependencies
    /tmp/flwr-venv/bin/pip install -e . "torch==2.13.0"

Run (from the repository root)::

    /tmp/flwr-venv/bin/python -m bench.flower_side [--rounds 30] [--repeats 1]
    python -m bench.engine_overhead --flower /tmp/flwr-venv/bin/python   # full side-by-side

Without flwr installed it prints a message and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT_TAG = "FLOWER_SIDE_RESULT "
NO_FLWR = "flwr is not installed in {python}; skipping the Flower side (see bench/flower_side.py)."

_CLIENT_DATA: dict[str, object] = {}  # per client process: the splits file, loaded once


def _make_model():
    from torch import nn

    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def _client_split(msg, context):
    """This node's (x, y), from the splits file named in the message config (loaded once per process)."""
    import torch

    torch.set_num_threads(1)
    path = str(msg.content["config"]["data-path"])
    if path not in _CLIENT_DATA:
        _CLIENT_DATA[path] = torch.load(path)
    return _CLIENT_DATA[path]["train"][int(context.node_config["partition-id"])]


def _warm(msg, context):
    """ClientApp query: load torch and the splits before the round loop (setup, as in the hand loop)."""
    from flwr.app import Message, MetricRecord, RecordDict

    _client_split(msg, context)
    return Message(content=RecordDict({"metrics": MetricRecord({"ready": 1})}), reply_to=msg)


def _train(msg, context):
    """ClientApp train: 2 local epochs of SGD on this node's split; reply weights + sample count."""
    import torch
    import torch.nn.functional as F
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

    cfg = msg.content["config"]
    pid = int(context.node_config["partition-id"])
    x, y = _client_split(msg, context)
    local = _make_model()
    local.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    opt = torch.optim.SGD(local.parameters(), lr=float(cfg["lr"]), momentum=float(cfg["momentum"]))
    g = torch.Generator().manual_seed(1000 * int(cfg["server-round"]) + pid)
    bs = int(cfg["batch-size"])
    loss = torch.zeros(())
    for _ in range(int(cfg["epochs"])):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), bs):
            idx = perm[i : i + bs]
            opt.zero_grad()
            loss = F.cross_entropy(local(x[idx]), y[idx])
            loss.backward()
            opt.step()
    metrics = MetricRecord({"num-examples": len(y), "train-loss": float(loss.detach())})
    content = RecordDict({"arrays": ArrayRecord(local.state_dict()), "metrics": metrics})
    return Message(content=content, reply_to=msg)


def _child(rounds: int, cpus: int, client_cpus: float, root: Path) -> None:
    """One Flower simulation in this process; prints a RESULT_TAG json line at the end."""
    t0 = time.perf_counter()
    try:
        import flwr  # noqa: F401
    except ImportError:
        print(NO_FLWR.format(python=sys.executable))
        return
    import torch
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation

    from bench.engine_overhead import CONFIG
    from engine.config import parse_config
    from engine.data import build

    t_imported = time.perf_counter()
    torch.set_num_threads(1)
    cfg = parse_config({**CONFIG, "rounds": rounds})
    roster = cfg.roster()
    fed = build(cfg.data, [c.preprocessing for c in roster], [None] * len(roster), cfg.seed, root)
    n_clients = len(fed.clients)
    client = CONFIG["clients"][0]
    tmp = tempfile.TemporaryDirectory(prefix="flower-side-")
    data_path = Path(tmp.name) / "splits.pt"
    torch.save({"train": [(c.train.x, c.train.y) for c in fed.clients]}, data_path)

    stamps: dict[int | str, float] = {}
    accs: dict[int, float] = {}

    def central_eval(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model = _make_model()
        model.load_state_dict(arrays.to_torch_state_dict())
        with torch.no_grad():
            acc = float((model(fed.global_test.x).argmax(1) == fed.global_test.y).float().mean())
        accs[server_round] = acc
        stamps[server_round] = time.perf_counter()
        return MetricRecord({"accuracy": acc})

    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        # Setup outside the loop: wait for the nodes, then one query to every node so that Ray's
        # actors are up with torch imported and the splits loaded before round 1 starts.
        stamps["server-start"] = time.perf_counter()
        while len(node_ids := list(grid.get_node_ids())) < n_clients:
            time.sleep(0.01)
        warm = ConfigRecord({"data-path": str(data_path)})
        replies = grid.send_and_receive(
            [
                Message(RecordDict({"config": warm}), dst_node_id=nid, message_type=MessageType.QUERY)
                for nid in node_ids
            ]
        )
        if any(r.has_error() for r in replies):
            raise RuntimeError(f"warm-up failed: {[r.error.reason for r in replies if r.has_error()]}")
        stamps["warm"] = time.perf_counter()
        torch.manual_seed(0)  # the hand loop's initial global model
        strategy = FedAvg(
            fraction_train=1.0,
            fraction_evaluate=0.0,
            min_train_nodes=n_clients,
            min_available_nodes=n_clients,
        )
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(_make_model().state_dict()),
            num_rounds=rounds,
            evaluate_fn=central_eval,
            train_config=ConfigRecord(
                {
                    "lr": float(client["lr"]),
                    "momentum": float(client["momentum"]),
                    "epochs": int(client["epochs"]),
                    "batch-size": int(client["batch_size"]),
                    "data-path": str(data_path),
                }
            ),
        )

    # By reference (bench.flower_side, not __main__'s copy) so that Ray's actors import them.
    from bench.flower_side import _train as train
    from bench.flower_side import _warm as warm_up

    client_app = ClientApp()
    client_app.train()(train)
    client_app.query()(warm_up)

    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=n_clients,
        backend_name="ray",
        backend_config={
            "init_args": {"num_cpus": cpus, "num_gpus": 0},
            "client_resources": {"num_cpus": client_cpus, "num_gpus": 0.0},
        },
    )
    end = time.perf_counter()
    tmp.cleanup()
    if rounds not in stamps:
        raise SystemExit(
            f"the Flower run did not complete {rounds} rounds (central evaluations: {sorted(accs)})"
        )
    print(
        RESULT_TAG
        + json.dumps(
            {
                "rounds": rounds,
                "in_process_s": end - t_imported,
                "imports_s": t_imported - t0,
                "loop_s": stamps[rounds] - stamps[0],
                "ray_ready_s": stamps["warm"] - stamps["server-start"],
                "acc": accs[rounds],
                "accs": [accs[r] for r in sorted(accs)],
            }
        ),
        flush=True,
    )


def measure(
    python: str | os.PathLike,
    rounds: int,
    cpus: int = 2,
    client_cpus: float = 1,
    root: Path | None = None,
    verbose: bool = False,
) -> dict | None:
    """Run the Flower side once as a subprocess with ``python``; ``None`` where flwr is missing.

    Returns ``whole_s`` (spawn to exit) plus the child's ``in_process_s``, ``loop_s``, ``acc``.
    """
    root = root or Path.home() / ".cache" / "fedmosaic-bench"
    env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH")] if p),
    }
    cmd = [
        str(python),
        "-m",
        "bench.flower_side",
        "--child",
        "--rounds",
        str(rounds),
        "--cpus",
        str(cpus),
        "--client-cpus",
        str(client_cpus),
        "--root",
        str(root),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True)
    whole = time.perf_counter() - t0
    if verbose:
        sys.stderr.write(proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode == 0 and not lines and NO_FLWR.split("{")[0] in proc.stdout:
        return None
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"the Flower side failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return {"whole_s": whole, **json.loads(lines[-1][len(RESULT_TAG) :])}


def flwr_available(python: str | os.PathLike) -> bool:
    probe = subprocess.run([str(python), "-c", "import flwr.simulation"], check=False, capture_output=True)
    return probe.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to Ray")
    parser.add_argument("--client-cpus", type=float, default=1, help="CPUs each client actor reserves")
    parser.add_argument("--python", default=sys.executable, help="interpreter of a venv with flwr")
    parser.add_argument("--root", type=Path, default=Path.home() / ".cache" / "fedmosaic-bench")
    parser.add_argument("--verbose", action="store_true", help="show the child's Flower/Ray log")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.rounds, args.cpus, args.client_cpus, args.root)
        return
    if not flwr_available(args.python):
        print(NO_FLWR.format(python=args.python))
        return
    runs = [
        measure(args.python, args.rounds, args.cpus, args.client_cpus, args.root, args.verbose)
        for _ in range(args.repeats)
    ]
    med = {k: statistics.median(r[k] for r in runs) for k in ("whole_s", "in_process_s", "loop_s", "acc")}
    print(
        "| side | whole process (s) | in-process, after imports (s) | inside the loop (s) | "
        "final global accuracy |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| flower {_flwr_version(args.python)} (ray, {args.cpus} CPUs, {args.client_cpus:g} per client) | "
        f"{med['whole_s']:.2f} | {med['in_process_s']:.2f} | {med['loop_s']:.2f} | {med['acc']:.3f} |"
    )
    print(
        f"\n{args.rounds} rounds, median of {args.repeats}; accuracy per round: "
        + ", ".join(f"{a:.3f}" for a in runs[-1]["accs"][1:])
    )


def _flwr_version(python: str | os.PathLike) -> str:
    out = subprocess.run(
        [str(python), "-c", "import flwr; print(flwr.__version__)"],
        check=False,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    main()
