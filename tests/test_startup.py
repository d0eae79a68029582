"""Start-up diet: FLOPs are counted without torch's FlopCounterMode (which imports torch._dynamo)
and give the same figures for every architecture; a command imports only what it needs (a run on
a dataset that is not scikit-learn's never imports scikit-learn; validating never imports
torch._dynamo; listing runs never imports torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.flops import forward_flops
from engine.models import ARCHITECTURES, InputSpec, build_model, flops_per_sample

ROOT = Path(__file__).resolve().parent.parent
SPECS = {
    "image": [InputSpec("image", (1, 8, 8)), InputSpec("image", (3, 32, 32))],
    "sequence": [InputSpec("sequence", (12, 3))],
    "tabular": [InputSpec("tabular", (30,))],
}
CASES = [
    (name, spec)
    for name, arch in ARCHITECTURES.items()
    for kind in sorted(arch.kinds)
    for spec in SPECS[kind]
]


def torch_count(model: torch.nn.Module, spec: InputSpec) -> int:
    """torch's own counter on the same forward pass, plus the recurrent kernels it cannot see
    (the figure FedMosaic reported before)."""
    from torch.utils.flop_counter import FlopCounterMode

    def count(module: torch.nn.Module, x: torch.Tensor) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(x)
        return int(counter.get_total_flops())

    model.eval()
    total = count(model, torch.zeros((1, *spec.shape)))
    for m in model.modules():
        if hasattr(m, "recurrent_flops"):  # what torch saw of the recurrent layer is replaced by the formula
            x = torch.zeros((1, m.read.steps, m.read.features))
            total += m.recurrent_flops() - count(m.rnn, x)
    return total


@pytest.mark.parametrize(("arch", "spec"), CASES, ids=[f"{a}-{s}" for a, s in CASES])
def test_flops_match_torchs_counter(arch: str, spec: InputSpec) -> None:
    model = build_model({"arch": arch}, spec, 32, 10)
    ours = flops_per_sample(model, spec)
    assert ours > 0
    assert ours == torch_count(model, spec)


def test_flops_scale_with_the_batch_and_restore_training_mode() -> None:
    model = build_model({"arch": "cnn", "channels": 8}, InputSpec("image", (1, 8, 8)), 16, 10).train()
    one = forward_flops(model, torch.zeros(1, 1, 8, 8))
    assert forward_flops(model, torch.zeros(5, 1, 8, 8)) == 5 * one
    assert model.training


def modules_after(args: list[str], home: Path) -> dict[str, bool]:
    """Which heavy modules a fresh ``python -m engine ARGS`` process had imported at exit."""
    probe = (
        "import atexit, json, sys, runpy\n"
        "atexit.register(lambda: print('MODULES ' + json.dumps({m: m in sys.modules for m in "
        "('torch', 'torch._dynamo', 'sklearn', 'scipy', 'plotly', 'streamlit')})))\n"
        f"sys.argv = ['engine', *{args!r}]\n"
        "runpy.run_module('engine', run_name='__main__')\n"
    )
    env = {
        **os.environ,
        "FEDMOSAIC_HOME": str(home),
        "FEDMOSAIC_DB": str(home / "t.db"),
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("MODULES "))
    return json.loads(line[len("MODULES ") :])


def test_a_run_imports_only_what_it_needs(tmp_path: Path) -> None:
    config = {
        "name": "diet",
        "seed": 0,
        "rounds": 1,
        "checkpoint_every": 0,
        "data": {"dataset": "shapes", "options": {"domains": 2, "per_class": 10}},
        "clients": [{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 8}}],
        "strategy": {"name": "fedavg"},
    }
    path = tmp_path / "diet.json"
    path.write_text(json.dumps(config))
    ran = modules_after(["run", str(path), "--json"], tmp_path)
    assert not ran["sklearn"] and not ran["scipy"], "a run on shapes imported scikit-learn"
    assert not ran["plotly"] and not ran["streamlit"]
    validated = modules_after(["validate", str(path)], tmp_path)
    assert not validated["torch._dynamo"], "validating (FLOPs, no training) imported torch._dynamo"
    listed = modules_after(["list"], tmp_path)
    assert not listed["torch"], "listing the runs (the database only) imported torch"
