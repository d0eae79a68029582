"""bench.peers judges issue #15's targets from the rows it measured (pure functions, no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.peers import Row, main, targets

FIGURES = {
    "rows": [
        {
            "strategy": "local",
            "roster": "fedavg_cnn",
            "metric": "personal acc @10",
            "value": 0.891,
            "source": "PFLlib on MNIST (10,000 images), as run for issue #15",
        },
        {
            "strategy": "fedavg",
            "roster": "fedavg_cnn",
            "metric": "personal acc @10",
            "value": 0.90,
            "source": "a run on these very rows",
            "same_data": True,
        },
    ]
}


def row(
    strategy: str, roster: str, acc: float, global_acc: float = float("nan"), source: str = "FedMosaic"
) -> Row:
    return Row(strategy, roster, source=source, acc={10: acc}, global_acc={10: global_acc})


def judged(lines: list[str], strategy: str, roster: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in lines
        if line.startswith("| ") and f"| {strategy} | {roster} |" in line
    ]


def test_targets_judge_only_comparable_references_and_the_distillation_margin() -> None:
    rows = [
        row("fedavg", "fedavg_cnn", 0.895),
        row("local", "fedavg_cnn", 0.83),
        row("local", "fedavg_cnn", 0.50, source="hand-written loop"),
        row("fedper", "fedavg_cnn", 0.86),
        row("local", "mixed", 0.7, 0.30),
        row("feddf", "mixed", 0.8, 0.46),
        row("fedmd", "mixed", 0.8, 0.44),
    ]
    lines = targets(rows, FIGURES)
    [fedavg] = judged(lines, "fedavg", "fedavg_cnn")
    assert fedavg[5:] == ["-0.5", "yes"]  # within 1 point of a figure on the same rows
    mnist, hand = judged(lines, "local", "fedavg_cnn")
    assert mnist[5:] == ["-6.1", "not judged: other data"] and hand[5:] == ["+33.0", "yes"]
    [fedper] = judged(lines, "fedper", "fedavg_cnn")
    assert fedper[4:] == ["no reference figure given", "—", "not judged"]
    [feddf] = judged(lines, "feddf", "mixed")
    [fedmd] = judged(lines, "fedmd", "mixed")
    assert feddf[5:] == ["+16.0", "yes"] and fedmd[5:] == ["+14.0", "no"]
    [missing] = [line for line in lines if line.startswith("Not run here")]
    assert "lg_fedavg" in missing and "fedper" not in missing and "local" not in missing


def test_an_unknown_run_is_refused_before_anything_runs(tmp_path) -> None:
    csv = tmp_path / "fed.csv"
    csv.write_text("label,client,split,px0\n0,a,train,0.5\n1,a,test,0.1\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(
            [
                "--csv",
                str(csv),
                "--shape",
                "1",
                "1",
                "1",
                "--runs",
                "fedavg:nowhere",
                "--out",
                str(tmp_path / "out.md"),
            ]
        )
    assert not (tmp_path / "out.md").exists()


def test_seeds_pool_into_means_and_the_targets_show_each_seeds_difference() -> None:
    from bench.peers import pool

    runs = [
        (0, row("lg_fedavg", "fedavg_cnn", 0.80)),
        (1, row("lg_fedavg", "fedavg_cnn", 0.90)),
        (0, row("lg_fedavg", "fedavg_cnn", 0.83, source="hand-written loop, He init")),
        (1, row("lg_fedavg", "fedavg_cnn", 0.86, source="hand-written loop, He init")),
    ]
    ours, hand = pool(runs)
    assert ours.acc[10] == pytest.approx(0.85) and ours.by_seed == {0: {10: 0.80}, 1: {10: 0.90}}
    assert hand.acc[10] == pytest.approx(0.845) and hand.source == "hand-written loop, He init"
    [judgement] = judged(targets([ours, hand], {}), "lg_fedavg", "fedavg_cnn")
    assert judgement[5:] == ["+0.5 (by seed: -3.0, +4.0)", "yes"]  # judged on the mean, seeds shown


def test_make_mnist_writes_a_federation_of_a_users_idx_files_that_reads_back(tmp_path) -> None:
    from test_data_sets import write_idx_set

    from bench.peers import read_federation

    labels = write_idx_set(tmp_path / "mnist", n_train=80, n_test=20)
    csv = tmp_path / "fed.csv"
    common = ["--csv", str(csv), "--make", "mnist", "--mnist-dir", str(tmp_path / "mnist")]
    assert main([*common, "--samples", "60", "--seed", "3"]) == 0
    names, clients = read_federation(csv, (1, 28, 28))
    assert 2 <= len(names) <= 10 and set(names) <= {f"site-{k:02d}" for k in range(10)}  # Dirichlet(0.3)
    x = [c.x_train for c in clients] + [c.x_test for c in clients]
    y = [c.y_train for c in clients] + [c.y_test for c in clients]
    assert sum(len(t) for t in y) == 60  # the draw asked for, dealt to the clients, nothing lost
    assert all(t.shape[1:] == (1, 28, 28) and (t.min() >= 0) and (t.max() <= 1) for t in x if len(t))
    drawn = torch.cat(y).bincount(minlength=10).tolist()
    share = np.bincount(labels, minlength=10) / len(labels)
    assert all(abs(drawn[k] - 60 * share[k]) <= 1 for k in range(10))  # a stratified draw
    assert sum(len(c.y_test) for c in clients) > 0  # some rows marked test
    with pytest.raises(SystemExit, match="no train-images"):
        main(["--csv", str(csv), "--make", "mnist", "--mnist-dir", str(tmp_path / "empty")])
