"""The reference executor's order path as a Locust user: place an order, read an account.

`OrderUser` is the engine's open-model `ArrivalRateUser` plus what only the reference service
has: `POST /api/orders/instant/execute`, its flows (live account -> provider, demo -> local),
its 409 business rejections, idempotent retries with `client_order_id`, and the served mode
in the response body.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import gevent
import orjson

from loadtests.arrival import Arrival, ArrivalRateUser

ORDER_PATH = "/api/orders/instant/execute"
RETRY_PAUSE_S = 0.25  # between attempts of an order that got no response (load.retry_s)


class OrderUser(ArrivalRateUser):
    abstract = True

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
        if self.state.load.get("client_order_ids"):
            # One id per arrival: the run's recovery check counts orders per id in the database.
            client_order_id = uuid.uuid4().hex
            payload["client_order_id"] = client_order_id
        # through the gateway tier when the run has one (`run --gateway`): the orders' URL is
        # the gateway's, everything else (accounts, admin) the executor's
        url = (self.state.target.get("gateway_url") or "") + ORDER_PATH
        sent = time.time()
        t_start = time.perf_counter()
        # With client_order_ids, an order that got no response at all (the service was down)
        # is sent again with the same id and payload until `retry_s` after the first send: the
        # service returns the stored result if the first attempt was persisted, never a second
        # order. The record is the arrival's: latency from the first send to the final answer.
        retry_s = float(self.state.load.get("retry_s", 0.0)) if client_order_id else 0.0
        attempts = 0
        while True:
            attempts += 1
            status, body, reason, served = 0, None, None, None
            with self.client.post(url, data=orjson.dumps(payload),
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
        self.emit(arrival, sent=sent, latency_ms=latency_ms, status=status, outcome=outcome,
                  flow=flow, name=name, served_mode=served, reason=reason, burst=burst,
                  client_order_id=client_order_id, attempts=attempts, replayed=replayed)
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

    def margin_per_lot(self, user: OrderUser, arrival: Arrival, user_type: str,
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
