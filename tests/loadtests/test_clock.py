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


# --- the generator's sleeps (loadtests/waker.py) ----------------------------------------------


def test_a_timerfd_deadline_is_never_before_the_intended_time():
    from loadtests.waker import split_ns

    for ts in (1796280988.0, 1796280988.123456789, 1796280988.9999999999, 0.5, 1e9 + 1e-9):
        sec, nsec = split_ns(ts)
        assert 0 <= nsec < 1_000_000_000
        assert sec + nsec / 1e9 >= ts - 1e-6  # float rounding of the check itself
        assert (sec * 1_000_000_000 + nsec) >= int(ts * 1e9) - 1000
    assert split_ns(1796280988.0) == (1796280988, 0)
    assert split_ns(0.25) == (0, 250_000_000)


def test_sleep_until_rearms_until_its_clock_reaches_the_deadline():
    """Woken before the deadline (by its clock), it arms the timer again; it returns only once
    the clock reads the deadline or later. The clock is fake and the deadline long past for the
    kernel, so every arming fires at once: no waiting, no wall-clock figure."""
    from loadtests.waker import Waker

    readings = [999.0, 999.9, 999.99, 1000.0, 1000.5]
    waker = Waker(timerfd=True, now=lambda: readings.pop(0))
    if not waker.precise:
        pytest.skip("no timerfd on this system")
    armed: list[float] = []
    arm = waker._arm
    waker._arm = lambda deadline: (armed.append(deadline), arm(deadline))
    try:
        waker.sleep_until(1000.0)
        assert armed == [1000.0, 1000.0, 1000.0]  # three early readings, three armings
        assert readings == [1000.5]  # returned at the reading 1000.0
        waker.sleep_until(10.0)  # already past: returns without arming
        assert readings == []
        assert armed == [1000.0] * 3
    finally:
        waker.close()


def test_sleep_until_is_gevent_sleep_by_default_and_the_timerfd_is_opt_in(monkeypatch):
    import loadtests.waker as waker_mod

    slept: list[float] = []
    monkeypatch.setattr(waker_mod.gevent, "sleep", slept.append)
    readings = iter([99.0, 99.75, 100.0])
    waker = waker_mod.Waker(now=lambda: next(readings))  # the default
    assert not waker.precise
    waker.sleep_until(100.0)
    assert slept == [1.0, 0.25]
    for value, on in (("", False), ("0", False), ("1", True), ("true", True)):
        monkeypatch.setenv("EXECBENCH_TIMERFD", value)
        assert waker_mod.timerfd_enabled() is on
