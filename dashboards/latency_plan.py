"""Dashboard "Latency plan — total order latency by flags": what each step of the plan is worth.

The note's plan is four flags: provider_skip (Step 1, the executor), keepalive (Step 2, the
gateway's link to the executor), parallel_config (Step 3, the executor) and async_logging (Step 4,
the gateway's log write). Total order latency is the gateway's `gateway_duration_seconds`, whose
every series carries all four: the gateway's switches as the request used them and the executor's
flags as its answer reported them (gateway/metrics.py), so the split by flags is exact even while
`latency-plan` moves from cell to cell. One function per panel. Whole-range panels compute over
$__range (pick the run's window); panels over time use the recording rules
(`flags:gateway_duration_seconds:p*_1m`). Successes only: a 502 is not an order's latency.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as gdash

from dashboards import panels as p
from dashboards.executor_latency import MODE_CODE_EXPR
from dashboards.promql import JOB_GATEWAY, PLAN_FLAGS, SWITCH_MODES, gateway_quantile_rule

UID = "execbench-latency-plan"
TITLE = "Latency plan — total order latency by flags"

# The four flags' variables: mode (provider_skip), keepalive, parallel_config, async_logging.
SEL = ",".join(f'{flag}=~"${flag}"' for flag in PLAN_FLAGS)
GATEWAY_SEL = 'keepalive=~"$keepalive",async_logging=~"$async_logging"'
BY_FLAGS = ", ".join(PLAN_FLAGS)
LEGEND = ("{{mode}} · keepalive {{keepalive}} · parallel_config {{parallel_config}} · "
          "async_logging {{async_logging}}")
ALL_OFF = ",".join(f'{flag}="off"' for flag in PLAN_FLAGS)


def _range_quantile(q: float, selector: str, by: str) -> str:
    """The quantile over the whole range; `>= 0` drops the combinations no order ran in (their
    series exist at 0 from the first scrape, so their quantile is NaN: no empty bars)."""
    return (
        f"(histogram_quantile({q}, sum by ({by}) (rate(gateway_duration_seconds_bucket"
        f'{{job="{JOB_GATEWAY}",status="success",{selector}}}[$__range]))) >= 0)'
    )


def total_p50_by_flags() -> gdash.Panel:
    return p.bar_gauge(
        "Total order latency p50 by flag combination (whole range)",
        "Median total order latency (the gateway's total_ms: arrival at the gateway to its answer, "
        "the executor and the link included) over the selected range, one bar per combination of "
        "the four flags the orders actually ran with. The note: ~296 ms with every flag off, "
        "200-240 ms after Step 1 (provider_skip), then Steps 2-4 take 20-40, 10-30 and 2-8 ms off.",
        "s",
        p.query(_range_quantile(0.5, SEL, f"le, {BY_FLAGS}"), LEGEND, instant=True),
        width=12, height=10, decimals=3,
    )


def total_p95_by_flags() -> gdash.Panel:
    return p.bar_gauge(
        "Total order latency p95 by flag combination (whole range)",
        "95th percentile of total order latency over the selected range, per flag combination. "
        "The buckets are 10 ms wide between 50 and 300 ms, so the interpolation error is small "
        "there; above 300 ms they widen (325, 350, 400 ms).",
        "s",
        p.query(_range_quantile(0.95, SEL, f"le, {BY_FLAGS}"), LEGEND, instant=True),
        width=12, height=10, decimals=3,
    )


def saving_vs_all_off() -> gdash.Panel:
    all_off = _range_quantile(0.5, ALL_OFF, "le")
    by_flags = _range_quantile(0.5, SEL, f"le, {BY_FLAGS}")
    return p.bar_gauge(
        "p50 saving vs all flags off, by flag combination (whole range)",
        "How much lower each combination's median total latency is than the all-off cell's over "
        "the same range (positive = faster): a combination with one flag on is that step's saving "
        "alone, the all-on bar the plan's whole saving. The intervals and the interactions are "
        "the analysis' (execbench report, latency_plan); this is the live view. Needs orders of "
        "the all-off cell inside the range.",
        "s",
        p.query(f"scalar({all_off}) - {by_flags}", LEGEND, instant=True),
        width=24, height=10, decimals=3,
        thresholds=[(None, "red"), (0, "green")],
    )


def total_p50_over_time() -> gdash.Panel:
    return p.ts(
        "Total order latency p50 over time by flags",
        "Median total order latency over a sliding 1-minute window per flag combination "
        "(recording rule `flags:gateway_duration_seconds:p50_1m`). In a `latency-plan` run the "
        "cells take turns every few seconds, so each line is a series of short stretches; the "
        "whole-range panels above pool them.",
        "s",
        p.query(f"{gateway_quantile_rule('p50')}{{{SEL}}}", LEGEND),
        width=24, height=10,
    )


def gateway_parts() -> gdash.Panel:
    sel = f'job="{JOB_GATEWAY}",{GATEWAY_SEL}'
    by = "stage, keepalive, async_logging"
    expr = (
        f"sum by ({by}) (rate(gateway_stage_duration_seconds_sum{{{sel}}}[$__rate_interval])) "
        f"/ sum by ({by}) (rate(gateway_stage_duration_seconds_count{{{sel}}}[$__rate_interval]))"
    )
    return p.ts(
        "Gateway parts: gateway_ms / upstream_ms / log_ms (mean)",
        "Mean time per part of the gateway's total, by its own switches: `upstream` is the "
        "executor call with the link (keepalive on saves the new connection's round trips and "
        "TLS handshake), `log` the timing-log write on the request path (async_logging on "
        "takes the sink's wait off it), `gateway` the rest of its own work.",
        "s",
        p.query(expr, "{{stage}} · keepalive {{keepalive}} · async_logging {{async_logging}}"),
        width=12, height=9,
    )


def log_lines() -> gdash.Panel:
    return p.ts(
        "Timing-log lines written vs dropped",
        "Lines per second the gateway wrote to its timing log and lines async_logging's bounded "
        "queue dropped when full (`gateway_log_lines_total`). A drop is counted here and in the "
        "log itself, never lost silently: written + dropped = orders answered.",
        "ops",
        p.query(f'sum by (outcome) (rate(gateway_log_lines_total{{job="{JOB_GATEWAY}"}}'
                f"[$__rate_interval]))", "{{outcome}}", "A"),
        width=12, height=9,
    )


def log_queue_depth() -> gdash.Panel:
    return p.ts(
        "async_logging queue depth",
        "Lines waiting in async_logging's queue per gateway replica (`gateway_log_queue_depth`). "
        "Near the queue's size (EXECBENCH_GATEWAY_LOG_QUEUE_SIZE) the next lines are dropped.",
        "short",
        p.query(f'max by (instance) (gateway_log_queue_depth{{job="{JOB_GATEWAY}"}})', "{{instance}}"),
        width=12, height=9,
    )


def orders_by_flags() -> gdash.Panel:
    return p.ts(
        "Orders per second by the executor's flags (as answered)",
        "Orders the gateway answered, by the provider_skip mode and parallel_config the executor's "
        "answer reported (`unknown`: the answer carried none, a 502/504 or a margin rejection). The "
        "executor exports no gauge for parallel_config, so its state shows here, from the answers.",
        "reqps",
        p.query(f'sum by (mode, parallel_config, status) (rate(gateway_requests_total{{job="{JOB_GATEWAY}"}}'
                f"[$__rate_interval]))", "{{mode}} · parallel_config {{parallel_config}} · {{status}}"),
        width=12, height=9,
    )


def gateway_switches() -> gdash.Panel:
    return p.state_timeline(
        "Gateway switches keepalive / async_logging per replica",
        "The mode of each gateway switch in force on each replica (`gateway_switch_mode`). "
        "`latency-plan` sets them at each cell's start through the gateway's audited admin API.",
        p.query(f'max by (instance, flag) (gateway_switch_mode{{job="{JOB_GATEWAY}",mode="on"}})',
                "{{flag}} {{instance}}"),
        {"0": ("off", "blue"), "1": ("on", "green")},
        width=12, height=6,
    )


def provider_skip_timeline() -> gdash.Panel:
    return p.state_timeline(
        "Executor flag provider_skip per replica",
        "The provider_skip mode each executor replica applies (gauge `executor_optimization_mode`, "
        "as on the executor-latency dashboard): Step 1 of the plan.",
        p.query(MODE_CODE_EXPR, "{{instance}}"),
        {"0": ("off", p.MODE_COLOURS["off"]), "1": ("skip", p.MODE_COLOURS["skip"]),
         "2": ("skip_reserve", p.MODE_COLOURS["skip_reserve"])},
        width=12, height=6,
    )


def build() -> gdash.Dashboard:
    return (
        p.base_dashboard(
            UID, TITLE,
            "The latency plan (issue 13): total order latency through the gateway tier by the four "
            "flags provider_skip, keepalive, parallel_config and async_logging, the gateway's "
            "parts, its timing-log lines and each switch's state. See docs/full-stack.md.",
            ["latency", "latency-plan", "gateway"],
        )
        .with_variable(p.mode_variable())
        .with_variable(p.custom_variable("keepalive", "keepalive", SWITCH_MODES))
        .with_variable(p.custom_variable("parallel_config", "parallel_config", SWITCH_MODES))
        .with_variable(p.custom_variable("async_logging", "async_logging", SWITCH_MODES))
        .with_row(p.row("Total order latency by flags (whole time range)"))
        .with_panel(total_p50_by_flags())
        .with_panel(total_p95_by_flags())
        .with_panel(saving_vs_all_off())
        .with_row(p.row("Over time"))
        .with_panel(total_p50_over_time())
        .with_panel(gateway_parts())
        .with_panel(orders_by_flags())
        .with_row(p.row("Timing log and switches"))
        .with_panel(log_lines())
        .with_panel(log_queue_depth())
        .with_panel(gateway_switches())
        .with_panel(provider_skip_timeline())
    )
