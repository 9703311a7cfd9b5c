"""The admin gate: refuse unauthenticated admin calls before the app does any work for them.

A pure ASGI middleware in front of the body guard and FastAPI. A request under `/admin/`
(except the open `GET /admin/flags`, which answers the mode from memory) without
`Authorization: Bearer <EXECBENCH_ADMIN_TOKEN>` is answered here: 401 without a bearer token,
403 with a wrong one (compared in constant time) or when no token is configured. No routing,
no dependency injection, no body parsing, no database access: the refusal is counted in memory
for the aggregated audit trail (service/audit.py; the first attempt of a source's minute also
has its requested mode read from its body, which every later one is not).

A method no route of a known admin path declares (`TRACE /admin/flags`) is passed to the
router, whose 405 does no work and changes nothing (service/methods.py): "not allowed" whoever
asks, as a schema fuzzer expects.

Refusals are rate-limited per source address: each source has a token bucket of
`admin_refusal_burst` refused attempts (`EXECBENCH_ADMIN_REFUSAL_BURST`, default 20), refilled at
`admin_refusals_per_s` a second (`EXECBENCH_ADMIN_REFUSALS_PER_S`, default 5); a source whose
bucket is empty gets 429 with `Retry-After` (whole seconds until its next refusal is allowed),
audited the same aggregated way. Only refusals take from the bucket: a caller with the right
token is never throttled, whatever other callers (or other clients at its own address) send.

A 429 is sent after a pause of min(Retry-After, `admin_refusal_tarpit_s`) (default 1 s; a
tarpit): answered at once, a client that ignores Retry-After gets its 429s as fast as the event
loop can write them — a raw-socket flood of 8 connections drew ~9,500 answers a second, a whole
core of the one event loop the orders run on. Held, each connection gets about one answer a
second. At most `MAX_HELD` 429s are held at once (far below serve's connection limit); beyond
that one is answered at once and its connection closed.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time

import orjson

from service.middleware import _send_json, log_rejection

MAX_HELD = 128
_pause = asyncio.sleep  # the tarpit's wait (tests replace it, not asyncio.sleep itself)
OPEN = frozenset({("GET", "/admin/flags"), ("HEAD", "/admin/flags")})
# what the audit trail calls each admin endpoint (the routes' own names)
ENDPOINTS = {"/admin/flags/provider_skip": "provider_skip", "/admin/provider": "provider",
             "/admin/ledger": "ledger", "/admin/flags/audit": "audit"}


class RefusalBuckets:
    """One token bucket per source host; `take` returns 0 when a refusal is allowed, else the
    seconds until the next one is. At most `max_sources` buckets: beyond that the full ones
    (sources quiet long enough to have refilled) are dropped, and if none is, all of them."""

    def __init__(self, per_s: float, burst: int, clock=time.monotonic, max_sources: int = 10_000):
        self.per_s, self.burst, self._clock, self._max = per_s, burst, clock, max_sources
        self._buckets: dict[str, list[float]] = {}  # host -> [tokens, last refill]

    def take(self, host: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._prune(now)
            self._buckets[host] = bucket = [float(self.burst), now]
        elif self.per_s > 0:
            bucket[0] = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.per_s)
        bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / self.per_s if self.per_s > 0 else 60.0

    def _prune(self, now: float) -> None:
        full = [h for h, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.per_s >= self.burst]
        for host in full if full else list(self._buckets):
            del self._buckets[host]


class AdminGate:
    def __init__(self, app, *, token: str | None, per_s: float, burst: int, max_body_bytes: int,
                 tarpit_s: float = 1.0, clock=time.monotonic, methods=None):
        self.app = app
        self._methods = methods  # service/methods.py RouteMethods: undeclared methods go to 405
        self._tarpit_s = tarpit_s
        self._held = 0
        self._token = token.encode() if token else None
        self.buckets = RefusalBuckets(per_s, burst, clock)
        self._max_body = max_body_bytes
        self.refused = {401: 0, 403: 0, 429: 0}  # answered by the gate since start

    def _check(self, headers) -> tuple[int, str] | None:
        """None when the request carries the right token, else (status, detail)."""
        header = b""
        for name, value in headers:
            if name == b"authorization":
                header = value
                break
        scheme, _, presented = header.partition(b" ")
        if not header or scheme.lower() != b"bearer" or not presented:
            return 401, "missing bearer token"
        if self._token is None:
            return 403, "admin changes are disabled: EXECBENCH_ADMIN_TOKEN is not set"
        if not hmac.compare_digest(presented, self._token):
            return 403, "invalid token"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if (not path.startswith("/admin/") and path != "/admin") or (scope["method"], path) in OPEN:
            return await self.app(scope, receive, send)
        refused = self._check(scope["headers"])
        if refused is None:
            return await self.app(scope, receive, send)  # authenticated: never throttled
        if self._methods is not None:  # asked only of a request about to be refused
            declared = self._methods.allowed(path)
            if declared and scope["method"] not in declared:
                return await self.app(scope, receive, send)  # the router's 405: no work, no state
        status, detail = refused
        client = scope.get("client")
        host = client[0] if client else "?"
        wait = self.buckets.take(host)
        if wait:
            status, detail = 429, "too many refused admin attempts from this address"
        self.refused[status] += 1
        await self._audit(scope, receive, client, status, detail)
        log_rejection(scope, status, "admin_refused")
        if status == 429:
            retry_after = max(1, math.ceil(wait))
            headers = [(b"retry-after", str(retry_after).encode())]
            if self._held >= MAX_HELD:
                headers.append((b"connection", b"close"))
            elif self._tarpit_s > 0:
                self._held += 1
                try:
                    await _pause(min(retry_after, self._tarpit_s))
                finally:
                    self._held -= 1
            await _send_json(send, 429, {"error": "too_many_requests", "detail": detail,
                                         "retry_after_s": retry_after}, headers)
        else:
            await _send_json(send, status, {"error": "unauthorized" if status == 401 else "forbidden",
                                            "detail": detail},
                             [(b"www-authenticate", b"Bearer")] if status == 401 else None)

    async def _audit(self, scope, receive, client, status: int, detail: str) -> None:
        services = getattr(scope["app"].state, "services", None) if "app" in scope else None
        if services is None:  # before the lifespan has built the trail
            return
        path = scope["path"]
        flag = ENDPOINTS.get(path, path[:32])
        remote = f"{client[0]}:{client[1]}" if client else None
        requested = None
        if scope["method"] in ("PUT", "POST") and services.audit.is_new(
                action="refused", flag=flag, remote=remote, http_status=status):
            requested = await self._requested_mode(receive)  # once per source and minute
        services.audit.note(action="refused", flag=flag, actor="unauthenticated", remote=remote,
                            requested=requested, reason=detail, http_status=status)

    async def _requested_mode(self, receive) -> str | None:
        """The body's `mode`, for the audit row (at most the body limit is read)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        try:
            mode = orjson.loads(b"".join(chunks)).get("mode")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        if not isinstance(mode, str):
            return None
        try:
            mode.encode("utf-8")
        except UnicodeEncodeError:
            return None
        return mode[:64]
