"""Every benchmark runs at HEAD, tiny (issue 16: the load-generator benchmark was broken for a
release and nothing noticed). Each one is run as a user runs it, for a few seconds, and must exit 0
and print its table; what it measures is printed, never asserted (figures on a shared machine
are a benchmark's business, not a test's). The load-generator, statistics and report benchmarks
have their own files beside this one."""

from __future__ import annotations

import subprocess
import sys

from tests.loadtests.util import ROOT
from tests.support import free_port

BENCH = ROOT / "benchmarks"


def _run(name: str, *argv: str, timeout: float = 240) -> str:
    result = subprocess.run([sys.executable, str(BENCH / name), *argv], capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def test_analysis_bench(tmp_path):
    out = _run("analysis_bench.py", "--records", "20000", "--no-pandas", "--workdir",
               str(tmp_path / "w"))
    assert "ingest" in out and "report" in out, out


def test_service_bench():
    out = _run("service_bench.py", "--seconds", "1", "--concurrency", "4", "--iterations", "2000")
    assert "orders" in out.lower() or "µs" in out, out


def test_soak():
    out = _run("soak.py", "--minutes", "0.1", "--rate", "5", "--port", str(free_port()))
    assert "rss" in out.lower() or "memory" in out.lower(), out


def test_flood_bench():
    out = _run("flood_bench.py", "--backend", "sqlite", "--seconds", "2", "--after", "0",
               "--rate", "5", "--flood-clients", "2", "--flood-procs", "1")
    assert "flood/quiet" in out, out


def test_calibrate():
    out = _run("calibrate.py", "--orders", "5")
    assert "ms" in out, out


def test_report_bench():
    out = _run("report_bench.py", "--repeat", "1")
    assert "total, execbench report" in out, out


def test_histogram_buckets():
    out = _run("histogram_buckets.py", "--samples", "2000")
    assert "largest |error|" in out, out


def test_histogram_quantile_is_prometheus_interpolation():
    """The benchmark's estimate is PromQL's: 10 values of 0.15 s and 10 of 0.3 s in buckets
    (0.1, 0.25, 0.5): the p50 rank 10 fills (0.1, 0.25] to its top, 0.25; the p75 rank 15 is
    half-way into (0.25, 0.5], 0.375; a rank in +Inf answers the highest finite bound."""
    import numpy as np

    from benchmarks.histogram_buckets import histogram_quantile

    values = np.array([0.15] * 10 + [0.3] * 10)
    assert histogram_quantile(0.5, values, (0.1, 0.25, 0.5)) == 0.25
    assert histogram_quantile(0.75, values, (0.1, 0.25, 0.5)) == 0.375
    assert histogram_quantile(0.99, np.array([1.0, 2.0]), (0.1, 0.5)) == 0.5


def test_ledger_bench():
    out = _run("ledger_bench.py", "--orders", "600", "--reps", "2")
    assert "detail / totals" in out, out


def test_linkproxy_bench():
    out = _run("linkproxy_bench.py", "--rtt-ms", "0", "2", "--rounds", "10")
    assert "tls" in out, out
