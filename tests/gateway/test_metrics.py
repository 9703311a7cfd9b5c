"""The gateway's metrics on a fresh registry, read with `get_sample_value` (prometheus
client_python's own test style): total latency and outcomes by all four flags of the latency plan,
the gateway's switches it used and the executor's flags its answer reported."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics, executor_flags

DURATIONS = {"total_ms": 120.0, "gateway_ms": 1.0, "upstream_ms": 110.0, "log_ms": 9.0}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry) -> GatewayMetrics:
    return GatewayMetrics(registry)


def labels(keepalive="off", async_logging="off", mode="off", parallel_config="off", status="success"):
    return {"keepalive": keepalive, "async_logging": async_logging, "mode": mode,
            "parallel_config": parallel_config, "status": status}


@pytest.mark.parametrize(("answer", "flags"), [
    ({"mode": "skip", "flags": {"parallel_config": "on"}}, ("skip", "on")),
    ({"mode": "skip_reserve", "flags": {"parallel_config": "off"}}, ("skip_reserve", "off")),
    ({"error": "insufficient_margin", "mode": "off"}, ("off", "unknown")),  # a 409 carries no flags
    ({"error": "bad_gateway"}, ("unknown", "unknown")),  # the gateway's own 502
    ({}, ("unknown", "unknown")),
    ({"mode": "fast", "flags": {"parallel_config": "maybe"}}, ("unknown", "unknown")),  # never a free label
    ({"mode": ["off"], "flags": ["on"]}, ("unknown", "unknown")),
])
def test_executor_flags_come_from_the_answer_or_are_unknown(answer, flags):
    assert executor_flags(answer) == flags


def test_total_latency_and_outcomes_are_split_by_all_four_flags(registry, metrics):
    metrics.observe("on", "off", "skip", "on", "success", DURATIONS)
    metrics.observe("on", "off", "skip", "on", "success", {**DURATIONS, "total_ms": 80.0})
    metrics.observe("off", "on", "off", "off", "success", DURATIONS)
    mine = labels("on", "off", "skip", "on")
    assert registry.get_sample_value("gateway_requests_total", mine) == 2
    assert registry.get_sample_value("gateway_duration_seconds_count", mine) == 2
    assert registry.get_sample_value("gateway_duration_seconds_sum", mine) == pytest.approx(0.2)
    assert registry.get_sample_value("gateway_duration_seconds_bucket", {**mine, "le": "0.08"}) == 1
    assert registry.get_sample_value("gateway_duration_seconds_bucket", {**mine, "le": "0.12"}) == 2
    other = labels("off", "on", "off", "off")
    assert registry.get_sample_value("gateway_requests_total", other) == 1
    # the parts stay split by the gateway's switches
    assert registry.get_sample_value("gateway_stage_duration_seconds_count",
                                     {"stage": "upstream", "keepalive": "on", "async_logging": "off"}) == 2


def test_every_success_and_the_gateways_own_errors_exist_at_zero_from_the_first_scrape(registry, metrics):
    for ka in ("off", "on"):
        for al in ("off", "on"):
            for mode in ("off", "skip", "skip_reserve"):
                for pc in ("off", "on"):
                    assert registry.get_sample_value("gateway_requests_total",
                                                     labels(ka, al, mode, pc)) == 0
                    assert registry.get_sample_value("gateway_duration_seconds_count",
                                                     labels(ka, al, mode, pc)) == 0
            assert registry.get_sample_value(
                "gateway_requests_total", labels(ka, al, "unknown", "unknown", "error")) == 0


def test_an_unexpected_combination_is_bound_on_first_use_and_cached(registry, metrics):
    rejected = labels("off", "off", "skip", "unknown", "rejected")
    assert registry.get_sample_value("gateway_requests_total", rejected) is None
    metrics.observe("off", "off", "skip", "unknown", "rejected", DURATIONS)
    metrics.observe("off", "off", "skip", "unknown", "rejected", DURATIONS)
    assert registry.get_sample_value("gateway_requests_total", rejected) == 2
    assert registry.get_sample_value("gateway_duration_seconds_count", rejected) == 2


def test_switch_mode_is_one_for_the_mode_in_force(registry, metrics):
    metrics.switch_changed("keepalive", "off", initial=True)
    metrics.switch_changed("keepalive", "on")
    assert registry.get_sample_value("gateway_switch_mode", {"flag": "keepalive", "mode": "on"}) == 1
    assert registry.get_sample_value("gateway_switch_mode", {"flag": "keepalive", "mode": "off"}) == 0
    assert registry.get_sample_value("gateway_switch_changes_total") == 1
