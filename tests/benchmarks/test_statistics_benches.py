"""The statistics benchmarks run at HEAD, tiny: coverage.py prints every table it documents and
recovery_bias.py its error table. Figures are printed, never asserted here (a handful of
simulations says nothing about a rate); docs/analysis.md quotes full runs."""

from __future__ import annotations

import subprocess
import sys

from tests.loadtests.util import ROOT


def _run(*argv: str) -> str:
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300,
                            cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_coverage_prints_every_table():
    out = _run(str(ROOT / "benchmarks" / "coverage.py"), "--reps", "8")
    for title in ("order-statistic interval of a quantile", "ratio of quantiles (MOVER)",
                  "equivalence of medians", "compare at +-5%", "error rate rise",
                  "bursts that fail together"):
        assert title in out, out
    assert "n/a" in out  # the p99 at n = 30 has no interval, and the table says so


def test_recovery_bias_prints_its_table():
    out = _run(str(ROOT / "benchmarks" / "recovery_bias.py"), "--runs", "3")
    assert "recovery estimate error" in out and "change point" in out, out
