"""`loadtest_` metrics, served by the Locust master (or the single local process).

They come from the same raw records that go to requests.jsonl (workers ship theirs to the
master), so a dashboard sees every request, and the phase and mode gauges let it shade phases
and mark flips. Own registry: no process collectors clash with anything else in the process.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Sample
from prometheus_client.utils import floatToGoString

from execbench.contract import MODES

# Same shape as the service's: no bucket wider than 10 ms between 50 and 300 ms.
BUCKETS = (
    0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13, 0.14,
    0.15, 0.16, 0.17, 0.18, 0.19, 0.2, 0.21, 0.22, 0.23, 0.24, 0.25, 0.26, 0.27, 0.28, 0.29,
    0.3, 0.35, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)


class _Series:
    """One (name, flow) of the per-request metrics: plain numbers, updated without locks."""

    __slots__ = ("created", "duration", "duration_sum", "failures", "failures_created",
                 "intended", "intended_sum", "outcomes")

    def __init__(self) -> None:
        self.created = time.time()
        self.duration = [0] * (len(BUCKETS) + 1)  # per bucket (not cumulative), +Inf last
        self.duration_sum = 0.0
        self.intended = [0] * (len(BUCKETS) + 1)
        self.intended_sum = 0.0
        self.outcomes: dict[str, list[float]] = {}  # outcome -> [count, created]
        self.failures = 0
        self.failures_created: float | None = None


class RequestMetrics:
    """The per-request `loadtest_` series (two histograms, two counters, late sends) as one
    registry collector over plain counts. prometheus_client's Histogram and Counter children
    cost, per request, four labels() lookups, a lock per increment (a gevent lock under Locust)
    and a linear bucket scan: most of the metrics' share of the generator's CPU. The exposition
    is the same series, labels and values (tests/loadtests/test_records_hotpath.py compares it
    with the stock client's)."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], _Series] = {}
        self.late = 0
        self.late_created = time.time()

    def observe(self, records: list[dict[str, Any]]) -> None:
        series, where = self.series, bisect.bisect_left
        for rec in records:
            outcome = rec["outcome"]
            if outcome == "skipped":  # an arrival nothing was sent for: not a request
                continue
            key = (rec["name"], rec["flow"])
            s = series.get(key)
            if s is None:
                s = series[key] = _Series()
            latency = rec["latency_ms"] / 1000
            from_intended = latency + (rec["sent"] - rec["intended"])
            s.duration[where(BUCKETS, latency)] += 1  # `le`: the first bound >= the value
            s.duration_sum += latency
            s.intended[where(BUCKETS, from_intended)] += 1
            s.intended_sum += from_intended
            count = s.outcomes.get(outcome)
            if count is None:
                s.outcomes[outcome] = [1, time.time()]
            else:
                count[0] += 1
            if outcome == "failure":
                if s.failures_created is None:
                    s.failures_created = time.time()
                s.failures += 1
            if rec["late"]:
                self.late += 1

    def describe(self):
        return []  # the series are known only from the records

    def collect(self):
        les = [floatToGoString(b) for b in (*BUCKETS, float("inf"))]
        items = list(self.series.items())
        for metric, doc, attr in (
                ("loadtest_request_duration_seconds",
                 "Client latency from the actual send, by request name and flow", "duration"),
                ("loadtest_request_duration_from_intended_seconds",
                 "Client latency from the intended send time (open model)", "intended")):
            family = HistogramMetricFamily(metric, doc, labels=["name", "flow"])
            for (name, flow), s in items:
                cumulative, acc = [], 0
                for le, n in zip(les, list(getattr(s, attr)), strict=True):
                    acc += n
                    cumulative.append((le, float(acc)))
                family.add_metric([str(name), str(flow)], cumulative, getattr(s, attr + "_sum"))
                family.samples.append(Sample(metric + "_created", {"name": str(name), "flow": str(flow)},
                                             s.created, None, None))
            yield family
        requests = CounterMetricFamily(
            "loadtest_requests", "Requests by name, flow and outcome (ok, expected_rejection, failure)",
            labels=["name", "flow", "outcome"])
        failures = CounterMetricFamily("loadtest_failures", "Failed requests by name and flow",
                                       labels=["name", "flow"])
        for (name, flow), s in items:
            for outcome, (n, created) in list(s.outcomes.items()):
                requests.add_metric([str(name), str(flow), outcome], float(n), created=created)
            if s.failures_created is not None:
                failures.add_metric([str(name), str(flow)], float(s.failures), created=s.failures_created)
        yield requests
        yield failures
        yield CounterMetricFamily(
            "loadtest_late_sends", "Arrivals sent later than load.late_ms after their intended time",
            value=float(self.late), created=self.late_created)


class LoadtestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.request_metrics = RequestMetrics()  # duration histograms, request counters
        r.register(self.request_metrics)
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
        self.request_metrics.observe(records)

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
