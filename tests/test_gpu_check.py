"""bench/gpu_check.sh, the GPU path's one command: where no CUDA device exists it says so, measures
nothing and exits 0 (the table it prints on a GPU is built from pytest's junit file and
bench.perf's rows)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the script would measure it")
def test_without_a_gpu_the_check_says_so_and_measures_nothing():
    out = subprocess.run(
        ["bash", "bench/gpu_check.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PY": sys.executable},
    )
    assert out.returncode == 0, out.stderr
    assert "no CUDA device here" in out.stdout and "not measured" in out.stdout
    assert "| device |" not in out.stdout
