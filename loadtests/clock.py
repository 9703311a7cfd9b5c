"""Intended send times of one open-model generator: piecewise Poisson or fixed over the phases.

Pure arithmetic over the schedule (no Locust, no sleeping), so it is unit-tested in-process.
Memoryless at boundaries: when the next gap would cross into another phase, the process restarts
at the boundary with that phase's rate (exact for a piecewise-constant Poisson process). Fixed
arrivals restart with a random offset in [0, 1/rate) so several generators do not fire together.
"""

from __future__ import annotations

import random

from loadtests.state import ProcessState


class ArrivalClock:
    def __init__(self, state: ProcessState, share: float, poisson: bool, rng: random.Random):
        self.state = state
        self.share = share  # this generator's fraction of each phase's total rate
        self.poisson = poisson
        self.rng = rng
        self._t: float | None = None
        self._fresh = True
        # the phase of the last arrival: [start, end), its rate, and the schedule it is from
        self._phase: tuple[float, float, float] | None = None
        self._schedule: list | None = None

    def _gap(self, rate: float) -> float:
        """Seconds to the next arrival: exponential (Poisson), a uniform phase offset for the
        first arrival of a fixed-rate phase, else exactly 1/rate."""
        if self.poisson:
            return self.rng.expovariate(rate)
        if self._fresh:
            return self.rng.uniform(0, 1 / rate)
        return 1 / rate

    def next(self, now: float) -> float | None:
        """The next intended time (epoch seconds), or None once the schedule is over."""
        st = self.state
        t = self._t if self._t is not None else max(st.t0, now)
        if self._phase is not None and st.schedule is self._schedule:
            start, end, rate = self._phase
            if start <= t < end:  # the common case: the same phase as the last arrival
                candidate = t + self._gap(rate)
                if candidate < end:
                    self._fresh = False
                    self._t = candidate
                    return candidate
                t, self._fresh = end, True
        while True:
            index = st.phase_index_at(t)
            if index is None:
                self._t = t
                return None
            rate = st.schedule[index]["rate"] * self.share
            end = st.phase_end(index)
            if rate <= 0:
                t, self._fresh = end, True
                continue
            candidate = t + self._gap(rate)
            if candidate >= end:
                t, self._fresh = end, True
                continue
            self._fresh = False
            self._t = candidate
            self._phase = (st.t0 + st.schedule[index]["start_s"], end, rate)
            self._schedule = st.schedule
            return candidate
