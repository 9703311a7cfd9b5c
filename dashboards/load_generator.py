"""Dashboard "Load generator": what the Locust master sees (client side of every request).

Client latency includes the network and the server's queueing, so it is the "total latency" the
seed's users feel; late sends (the open-model schedule slipping) mean the generator, not the
service, was the bottleneck, and the numbers of that window are not to be trusted.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as gdash

from dashboards import panels as p
from dashboards.promql import QUANTILES, loadtest_quantile_rule

UID = "execbench-load-generator"
TITLE = "Load generator"

# Metric names exported by the Locust master (loadtests/, `loadtest_` namespace).
REQUEST_DURATION = "loadtest_request_duration_seconds"
REQUESTS = "loadtest_requests_total"
FAILURES = "loadtest_failures_total"
USERS = "loadtest_users"
LATE_SENDS = "loadtest_late_sends_total"
PHASE = "loadtest_phase"

SEL = 'flow=~"$flow"'


def users() -> gdash.Panel:
    return p.ts(
        "Simulated users",
        "Locust users currently running, summed over all workers (reported by the master).",
        "short",
        p.query(f"sum({USERS})", "users"),
        width=8,
    )


def request_rate() -> gdash.Panel:
    return p.ts(
        "Requests per second by flow",
        "Requests the generator completed per second, by flow (live users = provider flow, demo "
        "users = local flow).",
        "reqps",
        p.query(f"sum by (flow) (rate({REQUESTS}{{{SEL}}}[$__rate_interval]))", "{{flow}}"),
        width=8,
    )


def failures() -> gdash.Panel:
    return p.ts(
        "Failures per second by request",
        "Requests Locust counted as failures (unexpected status or transport error) per second. "
        "Business rejections the scenario expects (HTTP 409) are not failures.",
        "reqps",
        p.query(f"sum by (name) (rate({FAILURES}[$__rate_interval]))", "{{name}}"),
        width=8,
    )


def client_latency() -> gdash.Panel:
    targets = [
        p.query(f"{loadtest_quantile_rule(name)}{{{SEL}}}", f"{name} {{{{flow}}}}",
                chr(ord("A") + i))
        for i, name in enumerate(QUANTILES)
    ]
    return p.ts(
        "Client latency p50 / p95 / p99 by flow",
        "End-to-end latency measured by the load generator (recording rules "
        "`flow:loadtest_request_duration_seconds:p*_1m`), the seed's \"total order latency\".",
        "s",
        *targets,
        width=16, height=9,
    )


def late_sends() -> gdash.Panel:
    return p.ts(
        "Late sends per second",
        "Requests sent later than the open-model schedule intended (the generator fell behind). "
        "Non-zero means coordinated omission: add Locust workers before trusting the latencies.",
        "reqps",
        p.query(f"sum(rate({LATE_SENDS}[$__rate_interval]))", "late sends"),
        width=8, height=9,
    )


def current_phase() -> gdash.Panel:
    return p.ts(
        "Experiment phase and mode",
        "The phase the runner is in (one series per phase and mode, 1 while active), so phases "
        "line up with the latency panels.",
        "short",
        p.query(f"max by (phase, mode) ({PHASE}) > 0", "{{phase}} ({{mode}})"),
        width=24, height=5,
    )


def build() -> gdash.Dashboard:
    return (
        p.base_dashboard(
            UID, TITLE,
            "The Locust master's view: users, request rate, client latency by flow, failures, late "
            "sends and the current experiment phase.",
            ["load", "locust"],
        )
        .with_variable(p.flow_variable())
        .with_row(p.row("Load"))
        .with_panel(users())
        .with_panel(request_rate())
        .with_panel(failures())
        .with_row(p.row("Client latency"))
        .with_panel(client_latency())
        .with_panel(late_sends())
        .with_row(p.row("Experiment"))
        .with_panel(current_phase())
    )
