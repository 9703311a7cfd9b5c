"""Recovery after a flip on synthetic steps with known lags (fixed seeds): analysis/recovery.py."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.recovery import recovery_text, recovery_time


@pytest.mark.parametrize("change_after", [0.0, 3.3, 7.3, 12.8])
def test_recovery_time_found_within_one_sampling_interval(change_after):
    rng = np.random.default_rng(10)
    flip, end = 1000.0, 1060.0
    t = np.sort(rng.uniform(flip - 10, end, 6000))  # 100 records/s
    v = np.where(t < flip + change_after, rng.normal(250, 5, len(t)), rng.normal(88, 2, len(t)))
    step = 0.5
    r = recovery_time(t, v, flip_ts=flip, end_ts=end, target=88.0, tolerance_pct=10,
                            window_s=2.0, step_s=step, hold_s=10.0)
    assert r["recovery_s"] is not None
    assert abs(r["recovery_s"] - change_after) <= step


def test_an_instant_step_reads_as_recovered_within_one_step_whatever_the_rate_before():
    """Records from before the flip must not vote: here the old regime is three times as dense, so
    a window straddling the flip would keep its median in the old regime past the flip."""
    rng = np.random.default_rng(11)
    flip, end = 1000.0, 1030.0
    before = np.sort(rng.uniform(flip - 10, flip, 1500))  # 150 records/s at 88 ms
    after = np.sort(rng.uniform(flip, end, 1500))  # 50 records/s at 253 ms
    t = np.concatenate([before, after])
    v = np.concatenate([rng.normal(88, 2, len(before)), rng.normal(253, 5, len(after))])
    r = recovery_time(t, v, flip_ts=flip, end_ts=end, target=253.0, tolerance_pct=10,
                            window_s=5.0, step_s=0.5, hold_s=10.0)
    assert r["recovery_s"] == 0.0 and r["at_most_s"] == 1.25
    assert recovery_text(r) == "<= 1.25"  # the first window cannot resolve finer
    assert recovery_text({**r, "recovery_s": 3.5, "at_most_s": None}) == "3.5"
    assert recovery_text({**r, "recovery_s": None}) == "never"


@pytest.mark.parametrize("lag", [0.9, 1.6, 2.0, 2.4, 3.3, 6.1])
def test_a_step_is_dated_at_its_lag_also_inside_the_first_half_window(lag):
    """Cut windows read a step at lag L < w/2 early (at 2L - w/2); the estimate undoes that."""
    rng = np.random.default_rng(int(lag * 10))
    flip, end = 1000.0, 1040.0
    t = np.sort(rng.uniform(flip - 5, end, 4500))  # 100 records/s
    v = np.where(t < flip + lag, rng.normal(250, 5, len(t)), rng.normal(88, 2, len(t)))
    r = recovery_time(t, v, flip_ts=flip, end_ts=end, target=88.0, tolerance_pct=10,
                            window_s=5.0, step_s=0.5, hold_s=10.0)
    if lag <= 1.25:
        assert r["recovery_s"] == 0.0 and recovery_text(r) == "<= 1.25"
    else:
        assert abs(r["recovery_s"] - lag) <= 0.5, r["recovery_s"]  # one step (0.25 below w/2)


def test_recovery_none_when_it_never_settles():
    rng = np.random.default_rng(12)
    t = np.sort(rng.uniform(0, 60, 3000))
    v = rng.normal(250, 5, len(t))
    r = recovery_time(t, v, flip_ts=0, end_ts=60, target=88.0, tolerance_pct=10,
                            window_s=2.0, step_s=0.5, hold_s=10.0)
    assert r["recovery_s"] is None
