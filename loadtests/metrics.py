"""`loadtest_` metrics, served by the Locust master (or the single local process).

They come from the same raw records that go to requests.jsonl (workers ship theirs to the
master), so a dashboard sees every request, and the phase and mode gauges let it shade phases
and mark flips. Own registry: no process collectors clash with anything else in the process.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from execbench.contract import MODES

# Same shape as the service's: no bucket wider than 10 ms between 50 and 300 ms.
BUCKETS = (
    0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13, 0.14,
    0.15, 0.16, 0.17, 0.18, 0.19, 0.2, 0.21, 0.22, 0.23, 0.24, 0.25, 0.26, 0.27, 0.28, 0.29,
    0.3, 0.35, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)


class LoadtestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.duration = Histogram(
            "loadtest_request_duration_seconds",
            "Client latency from the actual send, by request name and flow",
            ["name", "flow"], buckets=BUCKETS, registry=r)
        self.duration_intended = Histogram(
            "loadtest_request_duration_from_intended_seconds",
            "Client latency from the intended send time (open model)",
            ["name", "flow"], buckets=BUCKETS, registry=r)
        self.requests = Counter(
            "loadtest_requests", "Requests by name, flow and outcome (ok, expected_rejection, failure)",
            ["name", "flow", "outcome"], registry=r)
        self.failures = Counter(
            "loadtest_failures", "Failed requests by name and flow", ["name", "flow"], registry=r)
        self.late = Counter(
            "loadtest_late_sends", "Arrivals sent later than load.late_ms after their intended time",
            registry=r)
        self.users = Gauge("loadtest_users", "Running Locust users (arrival generators)", registry=r)
        self.target_rate = Gauge(
            "loadtest_target_rate", "Intended arrival rate of the current phase, requests/s", registry=r)
        self.phase = Gauge(
            "loadtest_phase", "1 for the experiment phase in progress, 0 for the others",
            ["experiment", "phase", "group"], registry=r)
        self.phase_index = Gauge(
            "loadtest_phase_index", "Index of the phase in progress (-1 before, N after)", registry=r)
        self.mode = Gauge(
            "loadtest_mode", "1 for the flag mode the current phase asks for", ["mode"], registry=r)
        self.flips = Counter(
            "loadtest_flag_flips", "Flag changes requested by the experiment runner", registry=r)
        self.phase_index.set(-1)
        for m in MODES:
            self.mode.labels(m).set(0)
        self._phase_labels: list[tuple[str, str, str]] = []

    def serve(self, port: int, addr: str = "0.0.0.0"):
        return start_http_server(port, addr=addr, registry=self.registry)

    def observe(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            name, flow = rec["name"], rec["flow"]
            if rec["outcome"] == "skipped":  # an arrival nothing was sent for: not a request
                continue
            self.duration.labels(name, flow).observe(rec["latency_ms"] / 1000)
            from_intended = rec["latency_ms"] / 1000 + (rec["sent"] - rec["intended"])
            self.duration_intended.labels(name, flow).observe(from_intended)
            self.requests.labels(name, flow, rec["outcome"]).inc()
            if rec["outcome"] == "failure":
                self.failures.labels(name, flow).inc()
            if rec["late"]:
                self.late.inc()

    def set_schedule(self, experiment: str, schedule: list[dict[str, Any]]) -> None:
        self._phase_labels = [(experiment, p["name"], p["group"]) for p in schedule]
        for labels in self._phase_labels:
            self.phase.labels(*labels).set(0)

    def enter_phase(self, index: int, phase: dict[str, Any] | None) -> None:
        for i, labels in enumerate(self._phase_labels):
            self.phase.labels(*labels).set(1 if i == index else 0)
        self.phase_index.set(index)
        if phase is None:
            self.target_rate.set(0)
            return
        self.target_rate.set(phase["rate"])
        for m in MODES:
            self.mode.labels(m).set(1 if m == phase["mode"] else 0)
