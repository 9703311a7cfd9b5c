"""Three-valued verdicts (PASS / FAIL / INCONCLUSIVE, exit 0 / 1 / 3) and recovery judged
against the baseline: the rules a user gates a deploy on."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.api import analyze_log, analyze_run
from analysis.checks import by_interval, run_verdict
from analysis.recovery import change_point, recovery_time
from analysis.synthetic import RunSpec, iso, write_log, write_run

from .util import quiet, summary_of

SPLIT = 1_795_608_000.0


def test_three_records_a_side_are_inconclusive_never_pass(tmp_path):
    """The audit's case: 3 records before and 3 after PASSed 3/3 with p = 0.1."""
    log = write_log(tmp_path / "tiny.jsonl", records=6, split=SPLIT, span_s=600, seed=5)
    out = tmp_path / "o"
    assert analyze_log(log, iso(SPLIT), out_dir=out, console=quiet(), plots=False) == 3
    s = summary_of(out)
    assert s["verdict"] == "inconclusive"
    undecided = [c for c in s["checks"] if c["verdict"] == "inconclusive"]
    assert undecided and all(c["passed"] is None and c["why"] for c in undecided)
    assert not any(c["verdict"] == "pass" and c["source"] == "seed" for c in s["checks"])


def test_a_rollback_that_never_returns_to_the_baseline_fails(tmp_path):
    """Provider latency stays at the optimized level after the rollback flip: compared with
    its own second half it "recovered" at once; against the baseline it never does."""
    run = write_run(tmp_path / "r", RunSpec(records=8000, seed=4, slowdown={"rollback": 0.35}))
    assert analyze_run(run, console=quiet(), plots=False) == 1
    s = summary_of(run)
    rec = next(c for c in s["checks"] if c["kind"] == "recovery_max_s")
    assert rec["verdict"] == "fail" and rec["observed"] == "never recovered"
    flip = next(f for f in s["flips"] if f["phase"] == "rollback")
    assert flip["flows"]["provider"]["target_phase"] == "baseline"
    assert flip["flows"]["provider"]["recovery_s"] is None


def test_a_rollback_that_returns_late_is_dated_against_the_baseline(tmp_path):
    """The provider flow stays at the optimized level for 2.5 s after the rollback is
    requested (the mode switch 0.4 s, then 2.1 s more of it): the estimate lands within
    0.25 s (the issue's bound for the median bias) and the check passes."""
    phases = RunSpec().phases
    start = sum(p.duration_s for p in phases[:3])  # the rollback's flip, from the run's start
    run = write_run(tmp_path / "r", RunSpec(records=20000, seed=8,
                                            slow_spans=((start, start + 2.5, 0.35),)))
    assert analyze_run(run, console=quiet(), plots=False) == 0
    prov = next(f for f in summary_of(run)["flips"] if f["phase"] == "rollback")["flows"][
        "provider"]
    assert prov["target_phase"] == "baseline" and prov["method"] == "change point"
    assert prov["recovery_s"] == pytest.approx(2.5, abs=0.25)


def test_change_point_splits_a_step_at_its_time():
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0, 20, 400))
    v = np.where(t < 7.3, 88.0, 253.0) * rng.lognormal(0, 0.2, len(t))
    assert change_point(t, v, old=88.0, new=253.0, start=0.0) == pytest.approx(7.3, abs=0.15)
    # no change at all: the split is at the start
    assert change_point(t, 253.0 * rng.lognormal(0, 0.2, len(t)), old=88.0, new=253.0,
                        start=0.0) == 0.0


def test_levels_within_the_band_keep_the_windowed_estimate():
    """Nothing to recover from (the previous level is in the band already): the first window
    says only "at most w/4", and the change point is not used."""
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 60, 600))
    v = 250.0 * rng.lognormal(0, 0.2, len(t))
    r = recovery_time(t, v, flip_ts=0.0, end_ts=60.0, target=250.0, tolerance_pct=10,
                      window_s=5, step_s=0.5, hold_s=10, before=245.0)
    assert r["recovery_s"] == 0.0 and r["at_most_s"] == 1.25 and r["method"] == "rolling p50"


@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (80, 96, "pass"), (170, 190, "fail"), (150, 180, "inconclusive"), (None, None,
                                                                        "inconclusive"),
])
def test_a_threshold_is_judged_on_its_whole_interval(lo, hi, expected):
    outcome = by_interval(lo, hi, -np.inf, 168.0, n=100, min_n=30)
    got = "inconclusive" if isinstance(outcome, str) else ("pass" if outcome else "fail")
    assert got == expected


def test_below_the_minimum_sample_nothing_is_decided():
    assert isinstance(by_interval(80, 96, -np.inf, 168.0, n=29, min_n=30), str)


def test_the_run_verdict_is_fail_then_inconclusive_then_pass():
    p, f, i = ({"verdict": v} for v in ("pass", "fail", "inconclusive"))
    assert run_verdict([p, i, f]) == "fail"
    assert run_verdict([p, i]) == "inconclusive"
    assert run_verdict([p, p]) == "pass"
    assert run_verdict([]) == "inconclusive"  # no check asserts nothing


@pytest.mark.parametrize("before,after,verdict", [
    ((10, 1000), (20, 1000), "inconclusive"),  # a doubling from 1%: not shown within 0.5 pp
    ((0, 2000), (0, 2000), "pass"),
    ((0, 200), (0, 200), "inconclusive"),  # 200 requests cannot bound a rise to 0.5 pp
    ((10, 1000), (100, 1000), "fail"),
    ((100, 20000), (110, 20000), "pass"),
])
def test_the_error_rise_is_judged_against_a_fixed_margin(before, after, verdict):
    from analysis.checks import _error_rise_check

    c = _error_rise_check(before, after, 0.5)
    assert c["verdict"] == verdict, c
    assert "Newcombe" in c["observed"] and c["expected"].startswith("rise <= 0.5")
