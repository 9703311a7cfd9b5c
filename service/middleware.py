"""Pure ASGI middleware (never BaseHTTPMiddleware: it costs a task and a copy per request).

`BodyGuard` reads a request's whole body before the app sees any of it, so every body over the
limit is a 413 whether it declared its length or came chunked, and every JSON body the app
parses is one the service can also write back: bounded nesting, integers within 64 bits, finite
numbers, valid Unicode (a lone surrogate decodes in Python but cannot be encoded again — the
error answer, the database driver and the log all failed on it). `ErrorGuard` turns anything
unexpected into a JSON 500 and logs each kind of failure's traceback once, not per request.
"""

from __future__ import annotations

import json
import logging
import time
import traceback

import orjson

log = logging.getLogger("execbench.http")

MAX_DEPTH = 32  # the API's deepest body is 2 levels; a hostile 300 overflowed the validator's recursion
MAX_INT = 2**63 - 1


async def _send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": payload})


class RateLimitedLog:
    """One line per event, at most `per_s` lines a second per key; the rest are counted and the
    count is said on the next line that gets through. A flood of bad requests costs log lines
    at a fixed rate, not one per request."""

    def __init__(self, logger: logging.Logger, per_s: float = 5.0, clock=time.monotonic):
        self._log, self._per_s, self._clock = logger, per_s, clock
        self._state: dict[str, list] = {}  # key -> [tokens, last refill, suppressed]

    def info(self, key: str, message: str, *args) -> bool:
        now = self._clock()
        state = self._state.setdefault(key, [self._per_s, now, 0])
        state[0] = min(self._per_s, state[0] + (now - state[1]) * self._per_s)
        state[1] = now
        if state[0] < 1:
            state[2] += 1
            return False
        state[0] -= 1
        suppressed, state[2] = state[2], 0
        if suppressed:
            message += f" ({suppressed} similar lines suppressed)"
        self._log.info(message, *args)
        return True


rejections = RateLimitedLog(log)


def log_rejection(scope, status: int, kind: str, where: str = "") -> None:
    """The one line a rejected request leaves: method, path, status, what was wrong."""
    rejections.info(f"{status}:{kind}", "rejected %s %s: %d %s%s", scope.get("method"), scope.get("path"),
                    status, kind, f" at {where}" if where else "")


class _Unusable(ValueError):
    def __init__(self, loc: list, kind: str, message: str):
        super().__init__(message)
        self.loc, self.kind, self.message = loc, kind, message


def _parse_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_INT:
        raise _Unusable([], "int_too_large", "integer outside the 64-bit range")
    return value


def _parse_constant(name: str):
    raise _Unusable([], "finite_number", f"{name} is not a JSON number")


def _check(document) -> None:
    """Depth, lone surrogates and number ranges, iteratively (no recursion to overflow)."""
    stack = [(document, [], 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise _Unusable(path, "too_deep", f"nesting deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key, path + [key])
                stack.append((item, path + [key], depth + 1))
        elif isinstance(value, str):
            _check_text(value, path)


def _check_text(text: str, path: list) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unusable(path, "invalid_unicode", "string is not valid Unicode (a lone surrogate)") from None


def inspect_json(body: bytes) -> _Unusable | None:
    """Why this JSON body must not reach the app, or None (None too for JSON that does not
    parse at all: the app answers that one with its own 422 `json_invalid`)."""
    try:
        document = json.loads(body, parse_int=_parse_int, parse_constant=_parse_constant)
    except _Unusable as exc:
        return exc
    except RecursionError:
        return _Unusable([], "too_deep", f"nesting deeper than {MAX_DEPTH} levels")
    except ValueError:  # not JSON, or not UTF-8: FastAPI's own error says so
        return None
    try:
        _check(document)
    except _Unusable as exc:
        return exc
    return None


class BodyGuard:
    """Read the body (at most `max_bytes`), refuse it with 413 above that or 422 when its JSON
    is unusable, then hand the app the same bytes."""

    def __init__(self, app, max_bytes: int, on_reject=None):
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject  # async (scope, status, kind): the admin routes audit theirs

    async def _refuse(self, scope, send, status: int, body: dict, kind: str, where: str = "",
                      headers: list | None = None) -> None:
        log_rejection(scope, status, kind, where)
        if self.on_reject is not None:
            try:
                await self.on_reject(scope, status, kind)
            except Exception:  # the refusal is answered whatever its audit does
                log.warning("auditing a refused body failed", exc_info=True)
        await _send_json(send, status, body, headers)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        json_body = True
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await self._refuse(scope, send, 400, {"error": "bad_request",
                                                                 "detail": "invalid Content-Length"},
                                              "invalid_content_length")
                if declared > self.max_bytes:
                    return await self._refuse(scope, send, 413, self._too_large(), "payload_too_large",
                                              headers=[(b"connection", b"close")])
            elif name == b"content-type":
                json_body = b"json" in value.lower()
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # the client went away; nothing to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                # the rest is never read: close the connection rather than drain it
                return await self._refuse(scope, send, 413, self._too_large(), "payload_too_large",
                                          headers=[(b"connection", b"close")])
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and json_body:
            problem = inspect_json(body)
            if problem is not None:
                return await self._refuse(scope, send, 422, {"detail": [
                    {"loc": ["body", *problem.loc], "msg": problem.message, "type": problem.kind}]},
                    problem.kind, ".".join(map(str, problem.loc)))
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: wait for the disconnect like the server would
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> dict:
        return {"error": "payload_too_large", "detail": f"request body above {self.max_bytes} bytes"}


class ErrorGuard:
    """Last line: any exception becomes a JSON 500 without a stack trace. The log gets each
    kind's traceback (type and where it was raised) once per `quiet_s`; repeats in between are
    counted into one line, so a request that fails the same way 4,000 times costs 4,000 × 500
    answers but not 4,000 tracebacks."""

    def __init__(self, app, quiet_s: float = 60.0, clock=time.monotonic):
        self.app = app
        self._quiet_s, self._clock = quiet_s, clock
        self._seen: dict[tuple, list] = {}  # kind -> [last traceback logged at, repeats since]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 -- the last line: every failure becomes a 500
            self._log(scope, exc)
            if not started:
                await _send_json(send, 500, {"error": "internal_error",
                                             "detail": "the server failed to handle this request"})

    def _log(self, scope, exc: Exception) -> None:
        frames = traceback.extract_tb(exc.__traceback__)
        origin = (frames[-1].filename, frames[-1].lineno) if frames else ("?", 0)
        kind = (type(exc).__qualname__, *origin)
        now = self._clock()
        seen = self._seen.get(kind)
        where = f"{scope.get('method')} {scope.get('path')}"
        if seen is None or now - seen[0] >= self._quiet_s:
            repeats = f" ({seen[1]} more since the last traceback)" if seen and seen[1] else ""
            self._seen[kind] = [now, 0]
            log.error("unhandled error on %s%s", where, repeats, exc_info=exc)
        else:
            seen[1] += 1
            if seen[1] in (1, 10, 100, 1000) or seen[1] % 10_000 == 0:
                log.error("unhandled error on %s: %s again (%d times since its traceback)", where,
                          type(exc).__name__, seen[1])
