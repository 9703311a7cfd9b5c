"""Dashboard "Executor latency — provider-skip": does provider `executor_ms` drop 253 -> 88 ms?

One function per panel. Quantiles over time come from the recording rules (the same numbers the
alerts use); the before/after stat panels compute over the whole dashboard range ($__range), so a
range spanning a baseline and an optimized phase compares the two directly: every request is
labelled with the mode it actually used, so the split by `mode` is exact even around a flip.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.models import prometheus as mprom

from dashboards import panels as p
from dashboards.promql import QUANTILES, executor_quantile_rule

UID = "execbench-executor-latency"
TITLE = "Executor latency — provider-skip"

SEL = 'flow=~"$flow",mode=~"$mode"'


def _range_quantile(q: float, selector: str, by: str = "le") -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}) "
        f"(rate(executor_duration_seconds_bucket{{{selector}}}[$__range])))"
    )


def provider_p50_by_mode() -> gdash.Panel:
    return p.single_stat(
        "Provider executor_ms p50 by mode (whole range)",
        "Median provider-flow executor time over the selected time range, per optimization mode "
        "the requests actually ran with. The seed claims ~253 ms with `off` and ~88 ms with `skip` "
        "(profile `seed`, low load).",
        "s",
        p.query(_range_quantile(0.5, 'flow="provider"', "le, mode"), "{{mode}}", instant=True),
        width=6, decimals=3,
    )


def provider_p95_by_mode() -> gdash.Panel:
    return p.single_stat(
        "Provider executor_ms p95 by mode (whole range)",
        "95th percentile of provider-flow executor time over the selected range, per mode. "
        "Bucket width is at most 10 ms between 50 and 300 ms, so the interpolation error is small.",
        "s",
        p.query(_range_quantile(0.95, 'flow="provider"', "le, mode"), "{{mode}}", instant=True),
        width=6, decimals=3,
    )


def _reduction(q: float, mode: str) -> str:
    after = _range_quantile(q, f'flow="provider",mode="{mode}"')
    before = _range_quantile(q, 'flow="provider",mode="off"')
    return f"100 * (1 - ({after}) / ({before}))"


def provider_reduction() -> gdash.Panel:
    return p.single_stat(
        "Provider executor_ms reduction vs off",
        "How much lower the provider-flow quantile is under each optimized mode than under `off`, "
        "over the selected range (positive = faster). The seed's claim is ~65% at p50 for `skip`. "
        "Needs requests of both modes inside the range: pick a range covering baseline and "
        "optimized phases.",
        "percent",
        p.query(_reduction(0.5, "skip"), "p50 skip", "A", instant=True),
        p.query(_reduction(0.95, "skip"), "p95 skip", "B", instant=True),
        p.query(_reduction(0.5, "skip_reserve"), "p50 skip_reserve", "C", instant=True),
        p.query(_reduction(0.95, "skip_reserve"), "p95 skip_reserve", "D", instant=True),
        width=12, decimals=1,
        thresholds=[(None, "red"), (0, "yellow"), (30, "green")],
    )


def executor_quantiles() -> gdash.Panel:
    targets = [
        p.query(f"{executor_quantile_rule(name)}{{{SEL}}}", f"{name} {{{{flow}}}} {{{{mode}}}}",
                chr(ord("A") + i))
        for i, name in enumerate(QUANTILES)
    ]
    return p.ts(
        "executor_ms p50 / p95 / p99 by flow and mode",
        "Server-side executor time quantiles over a sliding 1-minute window (recording rules "
        "`flow_mode:executor_duration_seconds:p*_1m`). The flip from `off` to `skip` shows as the "
        "provider lines dropping; local flow should not move.",
        "s",
        *targets,
        width=24, height=9,
    )


def stage_breakdown() -> gdash.Panel:
    sel = f'{SEL},stage!~"executor(_ms)?"'
    expr = (
        f"sum by (stage) (rate(executor_stage_duration_seconds_sum{{{sel}}}[$__rate_interval])) "
        f"/ sum by (stage) (rate(executor_stage_duration_seconds_count{{{sel}}}[$__rate_interval]))"
    )
    return (
        p.ts(
            "Stage breakdown (mean, stacked) — mode $mode",
            "Mean time per executor stage, stacked, so the stack height is the mean executor time. "
            "Repeated once per selected mode: under `skip` the lock, orders fetch and total margin "
            "stages fall to zero for the provider flow.",
            "s",
            p.query(expr, "{{stage}}"),
            stacked=True, width=8, height=9,
        )
        .repeat("mode")
        .repeat_direction("h")
    )


def executor_heatmap() -> gdash.Panel:
    return p.heat(
        "executor_ms distribution (heatmap)",
        "Requests per executor-time bucket per interval, for the selected flows and modes. Two "
        "bands (around 250 ms and 90 ms with the seed profile) appear when modes mix.",
        "s",
        p.query(
            f"sum by (le) (increase(executor_duration_seconds_bucket{{{SEL}}}[$__rate_interval]))",
            "{{le}}", fmt=mprom.PromQueryFormat.HEATMAP,
        ),
        width=12,
    )


def request_rate() -> gdash.Panel:
    return p.ts(
        "Orders per second by flow and mode",
        "Throughput the executor completes (every status), split by flow and by the mode each "
        "request used.",
        "reqps",
        p.query(
            f"sum by (flow, mode) (rate(executor_orders_total{{{SEL}}}[$__rate_interval]))",
            "{{flow}} {{mode}}",
        ),
        width=12,
    )


def error_rate() -> gdash.Panel:
    non_ok = f'{SEL},status!="success"'
    expr = (
        f"sum by (flow, status) (rate(executor_orders_total{{{non_ok}}}[$__rate_interval])) "
        f"/ ignoring(status) group_left "
        f"sum by (flow) (rate(executor_orders_total{{{SEL}}}[$__rate_interval]))"
    )
    return p.ts(
        "Rejections and errors (share of orders)",
        "Share of orders that were business rejections (`rejected`, e.g. insufficient margin) or "
        "server errors (`error`), by flow. Rejections are expected under margin pressure; any "
        "`error` is a bug.",
        "percentunit",
        p.query(expr, "{{flow}} {{status}}"),
        width=12,
    )


def mode_timeline() -> gdash.Panel:
    return p.state_timeline(
        "Flag provider_skip per replica",
        "The optimization mode each executor replica applies (gauge `executor_optimization_mode`). "
        "After a flip every replica must change within the flag TTL.",
        p.query(MODE_CODE_EXPR, "{{instance}}"),
        {"0": ("off", p.MODE_COLOURS["off"]), "1": ("skip", p.MODE_COLOURS["skip"]),
         "2": ("skip_reserve", p.MODE_COLOURS["skip_reserve"])},
        width=12,
    )


# 0 = off, 1 = skip, 2 = skip_reserve, per scrape target: one row per replica in the timeline.
MODE_CODE_EXPR = (
    'max by (instance) (executor_optimization_mode{job="executor",mode="skip"}) '
    '+ 2 * max by (instance) (executor_optimization_mode{job="executor",mode="skip_reserve"})'
)

# A flip is any change of the mode a replica applies; one annotation per replica and change.
# The 1m window matches the 60 s step Grafana uses for annotation queries, so none is missed.
FLIP_EXPR = 'sum by (instance) (changes(executor_optimization_mode{job="executor"}[1m])) > 0'


def flip_annotations() -> gdash.AnnotationQuery:
    return (
        gdash.AnnotationQuery()
        .name("flag flips (Prometheus)")
        .datasource(p.DATASOURCE)
        .enable(True)
        .hide(False)
        .icon_color("red")
        .expr(FLIP_EXPR)
    )


def build() -> gdash.Dashboard:
    return (
        p.base_dashboard(
            UID, TITLE,
            "Provider-skip latency: executor_ms by flow and mode, the stage breakdown, the "
            "before/after comparison and the flag's state. See docs/DESIGN.md (Metrics).",
            ["latency", "provider-skip"],
        )
        .annotation(flip_annotations())
        .with_variable(p.flow_variable())
        .with_variable(p.mode_variable())
        .with_row(p.row("Before / after (provider flow, whole time range)"))
        .with_panel(provider_p50_by_mode())
        .with_panel(provider_p95_by_mode())
        .with_panel(provider_reduction())
        .with_row(p.row("Latency over time"))
        .with_panel(executor_quantiles())
        .with_panel(stage_breakdown())
        .with_row(p.row("Distribution, throughput and errors"))
        .with_panel(executor_heatmap())
        .with_panel(request_rate())
        .with_panel(error_rate())
        .with_panel(mode_timeline())
    )

