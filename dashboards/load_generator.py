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

# Metric names exported by the Locust master (loadtests/metrics.py, `loadtest_` namespace).
REQUEST_DURATION = "loadtest_request_duration_seconds"
REQUESTS = "loadtest_requests_total"
FAILURES = "loadtest_failures_total"
USERS = "loadtest_users"
TARGET_RATE = "loadtest_target_rate"
LATE_SENDS = "loadtest_late_sends_total"
PHASE = "loadtest_phase"
PHASE_MODE = "loadtest_mode"

SEL = 'flow=~"$flow"'


def users() -> gdash.Panel:
    return p.ts(
        "Simulated users",
        "Locust users (arrival generators) currently running, as reported by the master.",
        "short",
        p.query(f"sum({USERS})", "users"),
        width=8,
    )


def request_rate() -> gdash.Panel:
    return p.ts(
        "Requests per second: sent vs intended",
        "Requests the generator completed per second by flow (live users = provider flow, demo "
        "users = local flow), against the arrival rate the current phase intends. A gap means "
        "the generator or the service cannot keep up.",
        "reqps",
        p.query(f"sum by (flow) (rate({REQUESTS}{{{SEL}}}[$__rate_interval]))", "{{flow}}", "A"),
        p.query(f"max({TARGET_RATE})", "intended rate", "B"),
        width=8,
    )


def outcomes() -> gdash.Panel:
    return p.ts(
        "Requests per second by outcome",
        "`ok`, `expected_rejection` (a business rejection the scenario asked for, e.g. HTTP 409 "
        "insufficient margin) and `failure` (unexpected status or transport error).",
        "reqps",
        p.query(f"sum by (outcome) (rate({REQUESTS}{{{SEL}}}[$__rate_interval]))", "{{outcome}}"),
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
        "End-to-end latency measured by the load generator from the actual send (recording rules "
        "`flow:loadtest_request_duration_seconds:p*_1m`): the seed's \"total order latency\".",
        "s",
        *targets,
        width=12, height=9,
    )


def failures() -> gdash.Panel:
    return p.ts(
        "Failures per second by request and flow",
        "Requests counted as failures (unexpected status or transport error). Expected "
        "rejections are not failures. Any failure fails the experiment's no_errors check. The "
        "failure counter only exists after a first failure, so every request name shows an "
        "explicit 0 until then.",
        "reqps",
        p.query(f"sum by (name, flow) (rate({FAILURES}{{{SEL}}}[$__rate_interval])) "
                f"or 0 * sum by (name, flow) (rate({REQUESTS}{{{SEL}}}[$__rate_interval]))",
                "{{name}} {{flow}}"),
        width=6, height=9,
    )


def late_sends() -> gdash.Panel:
    return p.ts(
        "Late sends per second",
        "Arrivals sent later than `load.late_ms` after their intended time (the open-model "
        "schedule slipped). Non-zero means the generator was the bottleneck: add Locust workers "
        "before trusting that window's latencies.",
        "reqps",
        p.query(f"sum(rate({LATE_SENDS}[$__rate_interval]))", "late sends"),
        width=6, height=9,
    )


def current_phase() -> gdash.Panel:
    return p.state_timeline(
        "Experiment phase and requested mode",
        "The phase the experiment runner is in, and the flag mode that phase asks for (gauges "
        "`loadtest_phase` and `loadtest_mode`, 1 while active), to line phases up with the "
        "latency panels of the other dashboards.",
        p.query(f"max by (phase) ({PHASE}) > 0", "phase {{phase}}", "A"),
        {"1": ("active", "purple")},
        width=12,
    ).with_target(p.query(f"max by (mode) ({PHASE_MODE}) > 0", "mode {{mode}}", "B"))


def client_vs_server() -> gdash.Panel:
    return p.ts(
        "Provider p50: client vs executor",
        "Median latency the client sees for provider-flow orders against the executor's own "
        "executor_ms median: the difference is network, HTTP and queueing outside the executor.",
        "s",
        p.query(f'max({loadtest_quantile_rule("p50")}{{flow="provider"}})', "client p50", "A"),
        p.query('max(flow_mode:executor_duration_seconds:p50_1m{flow="provider"})',
                "executor p50 (any mode)", "B"),
        width=12,
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
        .with_panel(outcomes())
        .with_row(p.row("Client latency and failures"))
        .with_panel(client_latency())
        .with_panel(failures())
        .with_panel(late_sends())
        .with_row(p.row("Experiment"))
        .with_panel(current_phase())
        .with_panel(client_vs_server())
    )
