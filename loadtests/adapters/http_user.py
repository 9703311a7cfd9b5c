"""The open-model user of the generic HTTP target: one weighted request per arrival.

Each arrival draws a request of `[[target.requests]]` by weight and a population member,
renders the templates, sends it, classifies the status (`ok_status`, `rejected_status`, the
rest failures), reads the server metrics `server_timing` names and the served variant
`served_mode` names, and records it.

The request goes out through the lean client (loadtests/adapters/lean_http.py: the same bytes
as Locust's FastHttpSession sent, at a fraction of its CPU) and is reported to Locust's request
event as the session reported it (its stats and CSVs are unchanged). Parts of a request without
any variable (path, headers, a JSON body) are rendered once, when the user starts. Redirects,
cookies and other origins stay with the session (see lean_http's docstring).
"""

from __future__ import annotations

import bisect
import itertools
import re
import time
from pathlib import Path
from typing import Any

import orjson
from geventhttpclient.header import Headers as GHeaders
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, FastRequest
from locust.exception import CatchResponseError

from loadtests.adapters import lean_http
from loadtests.adapters.http_target import ServerMetric, read_population
from loadtests.adapters.templates import Template, compile_value, is_static, render_value
from loadtests.arrival import Arrival, ArrivalRateUser

NO_RESPONSE = "no response (connection error or timeout)"
_ABSOLUTE = re.compile(r"^https?://", re.IGNORECASE)  # as Locust's session tells them


class CompiledRequest:
    def __init__(self, conf: dict[str, Any], columns: tuple[str, ...]):
        self.name = conf["name"]
        self.flow = conf.get("flow", self.name)
        self.method = conf.get("method", "GET").upper()
        self.path = Template(conf["path"], columns)
        self.json = compile_value(conf["json"], columns) if "json" in conf else None
        self.body = Template(conf["body"], columns) if "body" in conf else None
        self.headers = compile_value(conf.get("headers", {}), columns)
        if self.json is not None and not any(k.lower() == "content-type" for k in self.headers):
            self.headers["content-type"] = "application/json"
        ok = conf.get("ok_status")
        self.ok = frozenset(ok) if ok else frozenset(range(200, 300))
        self.rejected = frozenset(conf.get("rejected_status", ()))
        sources = conf.get("server_timing", [])
        self.metrics = [ServerMetric(s) for s in ([sources] if isinstance(sources, str) else sources)]
        mode = conf.get("served_mode")
        self.served = ServerMetric(mode) if mode else None
        self.needs_body = any(m.kind == "json" for m in self.metrics) or \
            (self.served is not None and self.served.kind == "json")
        # parts without variables, rendered once (no context needed, no random draws)
        self.static_path = self.path.static
        self.static_headers = render_value(self.headers, {}, None, typed=False) \
            if is_static(self.headers) else None
        self.static_data: bytes | None = None
        if self.json is not None and is_static(self.json):
            self.static_data = orjson.dumps(render_value(self.json, {}, None, typed=True))
        elif self.body is not None and self.body.static is not None:
            self.static_data = self.body.static.encode()
        self.has_data = self.json is not None or self.body is not None
        self.static_url: str | None = None  # set by the user (it knows the base URL)
        # the lean client's header block for static headers, by whether a body is sent
        self.lean_headers: dict[bool, tuple[str, bool]] = {}

    def render(self, ctx: dict[str, Any], rng) -> tuple[str, dict[str, str], bytes | None]:
        path = self.static_path if self.static_path is not None else self.path.render(ctx, rng)
        headers = self.static_headers if self.static_headers is not None else \
            render_value(self.headers, ctx, rng, typed=False)
        data = self.static_data
        if data is None and self.has_data:
            if self.json is not None:
                data = orjson.dumps(render_value(self.json, ctx, rng, typed=True))
            else:
                data = self.body.render(ctx, rng).encode()
        return path, headers, data

    def classify(self, status: int) -> tuple[str, str | None]:
        if status in self.ok:
            return "ok", None
        if status in self.rejected:
            return "expected_rejection", f"HTTP {status}"
        if status == 0:
            return "failure", NO_RESPONSE
        return "failure", f"HTTP {status}"


class HttpRequestsUser(ArrivalRateUser):
    scenario = "requests"

    def on_start(self) -> None:
        super().on_start()
        conf = self.state.target or {}
        rows = read_population(self.state.load, Path(self.state.spec_dir or "."))
        self.rows = rows
        columns = tuple(rows[0]) if rows else ()
        self.requests = [CompiledRequest(r, columns) for r in conf.get("requests", [])]
        self.cumulative = list(itertools.accumulate(float(r.get("weight", 1.0))
                                                    for r in conf.get("requests", [])))
        pop = self.state.load.get("population", {})
        self.first = int(pop.get("first", 1))
        self.users = int(pop.get("users", 1))
        timeout = float(self.state.load.get("timeout_s", 10.0))
        # credentials in the base URL: the session turns them into an Authorization header,
        # and sends every request itself
        self.base_url = self.client.base_url
        self.lean = None if self.client.auth_header else lean_http.LeanClient(
            self.base_url, timeout=timeout, connect_timeout=timeout, size=self.pool.size)
        for req in self.requests:  # the URL Locust's stats name, for a path without variables
            req.static_url = None if req.static_path is None else self._url(req.static_path)
        self.jar = self.client.cookiejar  # the session's: redirects and cookies go through it
        self.request_event = self.environment.events.request

    def on_stop(self) -> None:
        super().on_stop()
        if self.lean is not None:
            self.lean.close()

    def _pick(self) -> CompiledRequest:
        x = self.rng.random() * self.cumulative[-1]
        return self.requests[bisect.bisect_right(self.cumulative, x)]

    def act(self, arrival: Arrival) -> None:
        req = self._pick()
        phase = arrival.schedule_phase
        if self.rows is not None:
            row = self.rng.choice(self.rows)
            user_id = row.get("user_id", next(iter(row.values())))
        else:
            row = {}
            user_id = self.first + self.rng.randrange(self.users)
        ctx = {"mode": phase["mode"] if phase else None, "user_id": user_id, "row": row}
        path, headers, data = req.render(ctx, self.rng)
        sent = time.time()
        t_start = time.perf_counter()
        status, resp_headers, content, _error = self._send(req, path, headers, data)
        latency_ms = (time.perf_counter() - t_start) * 1000
        outcome, reason = req.classify(status)
        body = None
        if req.needs_body and status and content:
            try:
                body = orjson.loads(content)
            except orjson.JSONDecodeError:
                body = None
        server = {}
        served = None
        if status:
            for metric in req.metrics:
                value = metric.read(resp_headers, body)
                if value is not None:
                    server[metric.name] = value
            if req.served is not None:
                value = req.served.raw(resp_headers, body)
                served = str(value).strip() if value is not None else None
        # Locust's stats as the session's catch_response block reported them: the response
        # time up to the body read, a failure with the outcome's reason
        self.request_event.fire(
            request_type=req.method, name=req.name, response_time=latency_ms,
            response_length=len(content) if content else 0, response=None, context={},
            exception=CatchResponseError(reason) if outcome == "failure" else None,
            start_time=sent, url=req.static_url or self._url(path))
        self.emit(arrival, sent=sent, latency_ms=latency_ms, status=status, outcome=outcome,
                  flow=req.flow, name=req.name, served_mode=served, reason=reason,
                  server_metrics=server or None)

    # --- sending -----------------------------------------------------------------------

    def _send(self, req: CompiledRequest, path: str, headers: dict[str, str],
              data: bytes | None) -> tuple[int, Any, bytes | None, Exception | None]:
        """(status, headers, content, error): status 0 and the error when no answer came."""
        lean = self.lean
        if lean is None or self.jar._cookies:  # the jar holds cookies: the session adds them
            return self._send_full(req.method, path, headers, data)
        try:
            target = lean.target(path)
            has_body = bool(data)
            block = req.lean_headers.get(has_body) if req.static_headers is not None else None
            if block is None:
                block = lean.fixed_headers(headers, has_body)
                if req.static_headers is not None:
                    req.lean_headers[has_body] = block
            head = lean.head(req.method, target, block[0], block[1], data)
        except lean_http.Exotic:
            return self._send_full(req.method, path, headers, data)
        try:
            answer = lean.send(req.method, head, data)
        except OSError as exc:
            return 0, None, None, exc
        if answer.headers.set_cookie is not None:
            self._keep_cookies(path, answer)
        if answer.status in lean_http.REDIRECTS and "location" in answer.headers:
            return self._follow(req.method, path, headers, data, answer)
        return answer.status, answer.headers, answer.content, None

    def _send_full(self, method: str, path: str, headers: dict[str, str],
                   data: bytes | None) -> tuple[int, Any, bytes | None, Exception | None]:
        """Through Locust's session, which does not report it (the caller does, once)."""
        session = self.client
        return self._unpack(session._send_request_safe_mode(
            method, session._build_url(path), payload=data, headers=_session_headers(
                session, headers)))

    def _unpack(self, response) -> tuple[int, Any, bytes | None, Exception | None]:
        status = response.status_code or 0
        try:
            content = response.content if status else None
        except FAILURE_EXCEPTIONS as exc:
            return 0, None, None, exc
        return status, response.headers, content, getattr(response, "error", None)

    def _url(self, path: str) -> str:
        return path if _ABSOLUTE.match(path) else self.base_url + path

    def _keep_cookies(self, path: str, answer: lean_http.Answer) -> None:
        url = self._url(path)
        self.jar.extract_cookies(_CookieAnswer(answer.headers.set_cookie),
                                 FastRequest(url, headers=GHeaders()))

    def _follow(self, method: str, path: str, headers: dict[str, str], data: bytes | None,
                answer: lean_http.Answer) -> tuple[int, Any, bytes | None, Exception | None]:
        """A redirect answer: the rest of the chain through the session's user agent, as it
        would have followed it (its redirect rules, its cookie jar, one redirect spent)."""
        ua = self.client.client
        if ua.max_redirects <= 0:
            return answer.status, answer.headers, answer.content, None
        request = FastRequest(self._url(path), method=method,
                              headers=GHeaders(_session_headers(self.client, headers)),
                              payload=data)
        try:
            request.redirect(answer.status, answer.headers["location"])
            response = ua.urlopen(request.url, method=request.method, headers=request.headers,
                                  payload=request.payload, max_redirects=ua.max_redirects - 1)
        except FAILURE_EXCEPTIONS as exc:
            response = getattr(exc, "response", None)
            if response is None:
                return 0, None, None, exc
        return self._unpack(response)


def _session_headers(session, headers: dict[str, str]) -> dict[str, str]:
    """The headers FastHttpSession.request sends for these (its Authorization and
    Accept-Encoding)."""
    headers = dict(headers)
    if session.auth_header:
        headers["Authorization"] = session.auth_header
    if "Accept-Encoding" not in headers and "accept-encoding" not in headers:
        headers["Accept-Encoding"] = lean_http.ACCEPT_ENCODING
    return headers


class _CookieAnswer:
    """What http.cookiejar reads of an answer: its Set-Cookie fields."""

    def __init__(self, cookies: list[str]):
        self.cookies = cookies

    def info(self):
        return self

    def get_all(self, name: str, default=None):
        return self.cookies if name.lower() == "set-cookie" else default
