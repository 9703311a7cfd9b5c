"""Names every dashboard, rule and test shares: the datasource, scrape jobs, recording rules.

The metric names are the contract in docs/DESIGN.md ("Metrics"); the recording-rule names follow
Prometheus' `level:metric:operations` convention and are defined in prometheus/rules/recording.yml.
"""

from __future__ import annotations

# One fixed datasource uid: provisioning creates it with this uid, every panel points at it.
DATASOURCE_UID = "execbench-prometheus"
DATASOURCE_TYPE = "prometheus"

# Scrape jobs in prometheus.yml (alerts and panels select on them).
JOB_EXECUTOR = "executor"
JOB_WORKER = "worker"
JOB_LOCUST = "locust"
JOB_GATEWAY = "gateway"

MODES = ("off", "skip", "skip_reserve")
FLOWS = ("provider", "local")

# Recording rules (prometheus/rules/recording.yml): latency quantiles over a 1m window.
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def executor_quantile_rule(name: str) -> str:
    """`flow_mode:executor_duration_seconds:p95_1m` and friends."""
    return f"flow_mode:executor_duration_seconds:{name}_1m"


def loadtest_quantile_rule(name: str) -> str:
    return f"flow:loadtest_request_duration_seconds:{name}_1m"


# The latency plan's four flags, as the gateway's metrics label them (gateway/metrics.py): its own
# switches and the executor's flags from each answer. `flags` in a rule name is all four.
PLAN_FLAGS = ("mode", "keepalive", "parallel_config", "async_logging")
SWITCH_MODES = ("off", "on")


def gateway_quantile_rule(name: str) -> str:
    """`flags:gateway_duration_seconds:p50_1m`: total order latency (successes) by all four flags."""
    return f"flags:gateway_duration_seconds:{name}_1m"


# Template variables every dashboard offers; `ALL` is what "All" expands to (a regex).
ALL = ".*"
