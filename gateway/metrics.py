"""The gateway's Prometheus metrics (`gateway_` namespace), on a registry passed in.

The executor's buckets (10 ms wide from 50 to 300 ms, where 253 and 296 live). Every series is
labelled by the switches the request used, so a dashboard splits total latency by them: the
gateway's own (keepalive, async_logging) and, on the total and the outcome count, the executor's
as its answer reported them (`mode`: provider_skip, `parallel_config`), "unknown" when the answer
carries none (a 502/504, a 4xx refused before the executor ran, a replayed idempotent answer).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from service.histogram import FastHistogram
from service.metrics import LATENCY_BUCKETS

SWITCHES = ("keepalive", "async_logging")
STAGES = ("gateway_ms", "upstream_ms", "log_ms")
STATUSES = ("success", "rejected", "error")
MODES = ("off", "on")
UNKNOWN = "unknown"
# The executor's flags, as the gateway learns them from each answer (never a free-form label).
PROVIDER_SKIP_MODES = ("off", "skip", "skip_reserve", UNKNOWN)
PARALLEL_CONFIG_MODES = ("off", "on", UNKNOWN)


def executor_flags(answer: dict) -> tuple[str, str]:
    """(mode, parallel_config) from an executor's answer; "unknown" for what it does not say."""
    mode = answer.get("mode")
    flags = answer.get("flags")
    parallel = flags.get("parallel_config") if isinstance(flags, dict) else None
    return (mode if mode in PROVIDER_SKIP_MODES else UNKNOWN,
            parallel if parallel in PARALLEL_CONFIG_MODES else UNKNOWN)


def _expected_answers():
    """(mode, parallel_config, status) bound up front: every success an executor answers (it
    carries both flags) and the gateway's own 502/504 (neither)."""
    for mode in PROVIDER_SKIP_MODES[:-1]:
        for pc in PARALLEL_CONFIG_MODES[:-1]:
            yield mode, pc, "success"
    yield UNKNOWN, UNKNOWN, "error"


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry):
        labels = ["keepalive", "async_logging"]
        executor = ["mode", "parallel_config"]
        self.duration = FastHistogram(
            "gateway_duration_seconds", "Gateway time per order, end to end (total_ms).",
            [*labels, *executor, "status"], buckets=LATENCY_BUCKETS, registry=registry)
        self.stage_duration = FastHistogram(
            "gateway_stage_duration_seconds", "Gateway time per part: own work, upstream call, log write.",
            ["stage", *labels], buckets=LATENCY_BUCKETS, registry=registry)
        self.requests = Counter("gateway_requests", "Orders the gateway answered, by outcome.",
                                [*labels, *executor, "status"], registry=registry)
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
        # Bound once, so each exists at 0 from the first scrape and the hot path is one dict
        # lookup: the successes and the gateway's own errors (`_expected_answers`). Any other
        # combination (a margin rejection carries its mode but no flags, a replayed idempotent
        # answer the same) is bound on its first order and cached the same way: binding all 144
        # made every scrape 8x larger (1.1 MB, ~4x slower on the gateway's event loop).
        self._orders, self._stages = {}, {}
        for ka in MODES:
            for al in MODES:
                for mode, pc, status in _expected_answers():
                    self._bind_order((ka, al, mode, pc, status))
                for stage in STAGES:
                    self._stages[stage, ka, al] = self.stage_duration.labels(stage.removesuffix("_ms"), ka, al)
        for outcome in ("written", "dropped"):
            self.log_lines.labels(outcome)
        for flag in SWITCHES:
            for mode in MODES:
                self.switch_mode.labels(flag, mode)
        self.written = self.log_lines.labels("written")
        self.dropped = self.log_lines.labels("dropped")

    def observe(self, keepalive: str, async_logging: str, mode: str, parallel_config: str, status: str,
                durations_ms: dict) -> None:
        """One answered order; `mode` and `parallel_config` as `executor_flags` gives them."""
        key = keepalive, async_logging, mode, parallel_config, status
        requests, duration = self._orders.get(key) or self._bind_order(key)
        requests.inc()
        duration.observe(durations_ms["total_ms"] / 1000)
        for stage in STAGES:
            self._stages[stage, keepalive, async_logging].observe(durations_ms[stage] / 1000)

    def _bind_order(self, key: tuple[str, str, str, str, str]) -> tuple:
        children = self._orders[key] = (self.requests.labels(*key), self.duration.labels(*key))
        return children

    def switch_changed(self, flag: str, mode: str, *, initial: bool = False) -> None:
        for candidate in MODES:
            self.switch_mode.labels(flag, candidate).set(1 if candidate == mode else 0)
        if not initial:
            self.switch_changes.inc()
