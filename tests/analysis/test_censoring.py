"""Failed and timed-out requests enter the client latency at their elapsed time (censored):
a stall longer than the client's timeout must not vanish from p99."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from analysis.api import analyze_run
from analysis.synthetic import GenericSpec, write_generic_run
from execbench import rundir as rd

from .util import quiet, summary_of

TIMEOUT_MS = 5000.0


def test_timeouts_reach_the_tail_and_are_counted(tmp_path):
    run = write_generic_run(tmp_path / "r", GenericSpec(error_rate=0.03, seed=9))
    # the failures timed out: the client waited its full timeout for each
    path = run / rd.REQUESTS
    recs = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    for r in recs:
        if r["outcome"] == "failure":
            r["latency_ms"] = TIMEOUT_MS
            r["latency_from_intended_ms"] = TIMEOUT_MS + 1.0
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    assert analyze_run(run, console=quiet(), plots=False) in (0, 1, 3)
    s = summary_of(run)
    m = s["phases"]["baseline"]["checkout"]["latency_ms"]
    window = s["phase_info"]["baseline"]
    lo, hi = rd.parse_iso(window["start"]), rd.parse_iso(window["end"])
    mine = [r for r in recs if r["flow"] == "checkout" and r["outcome"] in ("ok", "failure")
            and lo <= rd.parse_iso(r["sent_ts"]) < hi]
    fails = sum(r["outcome"] == "failure" for r in mine)
    assert fails > 0 and m["censored"] == fails
    assert m["count"] == len(mine)
    assert m["p99"]["value"] == pytest.approx(
        float(np.quantile([r["latency_ms"] for r in mine], 0.99)), abs=1e-9)
    assert m["p99"]["value"] == TIMEOUT_MS  # 3% timeouts: p99 is the timeout, not a success
    finding = next(f for f in s["findings"] if "censored" in f["name"])
    assert f"baseline/checkout {fails}" in finding["observed"]
