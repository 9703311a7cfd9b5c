"""The generic HTTP target: any service, described by the experiment's `[target]` table.

`[[target.requests]]` are the requests the load sends (weights, templates, the statuses that
count as ok or as a business rejection); `server_timing` says where a server-side metric is in
the answer: `header:NAME` (the W3C `Server-Timing` metric NAME, its `dur` in ms -> `NAME_ms`)
or `json:/pointer` (a number in the JSON body, named by the pointer's last token, `_ms` added
if missing). Client latency is always measured; a run without any server metric is complete.
The target module has no Locust import; `user_classes()` imports the user that does.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import httpx

from loadtests.adapters.templates import TemplateError, compile_value, missing_env, pointer
from loadtests.seam import TargetError
from loadtests.spec import Experiment

RETRYABLE_HEALTH = (502, 503, 504)  # a service still starting or behind a proxy still waking


def metric_name(source: str) -> str:
    """`header:app` -> `app_ms`; `json:/timings/handler_ms` -> `handler_ms`."""
    kind, _, where = source.partition(":")
    name = where if kind == "header" else where.rstrip("/").rsplit("/", 1)[-1]
    name = name.replace("-", "_").replace(".", "_")
    return name if name.endswith("_ms") else f"{name}_ms"


def parse_server_timing(header: str) -> dict[str, float]:
    """`app;dur=12.5;desc="x", db;dur=3` -> {"app": 12.5, "db": 3.0}; entries without a
    numeric dur are left out."""
    out: dict[str, float] = {}
    for entry in header.split(","):
        fields = [f.strip() for f in entry.split(";")]
        if not fields or not fields[0]:
            continue
        for param in fields[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "dur":
                try:
                    out[fields[0]] = float(value.strip().strip('"'))
                except ValueError:
                    pass
                break
    return out


class ServerMetric:
    """Reads one server metric out of a response."""

    __slots__ = ("kind", "name", "where")

    def __init__(self, source: str):
        self.kind, _, self.where = source.partition(":")
        self.name = metric_name(source)

    def read(self, headers, body: Any) -> float | None:
        """The metric in ms: a `Server-Timing` entry's dur, or a number in the body."""
        if self.kind == "header":
            value = headers.get("server-timing")
            if not value:
                return None
            return parse_server_timing(value).get(self.where)
        value = self.raw(headers, body)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    def raw(self, headers, body: Any) -> Any:
        """The value where the source points: a header's text, or the JSON value (None when
        absent)."""
        if self.kind == "header":
            return headers.get(self.where)
        try:
            return pointer(body, self.where)
        except (KeyError, TypeError):
            return None


def read_population(load: dict[str, Any], base: Path) -> list[dict[str, str]] | None:
    """The CSV population's rows (None: the numeric `users`/`first` range)."""
    pop = load.get("population", {})
    if "csv" not in pop:
        return None
    path = Path(pop["csv"])
    path = path if path.is_absolute() else base / path
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise TargetError(f"load.population.csv: cannot read {path}: {exc.strerror}") from None
    if not rows:
        raise TargetError(f"load.population.csv: {path} has a header but no rows")
    return rows


class HttpTarget:
    def __init__(self, base_url: str, experiment: Experiment):
        self.base_url = base_url.rstrip("/")
        self.experiment = experiment
        self.conf = experiment.data["target"]
        self.http = httpx.Client(timeout=5.0, follow_redirects=False)

    def health(self, timeout_s: float) -> None:
        url = self.base_url + self.conf.get("health", "/health")
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                resp = self.http.get(url, timeout=2.0)
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
                time.sleep(0.2)
                continue
            if 200 <= resp.status_code < 300:
                return
            kind = resp.headers.get("content-type", "").split(";")[0] or "no content type"
            last = f"HTTP {resp.status_code} ({kind})"
            if resp.status_code not in RETRYABLE_HEALTH:
                raise TargetError(f"health check GET {url} answered {last}: expected 2xx "
                                  "(set target.health to the service's health path)")
            time.sleep(0.2)
        raise TargetError(f"health check GET {url}: not healthy after {timeout_s:.0f} s: {last}")

    def prepare(self) -> list[str]:
        missing = missing_env(self.conf)
        if missing:
            raise TargetError(f"[target] reads environment variable(s) {', '.join(missing)}, "
                              "which are not set")
        rows = read_population(self.experiment.load, Path(self.experiment.source).parent)
        columns = tuple(rows[0]) if rows else ()
        try:
            for req in self.conf["requests"]:
                compile_value({k: req.get(k) for k in ("path", "json", "body", "headers")},
                              columns)
        except TemplateError as exc:
            raise TargetError(f"target.requests: {exc}") from None
        if not any(r.get("server_timing") for r in self.conf["requests"]):
            return ["no request names a server_timing: client-side latency only"]
        return []

    def settle(self, timeout_s: float) -> dict[str, Any]:
        return {}

    def user_classes(self) -> dict[str, type]:
        from loadtests.adapters.http_user import HttpRequestsUser

        return {HttpRequestsUser.scenario: HttpRequestsUser}

    def sampler(self, timeline, *, phase, mode, ready):
        return None

    def close(self) -> None:
        self.http.close()
