"""The admin gate in-process, as a plain ASGI app: what it answers, holds and lets through.

The held 429 (the tarpit) is checked through the pause the gate asks for, not by timing it.
"""

import asyncio

import pytest

from service import admin_gate
from service.admin_gate import AdminGate, RefusalBuckets

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


async def _app(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def call(gate, path="/admin/ledger", method="GET", headers=(), host="10.0.0.1"):
    messages = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers),
             "client": (host, 4321)}
    await gate(scope, receive, send)
    start = messages[0]
    return start["status"], dict(start["headers"])


def test_the_bucket_allows_its_burst_then_refills_at_its_rate():
    clock = Clock()
    buckets = RefusalBuckets(per_s=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: the next refusal in 1/rate s
    assert buckets.take("b") == 0.0  # every source has its own
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


async def test_refusals_throttling_and_the_token(monkeypatch):
    pauses = []

    async def no_sleep(seconds):
        pauses.append(seconds)

    monkeypatch.setattr(admin_gate, "_pause", no_sleep)
    clock = Clock()
    gate = AdminGate(_app, token="secret", per_s=0.5, burst=2, max_body_bytes=1024, tarpit_s=1.0, clock=clock)
    good = [(b"authorization", b"Bearer secret")]
    assert (await call(gate))[0] == 401
    assert (await call(gate, headers=[(b"authorization", b"Bearer wrong")]))[0] == 403
    status, headers = await call(gate)
    assert status == 429 and headers[b"retry-after"] == b"2" and b"connection" not in headers
    assert pauses == [1.0]  # held min(Retry-After, tarpit) before it is sent
    # the token passes however empty its address's bucket is; open and non-admin paths pass
    assert (await call(gate, headers=good))[0] == 204
    assert (await call(gate, path="/admin/flags/provider_skip", method="PUT", headers=good))[0] == 204
    assert (await call(gate, path="/admin/flags"))[0] == 204
    assert (await call(gate, path="/api/orders/instant/execute", method="POST"))[0] == 204
    assert (await call(gate, path="/admin/flags/audit", host="10.0.0.2"))[0] == 401  # another source
    assert gate.refused == {401: 2, 403: 1, 429: 1}


async def test_at_most_max_held_429s_are_held_the_rest_close(monkeypatch):
    release = asyncio.Event()

    async def held(seconds):
        await release.wait()

    monkeypatch.setattr(admin_gate, "_pause", held)
    monkeypatch.setattr(admin_gate, "MAX_HELD", 3)
    gate = AdminGate(_app, token="secret", per_s=0.1, burst=1, max_body_bytes=1024, clock=Clock())
    assert (await call(gate))[0] == 401
    waiting = [asyncio.create_task(call(gate)) for _ in range(3)]
    await asyncio.sleep(0)
    status, headers = await call(gate)  # a fourth while three are held: at once, and closed
    assert status == 429 and headers[b"connection"] == b"close"
    release.set()
    assert [(await task)[0] for task in waiting] == [429, 429, 429]
