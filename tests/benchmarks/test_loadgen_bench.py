"""The load-generator benchmark runs at HEAD (it was broken for a release without anyone
noticing): a tiny capacity run, execbench and plain Locust side by side. Figures are printed,
never asserted: CPU per request on a shared machine is a benchmark's business."""

from __future__ import annotations

import subprocess
import sys

from tests.loadtests.util import ROOT


def test_capacity_benchmark_runs_both_generators_and_prints_the_ratio():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "loadgen_bench.py"),
                             "capacity", "--rates", "50", "--step-s", "3"],
                            capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("50 "))
    cells = row.replace("|", " ").split()
    assert len(cells) == 10, row  # target, sent, late, p99, cpu, µs | locust, cpu, µs | ratio
    assert "-" not in cells, row  # every figure measured, the peer's included
