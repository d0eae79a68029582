"""Reproduction harness: FedMosaic on a federation given as a CSV, every strategy, accuracy at
rounds 10 and 20, beside the reference libraries' figures and a hand-written reference loop.

The federation is a pixel CSV with a label column, a client column and a split column (``train`` /
``test`` per row), the way a user brings a federation whose split is fixed (a published benchmark,
a clinical study). FedMosaic reads it as a user would (``data.dataset: csv``, ``image_shape``, a
``natural`` partition on the client column, ``data.split_column``), so every strategy sees the same
clients, the same training rows and the same test rows.

Two rosters, with the reference libraries' optimiser settings (PFLlib/HtFLlib on MNIST: SGD lr
0.005 without momentum, batch 10, 1 local epoch, every client every round, feature width 512):

- **fedavg_cnn**: every client runs the FedAvg CNN (the libraries' ``FedAvgCNN``); every strategy
  that runs one architecture, the personalised ones included. ``local`` and ``centralized`` run on
  it as the floor and the ceiling.
- **mixed**: 4 MLP, 3 CNN, 3 GRU clients; the strategies that mix architectures, on a 10% public
  set drawn from the training rows (FedMD and FedDF need it; ``local`` runs on the same split).
- **cnn_resnet_mlp**: 4 FedAvg CNN, 3 ResNet, 3 MLP clients, no public set: LG-FedAvg, FedProto
  and ``local`` (the roster of the issue's LG-FedAvg comparison with HtFLlib).

Figures: **personal acc** is the sample-weighted accuracy of each client's model on its own test
rows (what PFLlib reports), **global acc** the mean over clients of each client's model on all
clients' test rows together. The **hand-written loop** (:mod:`bench.reference_loop`) runs FedAvg,
local, LG-FedAvg, FedPer, FedRep, FedProto, FD, FML and FedKD in the libraries' protocol (with
FedMosaic's default parameters for each) with their torch-initialised FedAvgCNN on the same rows.
Published or library figures come from a JSON file (``--figures``) and are printed beside ours
with their source; figures measured on other data are labelled so.

MNIST cannot be downloaded here. ``--make digits28`` writes the offline stand-in: scikit-learn's
1,797 digits upscaled to 28x28 (:func:`bench.images.digits28`), dealt to 10 clients by
Dirichlet(0.3), a quarter of each client's rows marked test. ``--make mnist --mnist-dir DIR``
writes the same federation from a user's MNIST IDX files (``--samples`` of the 70,000).

Run::

    python -m bench.peers --make digits28 --csv data/digits28-dir03.csv
    python -m bench.peers --csv data/digits28-dir03.csv --figures bench/peers_figures.json --out docs/peers.md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

SETTINGS = {"optimizer": "sgd", "lr": 0.005, "momentum": 0.0, "batch_size": 10, "epochs": 1}
REP_DIM = 512
ROSTERS: dict[str, list[dict[str, Any]]] = {
    "fedavg_cnn": [{"name": "cnn", "count": 10, "model": {"arch": "fedavg_cnn"}, **SETTINGS}],
    "mixed": [
        {"name": "mlp", "count": 4, "model": {"arch": "mlp", "hidden": 128}, **SETTINGS},
        {"name": "cnn", "count": 3, "model": {"arch": "cnn", "channels": 32}, **SETTINGS},
        {"name": "gru", "count": 3, "model": {"arch": "gru", "hidden": 64}, **SETTINGS},
    ],
    "cnn_resnet_mlp": [
        {"name": "cnn", "count": 4, "model": {"arch": "fedavg_cnn"}, **SETTINGS},
        {"name": "resnet", "count": 3, "model": {"arch": "resnet"}, **SETTINGS},
        {"name": "mlp", "count": 3, "model": {"arch": "mlp", "hidden": 128}, **SETTINGS},
    ],
}
PUBLIC = {"fedavg_cnn": 0.0, "mixed": 0.1, "cnn_resnet_mlp": 0.0}
THIRD = ("local", "lg_fedavg", "fedproto")
"""Strategies also run on the cnn/resnet/mlp roster (the issue's LG-FedAvg comparison)."""
HAND = ("fedavg", "local", "lg_fedavg", "fedper", "fedrep", "fedproto", "fd", "fml", "fedkd")


# ---- making the federation CSV -------------------------------------------------------------------------
def deal(
    labels: np.ndarray, clients: int, alpha: float, test: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Dirichlet(``alpha``) label skew over ``clients`` (each class's rows split by a draw of
    client shares) and a ``test`` share of each client's rows marked test: ``(client, split)``."""
    rng = np.random.default_rng(seed)
    owner = np.empty(len(labels), dtype=int)
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        shares = rng.dirichlet(alpha * np.ones(clients))
        cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
        for k, part in enumerate(np.split(rows, cuts)):
            owner[part] = k
    split = np.array(["train"] * len(labels), dtype=object)
    for k in range(clients):
        rows = rng.permutation(np.flatnonzero(owner == k))
        split[rows[: int(round(test * len(rows)))]] = "test"
    return owner, split


def write_federation(
    path: Path,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    clients: int = 10,
    alpha: float = 0.3,
    test: float = 0.25,
    seed: int = 0,
) -> Path:
    """The federation CSV: ``label, client, split, px0...`` (clients named ``site-00``...)."""
    from bench.images import write_pixel_csv

    owner, split = deal(y.numpy(), clients, alpha, test, seed)
    return write_pixel_csv(path, x, y, {"client": [f"site-{k:02d}" for k in owner], "split": list(split)})


def mnist_images(folder: Path, samples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` images (stratified draw, fixed seed) of a user's MNIST IDX files in ``folder``
    (``train-images-idx3-ubyte[.gz]`` and the other three), scaled to [0, 1]."""
    from engine.data.base import stratified_split
    from engine.data.datasets.vision_files import IDX_FILES, read_idx

    def find(stem: str) -> Path:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
        raise SystemExit(f"{folder} has no {stem}[.gz]; put the four MNIST IDX files there")

    images = np.concatenate([read_idx(find(IDX_FILES[0])), read_idx(find(IDX_FILES[2]))])
    labels = np.concatenate([read_idx(find(IDX_FILES[1])), read_idx(find(IDX_FILES[3]))]).astype(np.int64)
    if samples < len(labels):
        keep, _ = stratified_split(labels, 1 - samples / len(labels), np.random.default_rng(seed))
        images, labels = images[keep], labels[keep]
    return torch.as_tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0, torch.as_tensor(labels)


# ---- reading it back ---------------------------------------------------------------------------------------
def read_federation(path: Path, shape: tuple[int, ...]) -> tuple[list[str], list[Any]]:
    """The CSV's clients (sorted names) and their train/test tensors (for the hand-written loop)."""
    from bench.reference_loop import ClientSplit

    rows: dict[str, dict[str, list]] = {}
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        li, ci, si = header.index("label"), header.index("client"), header.index("split")
        pixels = [i for i, h in enumerate(header) if h.startswith("px")]
        for row in reader:
            entry = rows.setdefault(row[ci], {"train": [], "test": []})
            if row[si] in entry:
                entry[row[si]].append((int(row[li]), [float(row[i]) for i in pixels]))
    names = sorted(rows)
    out = []
    for name in names:
        parts = []
        for role in ("train", "test"):
            ys = torch.tensor([r[0] for r in rows[name][role]], dtype=torch.long)
            xs = torch.tensor([r[1] for r in rows[name][role]], dtype=torch.float32).reshape(-1, *shape)
            parts += [xs, ys]
        out.append(ClientSplit(*parts))
    return names, out


# ---- running -----------------------------------------------------------------------------------------------
def data_section(csv_path: Path, shape: list[int], public: float) -> dict[str, Any]:
    """The config's data section: the CSV read as a user would, its own split honoured."""
    from engine.data.config import DataConfig

    data: dict[str, Any] = {
        "dataset": "csv",
        "path": str(csv_path),
        "target": "label",
        "image_shape": shape,
        "partition": {"method": "natural", "column": "client"},
        "public_fraction": public,
    }
    fields = DataConfig.model_fields
    if "split_column" in fields:
        data["split_column"] = "split"
    else:  # an engine without data.split_column: each client's test rows are drawn at random
        data["test_fraction"] = 0.25
        data["columns"] = {"split": "ignore"}
    if "validation_fraction" in fields:
        data["validation_fraction"] = 0.0  # the libraries train on every training row
    return data


@dataclass
class Row:
    """One strategy on one roster."""

    strategy: str
    roster: str
    source: str = "FedMosaic"
    acc: dict[int, float] = field(default_factory=dict)
    global_acc: dict[int, float] = field(default_factory=dict)
    wall_s: float = float("nan")
    note: str = ""
    by_seed: dict[int, dict[int, float]] = field(default_factory=dict)
    """Personal acc per round, per seed, when the row pools several seeds (``acc`` is their mean)."""


def _round_means(curves: list[dict[int, float]]) -> dict[int, float]:
    """The mean over ``curves`` (round -> figure) at each round every one of them reached."""
    rounds = set.intersection(*(set(c) for c in curves))
    return {k: float(np.mean([c[k] for c in curves])) for k in sorted(rounds)}


def pool(rows: list[tuple[int, Row]]) -> list[Row]:
    """One row per strategy, roster and source over the seeds run: the mean per round over the
    seeds (at the rounds every seed reached), the seeds' own figures in ``by_seed`` and their wall
    time summed."""
    groups: dict[tuple[str, str, str, str], list[tuple[int, Row]]] = {}
    for seed, row in rows:
        groups.setdefault((row.strategy, row.roster, row.source, row.note), []).append((seed, row))
    return [
        Row(
            strategy,
            roster,
            source,
            _round_means([r.acc for _, r in members]),
            _round_means([r.global_acc for _, r in members]),
            float(sum(r.wall_s for _, r in members)),
            note,
            {seed: dict(r.acc) for seed, r in members},
        )
        for (strategy, roster, source, note), members in groups.items()
    ]


def plan(names: list[str]) -> list[tuple[str, str]]:
    """(strategy, roster) pairs: one architecture -> fedavg_cnn; mixing -> mixed; references on both."""
    from engine.strategies import STRATEGIES

    out = []
    for name in names:
        cls = STRATEGIES.get(name)
        if cls.family == "reference":
            out += [(name, "fedavg_cnn"), (name, "mixed")]
            if name in THIRD:
                out.append((name, "cnn_resnet_mlp"))
        elif cls.needs_public:
            out.append((name, "mixed"))
        else:
            out.append((name, "fedavg_cnn"))
            if not cls.same_architecture and name not in ("heterofl",):
                out.append((name, "mixed"))
            if name in THIRD:
                out.append((name, "cnn_resnet_mlp"))
    return out


def run_fedmosaic(
    strategy: str, roster: str, csv_path: Path, shape: list[int], rounds: int, seed: int
) -> Row:
    """One FedMosaic run, evaluated at rounds 10, 20, ..."""
    from engine.access import trusted_paths
    from engine.config import parse_config
    from engine.core.simulation import Simulation

    cfg = {
        "name": f"peers-{strategy}-{roster}",
        "seed": seed,
        "rounds": rounds,
        "eval_every": 10,
        "rep_dim": REP_DIM,
        "checkpoint_every": 0,
        "strategy": {"name": strategy},
        "data": data_section(csv_path, shape, PUBLIC[roster]),
        "clients": ROSTERS[roster],
    }
    start = time.perf_counter()
    with trusted_paths():  # an operator's benchmark reads the file it is given, like the CLI
        sim = Simulation(parse_config(cfg))
        sim.run()
    row = Row(strategy, roster, wall_s=time.perf_counter() - start)
    for record in sim.history:
        if "local_acc_wmean" in record.metrics:
            row.acc[record.round] = record.metrics["local_acc_wmean"]
            row.global_acc[record.round] = record.metrics["global_acc_mean"]
    return row


def hand_options(algorithm: str, shape: list[int], he: bool) -> dict[str, Any]:
    """What the hand-written loop needs to run ``algorithm`` as FedMosaic runs it by default:
    FedMosaic's default parameters (FedRep's ``head_epochs``; the knowledge-sharing strategies'
    ``params``) and, for FML and FedKD, the shared model FedMosaic builds by default written out in
    plain torch (``make_shared``: an MLP at this ``rep_dim``, He-initialised when ``he``, as
    FedMosaic's image models are)."""
    from bench.reference_loop import DEFAULTS, MLP
    from engine.models.base import init_relu_layers, scaled
    from engine.strategies import STRATEGIES

    defaults = STRATEGIES.get(algorithm).Params().model_dump()
    if algorithm == "fedrep":
        return {"head_epochs": defaults["head_epochs"]}
    if algorithm not in DEFAULTS:
        return {}
    options: dict[str, Any] = {"params": {k: v for k, v in defaults.items() if k != "shared_model"}}
    spec = defaults.get("shared_model")
    if spec is not None:
        if spec["arch"] != "mlp":
            raise SystemExit(
                f"the hand-written loop builds an MLP shared model, FedMosaic's default is {spec}"
            )

        def make_shared() -> torch.nn.Module:
            n_in = int(np.prod(shape))
            model = MLP(n_in, 10, scaled(spec["hidden"], spec["width"]), spec["depth"], REP_DIM)
            if he:
                init_relu_layers(model)
            return model

        options["make_shared"] = make_shared
    return options


def run_hand(
    algorithm: str, clients: list[Any], shape: list[int], rounds: int, seed: int, init: str = "torch"
) -> Row:
    """The hand-written loop with the libraries' FedAvgCNN, torch-initialised as they are (``init``
    ``torch``) or He-initialised as FedMosaic's image models are (``he``: the same loop, so the
    difference from FedMosaic's figures is the engine's, not the initialisation's), with FedMosaic's
    default parameters for the algorithm (:func:`hand_options`)."""
    from bench.images import ReferenceFedAvgCNN
    from bench.reference_loop import run
    from engine.models.base import init_relu_layers

    def make() -> torch.nn.Module:
        model = ReferenceFedAvgCNN(shape[0], 10, dim)
        if init.startswith("he"):
            init_relu_layers(model)
        return model

    with torch.no_grad():
        dim = (
            ReferenceFedAvgCNN(shape[0])
            .conv2(ReferenceFedAvgCNN(shape[0]).conv1(torch.zeros(1, *shape)))
            .numel()
        )
    start = time.perf_counter()
    curve = run(
        algorithm,
        clients,
        make,
        rounds=rounds,
        seed=seed,
        same_start=init != "he-own",
        **hand_options(algorithm, shape, init.startswith("he")),  # FedMosaic's defaults: one algorithm
        **{k: SETTINGS[k] for k in ("lr", "batch_size", "epochs")},
    )
    source = "hand-written loop" + {"he": ", He init", "he-own": ", He init per client"}.get(init, "")
    row = Row(algorithm, "fedavg_cnn", source=source, wall_s=time.perf_counter() - start)
    row.acc = {r: curve[r - 1] for r in range(10, rounds + 1, 10)}
    return row


# ---- the page ----------------------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.3f}"


def targets(rows: list[Row], figures: dict[str, Any]) -> list[str]:
    """Issue #15's two targets, judged on the rows measured: each personalised strategy within 1
    point of a reference figure at round 10 (a given figure for the same strategy and roster, else
    the hand-written loop's on the same rows; a given figure is judged only when it says
    ``"same_data": true``), and FedMD and FedDF on the mixed roster at least 15 points of global
    accuracy above ``local``."""
    from bench.personalised import METHODS

    ours = {(r.strategy, r.roster): r for r in rows if r.source == "FedMosaic" and not r.note}
    hand = [r for r in rows if r.source != "FedMosaic"]
    given = {
        (f["strategy"], f.get("roster", "fedavg_cnn")): f
        for f in figures.get("rows", [])
        if "@10" in f.get("metric", "")
    }
    lines = [
        "## Issue #15's targets on this federation",
        "",
        "| target | strategy | roster | FedMosaic | reference | difference (points) | met |",
        "|---|" + "---|" * 6,
    ]

    def line(
        target: str,
        row: Row,
        value: float | None,
        ref: float,
        ref_text: str,
        need: float,
        comparable: bool = True,
        per_seed: list[float] | None = None,
    ) -> None:
        if value is None:
            lines.append(f"| {target} | {row.strategy} | {row.roster} | not measured | {ref_text} | — | — |")
            return
        diff = 100 * (value - ref)
        met = ("yes" if diff >= need else "no") if comparable else "not judged: other data"
        text = f"{diff:+.1f}"
        if per_seed:
            text += " (by seed: " + ", ".join(f"{d:+.1f}" for d in per_seed) + ")"
        lines.append(
            f"| {target} | {row.strategy} | {row.roster} | {value:.3f} | {ref_text} | {text} | {met} |"
        )

    for name in ("fedavg", "local", *METHODS):
        for (strategy, roster), row in sorted(ours.items()):
            if strategy != name or roster == "mixed":
                continue
            refs = []
            if (strategy, roster) in given:
                f = given[(strategy, roster)]
                refs.append(
                    (
                        f["value"],
                        f"{f['value']:.3f} ({f['source'].split(' (')[0].split(',')[0]})",
                        bool(f.get("same_data", False)),
                        None,
                    )
                )
            for h in hand:
                if roster == "fedavg_cnn" and h.strategy == strategy and 10 in h.acc:
                    refs.append((h.acc[10], f"{h.acc[10]:.3f} ({h.source}, these rows)", True, h))
            if not refs:
                acc = row.acc.get(10)
                lines.append(
                    f"| personal acc @10 within 1 point of the reference | {strategy} | {roster} | "
                    f"{fmt(acc)} | no reference figure given | — | not judged |"
                )
            for ref, text, comparable, h in refs:
                seeds = sorted(set(row.by_seed) & set(h.by_seed)) if h is not None else []
                diffs = [100 * (row.by_seed[k][10] - h.by_seed[k][10]) for k in seeds]
                line(
                    "personal acc @10 within 1 point of the reference",
                    row,
                    row.acc.get(10),
                    ref,
                    text,
                    -1.0,
                    comparable,
                    diffs if len(diffs) > 1 else None,
                )
    local = ours.get(("local", "mixed"))
    for name in ("fedmd", "feddf"):
        row = ours.get((name, "mixed"))
        if row is None or local is None or 10 not in local.global_acc:
            lines.append(
                f"| global acc @10 at least 15 points above local | {name} | mixed | not measured | | — | — |"
            )
            continue
        line(
            "global acc @10 at least 15 points above local",
            row,
            row.global_acc.get(10),
            local.global_acc[10],
            f"{local.global_acc[10]:.3f} (local, same roster and rows)",
            15.0,
        )
    missing = [m for m in ("fedavg", "local", *METHODS) if not any(s == m and r != "mixed" for s, r in ours)]
    if missing:
        lines += [
            "",
            f"Not run here, so not judged: {', '.join(missing)} (the harness was given --runs; every "
            "strategy runs without it).",
        ]
    lines += [
        "",
        "Personalised strategies without a reference figure on their roster and round are not judged "
        "here. A figure measured on MNIST is not comparable number for number with one on this "
        "federation; the hand-written loop's is (same rows, the libraries' protocol and initialisation).",
        "",
    ]
    return lines


def report(
    rows: list[Row],
    figures: dict[str, Any],
    args: argparse.Namespace,
    command: str,
    elapsed: float,
    split_honoured: bool,
) -> str:
    rounds = list(range(10, args.rounds + 1, 10))
    seeds_text = (
        f"Seed {args.seed[0]}"
        if len(args.seed) == 1
        else f"Seeds {', '.join(map(str, args.seed))}: every figure is the mean over them"
    )
    lines = [
        "# FedMosaic beside the reference libraries",
        "",
        "Generated by:",
        "",
        "```",
        command,
        "```",
        "",
        f"Federation: `{args.csv}` ({args.describe}). Every client every round, SGD lr 0.005 without "
        f"momentum, batch 10, 1 local epoch, feature width (rep_dim) {REP_DIM}: the reference libraries' "
        f"settings. {seeds_text}. (The digits28 stand-in, scikit-learn's 1,797 digits upscaled to "
        f"28x28 and dealt by Dirichlet(0.3) to 10 clients with a quarter of each client's rows marked "
        f"test, is written by `.venv/bin/python -m bench.peers --make digits28 --csv PATH`.)",
        "",
        (
            "Each client's train and test rows are the CSV's own (`data.split_column`)."
            if split_honoured
            else "This engine has no `data.split_column` yet: each client's test rows were drawn at random "
            "(25%); the hand-written loop uses the CSV's split."
        ),
        "",
        "- **personal acc @r**: sample-weighted accuracy of each client's model on its own test rows after r "
        "rounds (PFLlib's figure);",
        "- **global acc @r**: mean over clients of each client's model on every client's test rows;",
        "- **hand-written loop**: FedAvg, local, LG-FedAvg, FedPer, FedRep, FedProto, FD, FML and FedKD in "
        "the libraries' protocol with FedMosaic's default parameters for each and the libraries' "
        "torch-initialised FedAvgCNN on the same rows (`bench/reference_loop.py`); **, He init**: the "
        "same loop with the FedAvgCNN He-initialised as FedMosaic's image models are, so the difference from "
        "FedMosaic's figures is the engine's, not the initialisation's"
        + (
            "; **, He init per client**: also each client's model initialised on its own (the libraries, "
            "and FedMosaic by default, start the clients of one model from one draw);"
            if "he-own" in getattr(args, "hand_init", ())
            else ". Both start the clients of one model from one draw, as FedMosaic does by default "
            "(`init: shared`);"
        ),
        "- **reference figure**: a published or library figure given to the harness, with its source. "
        "Figures measured on other data (MNIST) are not comparable number for number.",
        "",
    ]
    head = (
        ["strategy", "roster", "run by"]
        + [f"personal acc @{r}" for r in rounds]
        + [f"global acc @{r}" for r in rounds]
        + (["personal acc @10 by seed"] if len(args.seed) > 1 else [])
        + ["reference figure", "wall s"]
    )
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    given = {(f["strategy"], f.get("roster", "fedavg_cnn")): f for f in figures.get("rows", [])}
    for row in rows:
        ref = given.get((row.strategy, row.roster)) if row.source == "FedMosaic" else None
        ref_text = (f"{ref['value']:.3f} ({ref['metric']}; {ref['source']})" if ref else "") + row.note
        cells = (
            [row.strategy, row.roster, row.source]
            + [fmt(row.acc.get(r)) for r in rounds]
            + [fmt(row.global_acc.get(r)) for r in rounds]
            + (
                [" / ".join(fmt(row.by_seed.get(k, {}).get(10)) for k in args.seed)]
                if len(args.seed) > 1
                else []
            )
            + [ref_text, f"{row.wall_s:.0f}"]
        )
        lines.append("| " + " | ".join(cells) + " |")
    if figures.get("notes"):
        lines += ["", *figures["notes"]]
    lines += ["", *targets(rows, figures)]
    n_test = getattr(args, "n_test", 0)
    if n_test:
        se = 100 * (0.85 * 0.15 / n_test) ** 0.5
        k = len(args.seed)
        lines += [
            f"A personal acc near 0.85 on these {n_test} test rows has a binomial standard error of about "
            f"{se:.1f} points for one seed"
            + (f", about {se / k**0.5:.1f} for a mean over {k} independent seeds" if k > 1 else "")
            + ", so a difference of a point or two from a reference run on the same rows is within "
            "sampling noise.",
            "",
        ]
    ran = sum(r.wall_s for r in rows if r.wall_s == r.wall_s) / 60
    lines += [
        "",
        f"The runs shown took {ran:.0f} min of wall time when they ran (one torch thread each; a rerun "
        f"with --cache reuses finished ones); this page took {elapsed / 60:.1f} min at load average "
        f"{os.getloadavg()[1]:.1f} (5 min) on {os.cpu_count()} cores. torch {torch.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--csv", type=Path, required=True, help="the federation CSV (label, client, split, px...)"
    )
    parser.add_argument("--make", choices=["digits28", "mnist"], help="write the federation CSV first")
    parser.add_argument("--mnist-dir", type=Path, help="--make mnist: folder with the four MNIST IDX files")
    parser.add_argument(
        "--samples", type=int, default=10_000, help="--make mnist: images to draw (default 10000)"
    )
    parser.add_argument(
        "--alpha", type=float, default=0.3, help="--make: Dirichlet concentration (default 0.3)"
    )
    parser.add_argument("--shape", type=int, nargs=3, default=[1, 28, 28], help="image shape C H W")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[0],
        help="run seeds: each run and the hand-written loop once per seed, the page shows their mean "
        "and judges the targets on it (--make deals the federation with the first)",
    )
    parser.add_argument("--strategies", nargs="+", default=None, help="only these (default: every one)")
    parser.add_argument("--no-hand", action="store_true", help="skip the hand-written reference loop")
    parser.add_argument(
        "--hand-init",
        nargs="+",
        choices=["torch", "he", "he-own"],
        default=["torch"],
        help="the hand-written loop's initialisation(s): torch's default as the libraries "
        "(default), he as FedMosaic's image models, he-own: He and each client's model "
        "initialised on its own as FedMosaic does (the libraries start all from one)",
    )
    parser.add_argument("--figures", type=Path, help="JSON of reference figures to print beside ours")
    parser.add_argument("--out", type=Path, default=Path("docs/peers.md"))
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="JSON file of finished runs (keyed by strategy, roster, rounds, seed and the CSV's "
        "size and time): a rerun reuses them, so a long table can be built in parts",
    )
    parser.add_argument("--only-rosters", nargs="+", default=None, help="run only these rosters")
    parser.add_argument(
        "--runs",
        nargs="+",
        default=None,
        metavar="STRATEGY:ROSTER",
        help="exactly these strategy:roster pairs, in this order (instead of --strategies' plan)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    if args.make == "digits28":
        from bench.images import digits28

        write_federation(args.csv, *digits28(), alpha=args.alpha, seed=args.seed[0])
        print(f"wrote {args.csv}", file=sys.stderr)
        return 0
    if args.make == "mnist":
        if args.mnist_dir is None:
            parser.error("--make mnist needs --mnist-dir")
        write_federation(
            args.csv,
            *mnist_images(args.mnist_dir, args.samples, args.seed[0]),
            alpha=args.alpha,
            seed=args.seed[0],
        )
        print(f"wrote {args.csv}", file=sys.stderr)
        return 0

    from engine.data.config import DataConfig
    from engine.strategies import STRATEGIES

    names, clients = read_federation(args.csv, tuple(args.shape))
    n_train = sum(len(c.y_train) for c in clients)
    n_test = sum(len(c.y_test) for c in clients)
    args.describe = f"{len(names)} clients, {n_train} train and {n_test} test rows"
    args.n_test = n_test
    figures = json.loads(args.figures.read_text(encoding="utf-8")) if args.figures else {}
    started = time.perf_counter()
    if args.runs:
        todo = [tuple(pair.split(":", 1)) for pair in args.runs]
        unknown = [f"{n}:{r}" for n, r in todo if n not in STRATEGIES.names() or r not in ROSTERS]
        if unknown:
            parser.error(
                f"unknown strategy or roster in --runs: {', '.join(unknown)} (rosters: {', '.join(ROSTERS)})"
            )
    else:
        todo = [
            (n, r)
            for n, r in plan(args.strategies or STRATEGIES.names())
            if args.only_rosters is None or r in args.only_rosters
        ]
    cache: dict[str, Any] = {}
    if args.cache is not None and args.cache.is_file():
        cache = json.loads(args.cache.read_text(encoding="utf-8"))
    stat = args.csv.stat()

    def remember(key: str, row: Row) -> None:
        if args.cache is not None:
            cache[key] = {k: v for k, v in row.__dict__.items() if k != "by_seed"}
            args.cache.write_text(json.dumps(cache, indent=1), encoding="utf-8")

    def cached(key: str) -> Row:
        entry = {k: v for k, v in cache[key].items() if k != "by_seed"}
        for part in ("acc", "global_acc"):
            entry[part] = {int(k): v for k, v in entry.get(part, {}).items()}
        return Row(**entry)

    runs: list[tuple[int, Row]] = []
    for seed in args.seed:
        for i, (name, roster) in enumerate(todo, 1):
            key = json.dumps([name, roster, args.rounds, seed, stat.st_size, stat.st_mtime_ns])
            if key in cache:
                row = cached(key)
            else:
                try:
                    row = run_fedmosaic(name, roster, args.csv, args.shape, args.rounds, seed)
                except Exception as exc:  # noqa: BLE001 - one failure must not sink the table
                    row = Row(name, roster, note=f"failed: {type(exc).__name__}: {exc}"[:200])
                if not row.note:
                    remember(key, row)
            runs.append((seed, row))
            print(
                f"[seed {seed}, {i}/{len(todo)}] {name} ({roster}): {row.acc} {row.global_acc} {row.note}",
                file=sys.stderr,
                flush=True,
            )
        if not args.no_hand:
            for init, algorithm in ((i, a) for i in args.hand_init for a in HAND):
                key = json.dumps(
                    ["hand", algorithm, args.rounds, seed, stat.st_size, stat.st_mtime_ns]
                    + ([init] if init != "torch" else [])
                )
                if key in cache:
                    row = cached(key)
                else:
                    row = run_hand(algorithm, clients, args.shape, args.rounds, seed, init)
                    remember(key, row)
                runs.append((seed, row))
                print(f"[seed {seed}] hand ({init} init) {algorithm}: {row.acc}", file=sys.stderr, flush=True)
    rows = pool(runs)
    order = {"fedavg_cnn": 0, "mixed": 1, "cnn_resnet_mlp": 2}
    rows.sort(
        key=lambda r: (
            order.get(r.roster, 2),
            STRATEGIES.get(r.strategy).family == "reference",
            r.strategy,
            r.source != "FedMosaic",
        )
    )
    only = f" --strategies {' '.join(args.strategies)}" if args.strategies else ""
    only += f" --only-rosters {' '.join(args.only_rosters)}" if args.only_rosters else ""
    only += f" --runs {' '.join(args.runs)}" if args.runs else ""
    only += " --no-hand" if args.no_hand else f" --hand-init {' '.join(args.hand_init)}"
    figs = f" --figures {args.figures}" if args.figures else ""
    command = (
        f".venv/bin/python -m bench.peers --csv {args.csv} --rounds {args.rounds} "
        f"--seed {' '.join(map(str, args.seed))}"
        f"{only}{figs} --out {args.out}"
    )
    text = report(
        rows, figures, args, command, time.perf_counter() - started, "split_column" in DataConfig.model_fields
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
