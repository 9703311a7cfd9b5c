"""The gateway's Prometheus metrics (`gateway_` namespace), on a registry passed in.

The executor's buckets (10 ms wide from 50 to 300 ms, where 253 and 296 live). Every series is
labelled by the switches the request used, so a dashboard splits total latency by them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from service.histogram import FastHistogram
from service.metrics import LATENCY_BUCKETS

SWITCHES = ("keepalive", "async_logging")
STAGES = ("gateway_ms", "upstream_ms", "log_ms")
STATUSES = ("success", "rejected", "error")
MODES = ("off", "on")


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry):
        labels = ["keepalive", "async_logging"]
        self.duration = FastHistogram(
            "gateway_duration_seconds", "Gateway time per order, end to end (total_ms).",
            [*labels, "status"], buckets=LATENCY_BUCKETS, registry=registry)
        self.stage_duration = FastHistogram(
            "gateway_stage_duration_seconds", "Gateway time per part: own work, upstream call, log write.",
            ["stage", *labels], buckets=LATENCY_BUCKETS, registry=registry)
        self.requests = Counter("gateway_requests", "Orders the gateway answered, by outcome.",
                                [*labels, "status"], registry=registry)
        self.log_lines = Counter("gateway_log_lines", "Timing-log lines written or dropped "
                                 "(async_logging's queue full); none is lost without a count.",
                                 ["outcome"], registry=registry)
        self.log_queue_depth = Gauge("gateway_log_queue_depth", "Lines waiting in async_logging's queue.",
                                     registry=registry)
        self.switch_mode = Gauge("gateway_switch_mode", "1 for the mode of each gateway switch in force.",
                                 ["flag", "mode"], registry=registry)
        self.switch_changes = Counter("gateway_switch_changes", "Switch changes this replica applied.",
                                      registry=registry)
        self.upstream_errors = Counter("gateway_upstream_errors", "Upstream calls that got no answer.",
                                       ["kind"], registry=registry)
        self._bind()

    def _bind(self) -> None:
        self._duration, self._requests, self._stages = {}, {}, {}
        for ka in MODES:
            for al in MODES:
                for status in STATUSES:
                    self._duration[ka, al, status] = self.duration.labels(ka, al, status)
                    self._requests[ka, al, status] = self.requests.labels(ka, al, status)
                for stage in STAGES:
                    self._stages[stage, ka, al] = self.stage_duration.labels(stage.removesuffix("_ms"), ka, al)
        for outcome in ("written", "dropped"):
            self.log_lines.labels(outcome)
        for flag in SWITCHES:
            for mode in MODES:
                self.switch_mode.labels(flag, mode)
        self.written = self.log_lines.labels("written")
        self.dropped = self.log_lines.labels("dropped")

    def observe(self, keepalive: str, async_logging: str, status: str, durations_ms: dict) -> None:
        self._requests[keepalive, async_logging, status].inc()
        self._duration[keepalive, async_logging, status].observe(durations_ms["total_ms"] / 1000)
        for stage in STAGES:
            self._stages[stage, keepalive, async_logging].observe(durations_ms[stage] / 1000)

    def switch_changed(self, flag: str, mode: str, *, initial: bool = False) -> None:
        for candidate in MODES:
            self.switch_mode.labels(flag, candidate).set(1 if candidate == mode else 0)
        if not initial:
            self.switch_changes.inc()
