#!/usr/bin/env bash
# The GPU path, measured the day a GPU exists: the engine's CUDA tests (pytest -m gpu) and the
# vectorized-vs-sequential benchmark on the GPU (python -m bench.perf vectorized --device cuda),
# printed as one markdown table with the device, its memory and the library versions.
#
#   bench/gpu_check.sh            # on a machine with an NVIDIA GPU and a CUDA build of torch
#   ROUNDS=8 bench/gpu_check.sh   # more rounds per benchmark case (default 6)
#
# Without a CUDA device it says so and exits 0 having measured nothing (docs/benchmarks.md then
# carries the CPU figures only). Exit status 1 when a GPU test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
ROUNDS="${ROUNDS:-6}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

"$PY" -c "
import sys, torch
if not torch.cuda.is_available():
    print(f'no CUDA device here (torch {torch.__version__}, torch.cuda.is_available() is False): the GPU '
          'path was not measured; docs/benchmarks.md carries the CPU figures only')
    sys.exit(3)
"
case $? in
  0) ;;
  3) exit 0 ;;
  *) echo "could not import torch with $PY"; exit 1 ;;
esac

"$PY" -m pytest -q -p no:cacheprovider -m gpu --junitxml="$OUT/gpu.xml" >"$OUT/pytest.txt" 2>&1
tests_status=$?
OMP_NUM_THREADS=1 "$PY" -m bench.perf vectorized --device cuda --rounds "$ROUNDS" >"$OUT/perf.txt" 2>&1
perf_status=$?

OUT="$OUT" TESTS_STATUS="$tests_status" PERF_STATUS="$perf_status" "$PY" - <<'PY'
import os, platform, re
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

out = Path(os.environ["OUT"])
props = torch.cuda.get_device_properties(0)
print("| what | value |")
print("|---|---|")
print(f"| device | {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor} |")
print(f"| software | torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()} |")
try:
    suite = ET.parse(out / "gpu.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    total, failed = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    print(f"| pytest -m gpu | {total - failed - skipped} passed, {failed} failed, {skipped} skipped |")
except (OSError, ET.ParseError, AttributeError):
    print(f"| pytest -m gpu | did not run (exit {os.environ['TESTS_STATUS']}); see its output below |")
rows = [l for l in (out / "perf.txt").read_text().splitlines() if re.match(r"\|\s*\d+\s*\|", l)]
for line in rows:
    cells = [c.strip() for c in line.strip("|").split("|")]
    print(f"| bench.perf: {cells[0]} {cells[1]} clients on cuda | sequential {cells[2]} s/round, "
          f"vectorized {cells[3]} s/round, {cells[4]} |")
if not rows:
    print(f"| bench.perf vectorized --device cuda | no result (exit {os.environ['PERF_STATUS']}); see its output below |")
PY
if [ "$tests_status" -ne 0 ]; then
  echo; echo "pytest -m gpu output:"; tail -40 "$OUT/pytest.txt"
fi
if [ "$perf_status" -ne 0 ]; then
  echo; echo "bench.perf output:"; tail -40 "$OUT/perf.txt"
fi
[ "$tests_status" -eq 0 ] || [ "$tests_status" -eq 5 ]  # 5: no test collected
