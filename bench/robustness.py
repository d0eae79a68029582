"""Accuracy and attack success against each defence: the table of ``docs/robustness.md``.

Every scenario is ten clients on digits (8x8 handwritten digits; 1,797 images) of which some are
compromised, run without a defence, with each defence that applies, and once with the same
clients honest (the *clean* reference), over seeds. Figures per run:

- the app's headline (:func:`engine.core.metrics.headline`): the primary metric, accuracy, on each
  client's own test data, mean over clients, at each client's best validation round;
- ``server_acc`` where the strategy has a server model (the global model on the global test set);
- the backdoor's attack success rate (``backdoor_asr``): the share of the global test set's
  samples of other classes that the honest clients' models assign to the target class once the
  trigger is applied (final round).

The label-flipping scenario is the slow test's setup (``tests/test_robustness.py``): two of ten
clients flip every label and train 5 local epochs where the honest ones train 2 (an attacker does
not keep to the protocol's settings). The backdoor scenario is the "one compromised site"
template's (``examples/templates/compromised_site.json``).

Run: ``python -m bench.robustness [--seeds 0 1 2] [--jobs 2] [--only backdoor ...] [--out docs/robustness.md]
[--json rows.json]``; with ``--only`` and an existing ``--json`` file, the other scenarios' rows are
taken from it, so the tables stay whole.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench.robustness: start -->", "<!-- bench.robustness: end -->"
"""Markers of the generated tables in ``docs/robustness.md``."""
SGD = {
    "model": {"arch": "mlp", "hidden": 32},
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "epochs": 2,
    "batch_size": 32,
}
IID = {"dataset": "digits", "partition": {"method": "iid"}}
WEIGHT_DEFENCES = (
    "none",
    "median",
    {"name": "trimmed_mean", "trim": 0.2},
    {"name": "krum", "attackers": 2},
    {"name": "multi_krum", "attackers": 2},
    "norm_clip",
)
KNOWLEDGE_DEFENCES = (
    "none",
    "median",
    {"name": "trimmed_mean", "trim": 0.2},
    {"name": "multi_krum", "attackers": 2},
    "norm_clip",
)


def roster(
    n_bad: int,
    attack: Any,
    bad_overrides: dict[str, Any] | None = None,
    base: dict[str, Any] = SGD,
    n: int = 10,
) -> list[dict[str, Any]]:
    bad = {**base, **(bad_overrides or {}), "adversary": attack}
    return [{"name": "site", "count": n - n_bad, **base}, {"name": "compromised", "count": n_bad, **bad}]


MLP = {
    "model": {"arch": "mlp", "hidden": 64},
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "epochs": 2,
    "batch_size": 32,
}
CNN = {
    "model": {"arch": "cnn", "channels": 16},
    "optimizer": "adam",
    "lr": 0.003,
    "epochs": 2,
    "batch_size": 32,
}
GRU = {
    "model": {"arch": "gru", "hidden": 64},
    "optimizer": "adam",
    "lr": 0.005,
    "epochs": 2,
    "batch_size": 32,
}


def mixed(attack: Any) -> list[dict[str, Any]]:
    """Ten clients of three architectures (4 MLP, 3 CNN, 3 GRU); one CNN and one GRU compromised."""
    return [
        {"name": "mlp", "count": 4, **MLP},
        {"name": "cnn", "count": 2, **CNN},
        {"name": "gru", "count": 2, **GRU},
        {"name": "cnn-compromised", **CNN, "adversary": attack},
        {"name": "gru-compromised", **GRU, "adversary": attack},
    ]


def widths(attack: Any) -> list[dict[str, Any]]:
    """HeteroFL's ten clients: 4 at full width, 3 at half, 3 at a quarter; one full-width one compromised."""
    full = {**SGD, "model": {"arch": "mlp", "hidden": 64}}
    return [
        {"name": "full", "count": 3, **full},
        {"name": "half", "count": 3, **{**full, "model": {**full["model"], "width": 0.5}}},
        {"name": "quarter", "count": 3, **{**full, "model": {**full["model"], "width": 0.25}}},
        {"name": "full-compromised", **full, "adversary": attack},
    ]


def template() -> dict[str, Any]:
    return json.loads((ROOT / "examples" / "templates" / "compromised_site.json").read_text())


def scenarios() -> dict[str, dict[str, Any]]:
    """Name -> ``{"config", "defences", "what"}``; the config's roster holds the attackers."""
    base = {"seed": 0, "rounds": 20, "checkpoint_every": 0, "data": IID, "strategy": {"name": "fedavg"}}
    return {
        "label_flip": {
            "what": "FedAvg; 2 of 10 clients flip every label (c -> 9 - c) and train 5 local epochs",
            "defences": WEIGHT_DEFENCES,
            "config": {**base, "clients": roster(2, "label_flip", {"epochs": 5})},
        },
        "sign_flip": {
            "what": "FedAvg; 2 of 10 clients send their update reversed",
            "defences": WEIGHT_DEFENCES,
            "config": {**base, "clients": roster(2, "sign_flip")},
        },
        "scaled_update": {
            "what": "FedAvg; 1 of 10 clients sends its honest update times 10",
            "defences": WEIGHT_DEFENCES,
            "config": {**base, "clients": roster(1, "scaled_update")},
        },
        "gaussian_noise": {
            "what": "FedAvg; 2 of 10 clients send Gaussian noise (std 0.5) instead of their update",
            "defences": WEIGHT_DEFENCES,
            "config": {**base, "clients": roster(2, "gaussian_noise")},
        },
        "backdoor": {
            "what": "the 'one compromised site' template: FedAvg; 1 of 10 sites adds a 3x3 bright patch to "
            "half its images, labels them 0 and boosts its update 3x",
            "defences": WEIGHT_DEFENCES,
            "config": template(),
        },
        "poisoned_logits": {
            "what": "FD (per-class logits, personal models) on 4 MLP, 3 CNN and 3 GRU clients; one CNN "
            "and one GRU client send reversed, 3x confident logits",
            "defences": KNOWLEDGE_DEFENCES,
            "config": {
                **base,
                "strategy": {"name": "fd"},
                "data": {"dataset": "digits", "partition": {"method": "dirichlet", "alpha": 0.5}},
                "clients": mixed("poisoned_logits"),
            },
        },
        "poisoned_prototypes": {
            "what": "FedProto (prototypes, personal models) on 4 MLP, 3 CNN and 3 GRU clients; one "
            "CNN and one GRU client send their prototypes times 10",
            "defences": KNOWLEDGE_DEFENCES,
            "config": {
                **base,
                "strategy": {"name": "fedproto"},
                "data": {"dataset": "digits", "partition": {"method": "dirichlet", "alpha": 0.5}},
                "clients": mixed({"attack": "poisoned_prototypes", "mode": "scale"}),
            },
        },
        "heterofl_sign_flip": {
            "what": "HeteroFL on MLPs of width 1, 0.5 and 0.25 (4, 3, 3 clients); one full-width "
            "client sends its update reversed 5x",
            "defences": (
                "none",
                "median",
                {"name": "trimmed_mean", "trim": 0.2},
                {"name": "multi_krum", "attackers": 1},
                "norm_clip",
            ),
            "config": {
                **base,
                "strategy": {"name": "heterofl"},
                "clients": widths({"attack": "sign_flip", "scale": 5}),
            },
        },
    }


def clean(config: dict[str, Any]) -> dict[str, Any]:
    """The same config with every client honest (and training as the honest ones do)."""
    out = copy.deepcopy(config)
    honest = next(c for c in out["clients"] if not c.get("adversary"))
    for c in out["clients"]:
        if c.get("adversary"):
            c.pop("adversary")
            c["epochs"] = honest.get("epochs", 1)
    return out


def run_one(job: tuple[str, str, Any, int, dict[str, Any]]) -> dict[str, Any]:
    """One run; returns its figures."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from engine.config import parse_config
    from engine.core.metrics import headline
    from engine.core.simulation import Simulation
    from engine.robustness.design import defence_label

    scenario, kind, defence, seed, config = job
    cfg = parse_config({**config, "seed": seed, "defence": defence, "checkpoint_every": 0})
    started = time.perf_counter()
    final = Simulation(cfg).run()["final"]
    _, value = headline(final)
    return {
        "scenario": scenario,
        "kind": kind,
        "defence": "no attack" if kind == "clean" else defence_label(cfg.defence),
        "seed": seed,
        "headline": value,
        "server_acc": final.get("server_acc"),
        "asr": final.get("backdoor_asr"),
        "seconds": time.perf_counter() - started,
    }


def jobs(names: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, str, Any, int, dict[str, Any]]]:
    out = []
    for name in names:
        s = scenarios()[name]
        for seed in seeds:
            out.append((name, "clean", "none", seed, clean(s["config"])))
            for d in s["defences"]:
                out.append((name, "attack", d, seed, s["config"]))
    return out


def _fmt(values: list[float | None]) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "—"
    if len(v) == 1:
        return f"{v[0]:.3f}"
    return f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}"


def table(rows: list[dict[str, Any]], name: str) -> str:
    mine = [r for r in rows if r["scenario"] == name]
    order = list(dict.fromkeys(r["defence"] for r in mine))
    has_server = any(r["server_acc"] is not None for r in mine)
    has_asr = any(r["asr"] is not None for r in mine)
    head = (
        ["defence", "accuracy (headline)"]
        + (["server model accuracy"] if has_server else [])
        + (["attack success rate"] if has_asr else [])
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in order:
        rs = [r for r in mine if r["defence"] == d]
        cells = [f"**{d}**" if d == "no attack" else d, _fmt([r["headline"] for r in rs])]
        if has_server:
            cells.append(_fmt([r["server_acc"] for r in rs]))
        if has_asr:
            cells.append(_fmt([r["asr"] for r in rs]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.robustness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=list(scenarios()), default=None)
    parser.add_argument("--out", default=None, help="write the markdown tables here (default: print)")
    parser.add_argument("--json", default=None, help="also write every run's figures as JSON here")
    args = parser.parse_args(argv)
    names = args.only or list(scenarios())
    work = jobs(names, args.seeds)
    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(run_one, work))
    else:
        rows = [run_one(j) for j in work]
    kept: list[dict[str, Any]] = []
    if args.json and Path(args.json).exists() and args.only:  # the other scenarios' rows, measured before
        kept = [r for r in json.loads(Path(args.json).read_text()) if r["scenario"] not in names]
    rows = kept + rows
    wall = time.perf_counter() - started
    parts = [
        f"Measured with `python -m bench.robustness --seeds {' '.join(map(str, args.seeds))}` "
        f"({len(rows)} runs; the last {len(work)} took {wall / 60:.1f} min with {args.jobs} processes "
        f"on a shared machine, load average {load:.1f} at the start; Python {platform.python_version()}). "
        "Mean ± standard deviation over seeds."
    ]
    for name in [n for n in scenarios() if any(r["scenario"] == n for r in rows)]:
        parts.append(f"### {name}\n\n{scenarios()[name]['what']}.\n\n{table(rows, name)}")
    text = "\n\n".join(parts) + "\n"
    if args.out:
        out = Path(args.out)
        old = out.read_text() if out.exists() else ""
        if START in old and END in old:  # a document around the tables: replace only them
            text = old[: old.index(START) + len(START)] + "\n" + text + old[old.index(END) :]
        out.write_text(text)
    else:
        sys.stdout.write(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
