"""The open-model user of the generic HTTP target: one weighted request per arrival.

Each arrival draws a request of `[[target.requests]]` by weight and a population member,
renders the templates, sends it, classifies the status (`ok_status`, `rejected_status`, the
rest failures), reads the server metrics `server_timing` names and the served variant
`served_mode` names, and records it.
"""

from __future__ import annotations

import bisect
import itertools
import time
from pathlib import Path
from typing import Any

import orjson

from loadtests.adapters.http_target import ServerMetric, read_population
from loadtests.adapters.templates import Template, compile_value, render_value
from loadtests.arrival import Arrival, ArrivalRateUser


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

    def classify(self, status: int) -> tuple[str, str | None]:
        if status in self.ok:
            return "ok", None
        if status in self.rejected:
            return "expected_rejection", f"HTTP {status}"
        if status == 0:
            return "failure", "no response (connection error or timeout)"
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

    def _pick(self) -> CompiledRequest:
        x = self.rng.random() * self.cumulative[-1]
        return self.requests[bisect.bisect_right(self.cumulative, x)]

    def act(self, arrival: Arrival) -> None:
        req = self._pick()
        phase = self.state.phase_at(arrival.intended)
        if self.rows is not None:
            row = self.rng.choice(self.rows)
            user_id = row.get("user_id", next(iter(row.values())))
        else:
            row = {}
            user_id = self.first + self.rng.randrange(self.users)
        ctx = {"mode": phase["mode"] if phase else None, "user_id": user_id, "row": row}
        path = req.path.render(ctx, self.rng)
        headers = render_value(req.headers, ctx, self.rng, typed=False)
        data = None
        if req.json is not None:
            data = orjson.dumps(render_value(req.json, ctx, self.rng, typed=True))
        elif req.body is not None:
            data = req.body.render(ctx, self.rng).encode()
        sent = time.time()
        t_start = time.perf_counter()
        with self.client.request(req.method, path, data=data, headers=headers, name=req.name,
                                 catch_response=True) as resp:
            latency_ms = (time.perf_counter() - t_start) * 1000
            status = resp.status_code or 0
            outcome, reason = req.classify(status)
            body = None
            if req.needs_body and status and resp.content:
                try:
                    body = orjson.loads(resp.content)
                except orjson.JSONDecodeError:
                    body = None
            server = {}
            if status:
                for metric in req.metrics:
                    value = metric.read(resp.headers, body)
                    if value is not None:
                        server[metric.name] = value
            served = None
            if req.served is not None and status:
                value = req.served.raw(resp.headers, body)
                served = str(value).strip() if value is not None else None
            if outcome == "failure":
                resp.failure(reason)
            else:
                resp.success()
        self.emit(arrival, sent=sent, latency_ms=latency_ms, status=status, outcome=outcome,
                  flow=req.flow, name=req.name, served_mode=served, reason=reason,
                  server_metrics=server or None)

