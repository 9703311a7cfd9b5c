"""The open-model clock: intended send times over the phases (pure arithmetic, in-process)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from loadtests.clock import ArrivalClock
from loadtests.state import ProcessState


def _state(phases, generators=1, mix=None):
    st = ProcessState()
    start, schedule = 0.0, []
    for name, duration, rate in phases:
        schedule.append({"name": name, "group": name, "start_s": start, "duration_s": duration,
                         "mode": "off", "rate": rate, "analyse": True, "provider": None})
        start += duration
    st.configure({"experiment": "t", "run_id": "r", "t0": 1000.0, "schedule": schedule,
                  "load": {"mix": mix or {"trader_mix": 1.0}}, "generators": generators})
    return st


def _all(clock, now=1000.0):
    out = []
    while (t := clock.next(now)) is not None:
        out.append(t)
    return np.array(out)


def test_fixed_rate_is_exact_and_stays_inside_each_phase():
    st = _state([("a", 10, 20.0), ("b", 10, 50.0)])
    times = _all(ArrivalClock(st, st.share("trader_mix"), False, random.Random(1)))
    in_a = times[times < 1010]
    in_b = times[times >= 1010]
    assert len(in_a) in (199, 200, 201) and len(in_b) in (499, 500, 501)
    assert np.allclose(np.diff(in_a), 1 / 20) and np.allclose(np.diff(in_b), 1 / 50)
    assert times.min() >= 1000 and times.max() < 1020


def test_poisson_rate_and_exponential_gaps():
    st = _state([("a", 200, 40.0)])
    times = _all(ArrivalClock(st, 1.0, True, random.Random(7)))
    assert len(times) == pytest.approx(8000, rel=0.05)
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1 / 40, rel=0.05)
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.1)  # exponential: sd = mean


def test_zero_rate_phase_is_skipped_and_share_splits_the_rate():
    st = _state([("a", 5, 10.0), ("quiet", 5, 0.0), ("c", 5, 10.0)], generators=2,
                mix={"trader_mix": 3.0, "margin_edge": 1.0})
    assert st.share("trader_mix") == pytest.approx(0.75 / 2)
    times = _all(ArrivalClock(st, st.share("margin_edge"), False, random.Random(3)))
    assert not ((times >= 1005) & (times < 1010)).any()
    # margin_edge: 10/s x 1/4 of the mix / 2 generators = 1.25/s in each busy phase.
    assert len(times[times < 1005]) in (6, 7)


def test_late_start_begins_now_and_end_returns_none():
    st = _state([("a", 10, 10.0)])
    clock = ArrivalClock(st, 1.0, False, random.Random(0))
    first = clock.next(1004.0)
    assert 1004.0 <= first < 1004.1
    assert ArrivalClock(st, 1.0, True, random.Random(0)).next(1010.0) is None
    assert st.phase_at(1009.99)["name"] == "a" and st.phase_at(1010.0) is None


@pytest.mark.timeout(20)
def test_a_phase_end_a_rounding_error_short_of_the_next_start_does_not_spin():
    """t0 + 0.3 + 0.6 is a hair below t0 + 0.9 at this t0: the clock stepped to the first and
    found itself in the same phase for ever (`run --duration-scale 0.01` hung at 100% CPU)."""
    st = ProcessState()
    schedule = [{"name": n, "group": n, "start_s": s, "duration_s": d, "mode": "off", "rate": 20.0,
                 "analyse": True, "provider": None}
                for n, s, d in (("a", 0.0, 0.3), ("b", 0.3, 0.6), ("c", 0.9, 0.6))]
    st.configure({"experiment": "t", "run_id": "r", "t0": 1796280988.8, "schedule": schedule,
                  "load": {"mix": {"trader_mix": 1.0}}, "generators": 1})
    assert st.t0 + 0.3 + 0.6 < st.t0 + 0.9  # the rounding this test is about
    times = _all(ArrivalClock(st, 1.0, False, random.Random(3)), now=st.t0)
    assert 28 <= len(times) <= 31 and times.max() < st.end
