"""The open-model (arrival-rate) user that every scenario builds on.

Locust's users are a closed loop: a user sends its next request only after the previous one
answered, so when the service slows down the load drops and the slow period is under-sampled
(coordinated omission; Locust does not correct for it). Here a generator schedules *intended*
send times at a fixed or Poisson rate, independent of responses, and hands each arrival to a
greenlet from a bounded pool. Every record keeps the intended and the actual send time; the
client latency is measured from both; an arrival sent more than `late_ms` after its intended
time (the pool was full, the process could not keep up, or the arrival's own preparation
requests were slow) is counted as a late send.

The schedule is the truth: every record of an arrival carries the arrival's scheduled time,
preparation requests included (a stall in them shows in `latency_from_intended_ms` of every
later request of the arrival), and every scheduled arrival writes at least one record. One that
a scenario cannot use writes `outcome: "skipped"` with a `reason` from SKIP_REASONS.

With `load.model = "users"` the same scenarios run as a classic closed loop (think time
`load.think_s`), for comparison.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

import gevent
from gevent.event import Event
from greenlet import getcurrent, greenlet
from locust import task
from locust.contrib.fasthttp import FastHttpSession, FastHttpUser

from loadtests.clock import ArrivalClock
from loadtests.records import SKIP_REASONS, SKIPPED
from loadtests.state import ProcessState, state_of
from loadtests.waker import Waker, timerfd_enabled


class Arrival:
    """One scheduled arrival: what a scenario's `act` gets."""

    __slots__ = ("intended", "phase", "prep_ms", "records", "schedule_phase", "started")

    def __init__(self, intended: float, started: float, phase: dict[str, Any] | None):
        self.intended = intended
        self.started = started
        self.schedule_phase = phase  # the schedule's entry of the intended time (mode, rate, ...)
        self.phase = phase["name"] if phase else None
        self.prep_ms: float | None = None
        self.records = 0

    def prepared(self) -> None:
        """Preparation requests (account, probe) are done. The intended time does not move
        (coordinated omission: a stall in the preparation is the arrival's latency); the
        time they took is kept as `prep_ms` on the records that follow, so it can be told apart."""
        self.prep_ms = (time.time() - self.started) * 1000


class ArrivalPool:
    """At most `size` arrivals in flight, on greenlets that are kept and reused.

    What gevent's Pool did per arrival (a Greenlet object, its links, the group's set and the
    semaphore) cost more than the record keeping; a new raw greenlet per arrival still cost
    ~10 us to create and tear down. Here a finished arrival's greenlet parks itself (switched
    out to the hub, in a list) and the next arrival is switched into it; a new one is made only
    when none is parked. Same
    interface as the Pool for the generator and `join_pools`: `wait_available()`,
    `spawn(fn, *args)`, `join(timeout)`; `free_count()` too."""

    __slots__ = ("_empty", "_freed", "_hub", "_parked", "_waiting", "inflight", "size")

    def __init__(self, size: int):
        self.size = size
        self.inflight = 0
        self._waiting = False
        self._freed = Event()
        self._empty = Event()
        self._empty.set()
        self._parked: list[greenlet] = []
        self._hub = gevent.get_hub()

    def free_count(self) -> int:
        return self.size - self.inflight

    def wait_available(self) -> None:
        while self.inflight >= self.size:
            self._waiting = True
            self._freed.clear()
            self._freed.wait()

    def spawn(self, fn, *args) -> None:
        """Start `fn(*args)` now: the caller (the generator) switches straight into the
        arrival's greenlet, which runs up to its first wait (for a request: its send), and the
        caller resumes from the hub's next round of callbacks. Handing it over through the hub
        instead (a callback, as gevent.spawn does) put every greenlet the same loop iteration had
        woken, each an answer to read and record, between the intended time and the send."""
        if self.inflight == 0:
            self._empty.clear()
        self.inflight += 1
        worker = self._parked.pop() if self._parked else greenlet(self._work, parent=self._hub)
        self._hub.loop.run_callback(getcurrent().switch)
        worker.switch(fn, args)

    def _work(self, fn, args) -> None:
        hub = self._hub
        while True:
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - _run_arrival catches a scenario's; this is a bug
                hub.handle_error(getcurrent(), *sys.exc_info())
            finally:
                self.inflight -= 1
                if self._waiting:
                    self._waiting = False
                    self._freed.set()
                if self.inflight == 0:
                    self._empty.set()
            self._parked.append(getcurrent())
            fn, args = hub.switch()  # parked until spawn() switches here; GreenletExit ends it

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no arrival is in flight (True) or the timeout passed (False)."""
        return self._empty.wait(timeout)


class ArrivalRateUser(FastHttpUser):
    abstract = True
    scenario = ""

    def connections_per_arrival(self) -> int:
        """HTTP connections one arrival may use at once (a burst needs several)."""
        return 1

    def __init__(self, environment):
        super().__init__(environment)
        # the run's state lives on the Locust environment: one per runner, not per module
        self.state: ProcessState = state_of(environment)
        self.rng = random.Random()
        self.pool: ArrivalPool | None = None
        self.clock: ArrivalClock | None = None
        self.waker: Waker | None = None
        self.late_ms = 10.0

    def on_start(self) -> None:
        deadline = time.time() + 30
        while not self.state.configured and time.time() < deadline:
            gevent.sleep(0.05)  # the schedule message is on its way from the master
        load = self.state.load
        seed = load.get("seed")
        # Seeded runs are reproducible per process: seed, worker, scenario, instance number.
        self.state.user_instances += 1
        n = self.state.user_instances
        self.rng = random.Random(None if seed is None else
                                 f"{seed}:{self.state.worker_index}:{self.scenario}:{n}")
        self.clock = ArrivalClock(self.state, self.state.share(self.scenario),
                                  load.get("arrival", "poisson") == "poisson", self.rng)
        inflight = int(load.get("max_inflight", 256))
        self.pool = ArrivalPool(inflight)
        self.waker = Waker(timerfd=timerfd_enabled())
        self.late_ms = float(load.get("late_ms", 10.0))
        self.state.pools.append(self.pool)
        timeout = float(load.get("timeout_s", 10.0))
        self.client = FastHttpSession(
            base_url=self.host,
            request_event=self.environment.events.request,
            user=self,
            network_timeout=timeout,
            connection_timeout=timeout,
            max_retries=0,
            concurrency=inflight * self.connections_per_arrival(),
        )

    def on_stop(self) -> None:
        if self.waker is not None:
            self.waker.close()
            self.waker = None

    # --- the generator ------------------------------------------------------------------

    @task
    def generate(self) -> None:
        if not self.state.configured:
            gevent.sleep(1)
            return
        if self.state.load.get("model") == "users":
            self._closed_loop()
            return
        while True:
            intended = self.clock.next(time.time())
            if intended is None:
                gevent.sleep(0.5)  # the schedule is over; the shape ends the run
                continue
            self.waker.sleep_until(intended)  # never before the intended time
            self.pool.wait_available()
            self.pool.spawn(self._run_arrival, intended)

    def _closed_loop(self) -> None:
        think = float(self.state.load.get("think_s", 0.5))
        while True:
            now = time.time()
            if self.state.phase_at(now) is None:
                gevent.sleep(0.5)
                continue
            self._run_arrival(now)
            if think:
                gevent.sleep(self.rng.expovariate(1 / think))

    def _run_arrival(self, intended: float) -> None:
        started = time.time()
        phase = self.state.phase_at(intended)
        arrival = Arrival(intended, started, phase)
        try:
            self.act(arrival)
        except gevent.GreenletExit:
            raise
        except Exception as exc:  # noqa: BLE001 - a scenario bug must not stop the generator
            self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)
            self.skip(arrival, "error")
        if not arrival.records:
            self.skip(arrival, "no_record")

    def act(self, arrival: Arrival) -> None:
        raise NotImplementedError

    # --- records ------------------------------------------------------------------------

    def emit(self, arrival: Arrival, *, sent: float, latency_ms: float | None, status: int,
             outcome: str, flow: str | None, name: str, **extra: Any) -> None:
        """Record one request of an arrival, at the arrival's scheduled time. A request that got
        no response (status 0: connection error or the client timeout) is `censored`: its
        latency is the elapsed time until the failure, a lower bound of the true one."""
        intended = arrival.intended
        arrival.records += 1
        sending = outcome != SKIPPED
        late = sending and (sent - intended) * 1000 > self.late_ms
        rec = {
            "intended": intended, "sent": sent, "latency_ms": latency_ms,
            "status": status, "outcome": outcome, "flow": flow, "name": name,
            "phase": arrival.phase, "late": late, "worker": self.state.worker_id, **extra,
        }
        if sending and status == 0 and outcome == "failure":
            rec["censored"] = True
        if arrival.prep_ms is not None and sending:
            rec.setdefault("prep_ms", arrival.prep_ms)
        self.state.emit(rec)

    def skip(self, arrival: Arrival, reason: str, *, status: int = 0, flow: str | None = None,
             elapsed: bool = False) -> None:
        """Record an arrival the scenario could not use: not a request sent, not a failure.
        With `elapsed`, `latency_ms` is the time spent on it since it started (its preparation
        requests), else null."""
        assert reason in SKIP_REASONS, reason
        latency_ms = (time.time() - arrival.started) * 1000 if elapsed else None
        self.emit(arrival, sent=arrival.started, latency_ms=latency_ms, status=status,
                  outcome=SKIPPED, flow=flow, name=self.scenario, reason=reason)
