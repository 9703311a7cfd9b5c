"""The open-model (arrival-rate) user that every scenario builds on.

Locust's users are a closed loop: a user sends its next request only after the previous one
answered, so when the service slows down the load drops and the slow period is under-sampled
(coordinated omission; Locust does not correct for it). Here a generator schedules *intended*
send times at a fixed or Poisson rate, independent of responses, and hands each arrival to a
greenlet from a bounded pool. Every record keeps the intended and the actual send time; the
client latency is measured from both; an arrival sent more than `late_ms` after its intended
time (the pool was full, or the process could not keep up) is counted as a late send.

With `load.model = "users"` the same scenarios run as a classic closed loop (think time
`load.think_s`), for comparison.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import gevent
import orjson
from gevent.pool import Pool
from locust import task
from locust.contrib.fasthttp import FastHttpSession, FastHttpUser

from loadtests.clock import ArrivalClock
from loadtests.state import STATE

ORDER_PATH = "/api/orders/instant/execute"
RETRY_PAUSE_S = 0.25  # between attempts of an order that got no response (load.retry_s)


class Arrival:
    """One scheduled arrival: what a scenario's `act` gets."""

    __slots__ = ("intended", "phase", "shift", "started")

    def __init__(self, intended: float, started: float, phase: str | None):
        self.intended = intended
        self.started = started
        self.phase = phase
        self.shift = 0.0

    def prepared(self) -> None:
        """Preparation requests (account, probe) are done: they are not the arrival's lateness,
        so later orders' intended time moves by the time they took; the generator's delay stays."""
        self.shift = time.time() - self.started


class ArrivalRateUser(FastHttpUser):
    abstract = True
    scenario = ""
    _instances = 0

    def connections_per_arrival(self) -> int:
        """HTTP connections one arrival may use at once (a burst needs several)."""
        return 1

    def __init__(self, environment):
        super().__init__(environment)
        self.rng = random.Random()
        self.pool: Pool | None = None
        self.clock: ArrivalClock | None = None

    def on_start(self) -> None:
        deadline = time.time() + 30
        while not STATE.configured and time.time() < deadline:
            gevent.sleep(0.05)  # the schedule message is on its way from the master
        load = STATE.load
        seed = load.get("seed")
        # Seeded runs are reproducible per process: seed, worker, scenario, instance number.
        ArrivalRateUser._instances += 1
        n = ArrivalRateUser._instances
        self.rng = random.Random(None if seed is None else
                                 f"{seed}:{STATE.worker_index}:{self.scenario}:{n}")
        self.clock = ArrivalClock(STATE, STATE.share(self.scenario),
                                  load.get("arrival", "poisson") == "poisson", self.rng)
        inflight = int(load.get("max_inflight", 256))
        self.pool = Pool(inflight)
        STATE.pools.append(self.pool)
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

    # --- the generator ------------------------------------------------------------------

    @task
    def generate(self) -> None:
        if not STATE.configured:
            gevent.sleep(1)
            return
        if STATE.load.get("model") == "users":
            self._closed_loop()
            return
        while True:
            intended = self.clock.next(time.time())
            if intended is None:
                gevent.sleep(0.5)  # the schedule is over; the shape ends the run
                continue
            delay = intended - time.time()
            if delay > 0:
                gevent.sleep(delay)
            self.pool.wait_available()
            self.pool.spawn(self._run_arrival, intended)

    def _closed_loop(self) -> None:
        think = float(STATE.load.get("think_s", 0.5))
        while True:
            now = time.time()
            if STATE.phase_at(now) is None:
                gevent.sleep(0.5)
                continue
            self._run_arrival(now)
            if think:
                gevent.sleep(self.rng.expovariate(1 / think))

    def _run_arrival(self, intended: float) -> None:
        started = time.time()
        phase = STATE.phase_at(intended)
        arrival = Arrival(intended, started, phase["name"] if phase else None)
        try:
            self.act(arrival)
        except gevent.GreenletExit:
            raise
        except Exception as exc:  # noqa: BLE001 - a scenario bug must not stop the generator
            self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)

    def act(self, arrival: Arrival) -> None:
        raise NotImplementedError

    # --- requests -----------------------------------------------------------------------

    def order(
        self,
        arrival: Arrival,
        *,
        user_type: str,
        user_id: int,
        symbol: str,
        side: str,
        volume: float,
        name: str | None = None,
        expect: str | None = None,
        burst: str | None = None,
    ) -> tuple[int, dict[str, Any] | None]:
        """POST one order, classify it, emit its record. `expect`: None, "accept" or "reject".

        Without `expect`, 200 is ok and a 409 business rejection is an expected outcome. With
        it, the other answer is a failure (a wrong acceptance, or a wrong rejection).
        """
        flow = "provider" if user_type == "live" else "local"
        name = name or self.scenario
        payload = {"user_id": user_id, "user_type": user_type, "symbol": symbol,
                   "side": side, "volume": volume}
        client_order_id = None
        if STATE.load.get("client_order_ids"):
            # One id per arrival: the run's recovery check counts orders per id in the database.
            client_order_id = uuid.uuid4().hex
            payload["client_order_id"] = client_order_id
        intended = arrival.intended + arrival.shift
        sent = time.time()
        t_start = time.perf_counter()
        # With client_order_ids, an order that got no response at all (the service was down)
        # is sent again with the same id and payload until `retry_s` after the first send: the
        # service returns the stored result if the first attempt was persisted, never a second
        # order. The record is the arrival's: latency from the first send to the final answer.
        retry_s = float(STATE.load.get("retry_s", 0.0)) if client_order_id else 0.0
        attempts = 0
        while True:
            attempts += 1
            status, body, reason, served = 0, None, None, None
            with self.client.post(ORDER_PATH, data=orjson.dumps(payload),
                                  headers={"content-type": "application/json"},
                                  name=f"{name} {flow}", catch_response=True) as resp:
                latency_ms = (time.perf_counter() - t_start) * 1000
                status = resp.status_code or 0
                try:
                    body = orjson.loads(resp.content) if resp.content else None
                except orjson.JSONDecodeError:
                    body = None
                if isinstance(body, dict):
                    served = body.get("mode")
                # A retry answered from the stored order: the first attempt had been persisted.
                replayed = attempts > 1 and status == 200 and \
                    (resp.headers.get("idempotent-replay") or "").lower() == "true"
                outcome, reason = classify(status, body, expect)
                retry = status == 0 and time.time() - sent < retry_s
                if outcome == "failure":
                    resp.failure((reason or f"HTTP {status}") + (" (retried)" if retry else ""))
                else:
                    resp.success()
            if not retry:
                break
            gevent.sleep(RETRY_PAUSE_S)
        late = (sent - intended) * 1000 > float(STATE.load.get("late_ms", 10.0))
        STATE.emit({
            "intended": intended, "sent": sent, "latency_ms": latency_ms, "status": status,
            "outcome": outcome, "flow": flow, "name": name, "phase": arrival.phase,
            "late": late, "served_mode": served, "reason": reason, "burst": burst,
            "worker": STATE.worker_id, "client_order_id": client_order_id,
            "attempts": attempts, "replayed": replayed,
        })
        return status, body

    def account(self, user_type: str, user_id: int) -> dict[str, Any] | None:
        with self.client.get(f"/api/accounts/{user_type}/{user_id}", name="account",
                             catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return None
            return orjson.loads(resp.content)


def classify(status: int, body: Any, expect: str | None) -> tuple[str, str | None]:
    business = status == 409 and isinstance(body, dict) and body.get("error")
    if status == 200:
        if expect == "reject":
            return "failure", "wrong acceptance: the order exceeded free margin"
        return "ok", None
    if business:
        if expect == "accept":
            return "failure", f"wrong rejection: {body.get('error')}"
        return "expected_rejection", str(body.get("error"))
    if status == 0:
        return "failure", "no response (connection error or timeout)"
    return "failure", f"HTTP {status}"


class MarginSizer:
    """USD margin of one lot per (user_type, symbol), learned from a small real order.

    Margin scales linearly with volume, and the service returns `margin_usd` for each
    accepted order, so one 0.01-lot probe per symbol (refreshed as prices drift) sizes any
    later order. Probes are real orders: they are recorded, named `margin_probe`.
    """

    PROBE_VOLUME = 0.01
    REFRESH_S = 30.0

    def __init__(self):
        self.per_lot: dict[tuple[str, str], tuple[float, float]] = {}

    def margin_per_lot(self, user: ArrivalRateUser, arrival: Arrival, user_type: str,
                       user_id: int, symbol: str) -> float | None:
        known = self.per_lot.get((user_type, symbol))
        if known and time.time() - known[1] < self.REFRESH_S:
            return known[0]
        status, body = user.order(arrival, user_type=user_type, user_id=user_id, symbol=symbol,
                                  side="buy", volume=self.PROBE_VOLUME, name="margin_probe")
        if status == 200 and isinstance(body, dict) and body.get("margin_usd"):
            value = float(body["margin_usd"]) / self.PROBE_VOLUME
            self.per_lot[(user_type, symbol)] = (value, time.time())
            return value
        return known[0] if known else None
