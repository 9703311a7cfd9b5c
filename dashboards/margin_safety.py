"""Dashboard "Margin safety and rollback": what does skipping the heavy margin check risk?

`skip` estimates the total margin instead of computing it under the user lock, so concurrent
provider orders of one user can over-commit; `skip_reserve` reserves atomically and should not.
Panels are split by the mode the order ran with, and by the provider outcome that settled it.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.models import prometheus as mprom

from dashboards import panels as p
from dashboards.executor_latency import MODE_CODE_EXPR

UID = "execbench-margin-safety"
TITLE = "Margin safety and rollback"

MODE_SEL = 'mode=~"$mode"'


def overcommits_in_range() -> gdash.Panel:
    return p.single_stat(
        "Over-commits in range by mode",
        "Provider orders whose confirmation left the user's used margin above equity, counted by "
        "the mode the order was accepted under, over the selected range. Expected: 0 under `off` "
        "and `skip_reserve`; under `skip` a same-user burst can produce them.",
        "short",
        p.query(
            f"sum by (mode) (increase(executor_margin_overcommit_total{{{MODE_SEL}}}[$__range]))",
            "{{mode}}", instant=True,
        ),
        width=8, decimals=0,
        thresholds=[(None, "green"), (0.5, "red")],
    )


def overcommits_over_time() -> gdash.Panel:
    return p.ts(
        "Over-commits over time",
        "Over-commits detected per interval by the provider workers, by mode.",
        "short",
        p.query(
            "sum by (mode) (increase("
            f"executor_margin_overcommit_total{{{MODE_SEL}}}[$__rate_interval]))",
            "{{mode}}",
        ),
        width=8,
    )


def overcommit_amount() -> gdash.Panel:
    return p.ts(
        "Over-committed margin (USD per interval)",
        "Sum of the amounts by which confirmed orders pushed used margin above equity, per interval "
        "and mode (histogram `executor_margin_overcommit_usd`).",
        "currencyUSD",
        p.query(
            f"sum by (mode) (increase(executor_margin_overcommit_usd_sum{{{MODE_SEL}}}"
            "[$__rate_interval]))",
            "{{mode}}",
        ),
        width=8,
    )


def estimate_error_quantiles() -> gdash.Panel:
    def q(quantile: float, ref: str) -> object:
        return p.query(
            f"histogram_quantile({quantile}, sum by (le, mode) (rate("
            f"executor_margin_estimate_error_usd_bucket{{{MODE_SEL}}}[$__rate_interval])))",
            f"p{round(quantile * 100)} {{{{mode}}}}", ref,
        )

    return p.ts(
        "Margin estimate error (p50 / p95)",
        "How far the total margin estimated at accept time was from the final margin computed by "
        "the provider worker on confirmation, in USD, by mode. Under `off` the computation is "
        "exact; under `skip` the estimate ignores the other queued orders.",
        "currencyUSD",
        q(0.5, "A"), q(0.95, "B"),
        width=12,
    )


def estimate_error_heatmap() -> gdash.Panel:
    return p.heat(
        "Margin estimate error distribution",
        "Confirmed provider orders per estimate-error bucket per interval (all selected modes).",
        "currencyUSD",
        p.query(
            "sum by (le) (increase("
            f"executor_margin_estimate_error_usd_bucket{{{MODE_SEL}}}[$__rate_interval]))",
            "{{le}}", fmt=mprom.PromQueryFormat.HEATMAP,
        ),
        width=12,
    )


def provider_outcomes() -> gdash.Panel:
    return p.ts(
        "Provider outcomes per second",
        "How the (simulated) liquidity provider settled queued orders: confirmed, rejected or "
        "timed out. Rejections and timeouts must each release the order's margin exactly once.",
        "ops",
        p.query("sum by (outcome) (rate(executor_provider_outcomes_total[$__rate_interval]))",
                "{{outcome}}"),
        width=12,
    )


def margin_releases() -> gdash.Panel:
    return p.ts(
        "Margin releases per second",
        "Auto-reject cleanups that released a rejected or timed-out order's margin. Should track "
        "rejected + timed-out outcomes one for one; more would be a double release.",
        "ops",
        p.query("sum(rate(executor_margin_releases_total[$__rate_interval]))", "releases", "A"),
        p.query(
            'sum(rate(executor_provider_outcomes_total{outcome=~"rejected|timeout"}[$__rate_interval]))',
            "rejected + timed out", "B",
        ),
        width=12,
    )


def orders_in_flight() -> gdash.Panel:
    return p.ts(
        "Orders in flight and non-terminal",
        "`executor_provider_inflight`: queued orders waiting for the provider's answer. "
        "`executor_orders_nonterminal`: orders in the database not yet in a final state. Both are "
        "database-wide counts published by every process running provider workers, hence the "
        "max. After load stops both must return to zero: nothing is left behind by a flip or a "
        "restart.",
        "short",
        p.query("max(executor_provider_inflight)", "in flight (provider)", "A"),
        p.query("max(executor_orders_nonterminal)", "non-terminal (database)", "B"),
        width=12,
    )


def oldest_nonterminal_age() -> gdash.Panel:
    return p.ts(
        "Oldest non-terminal order",
        "`executor_orders_oldest_nonterminal_age_seconds`: how long the oldest order still waiting "
        "for a final state has waited (0 when none). Healthy: below the provider timeout plus a "
        "claim lease (seconds). The stuck-orders alert fires above 2 minutes, even when other "
        "orders keep flowing.",
        "s",
        p.query("max(executor_orders_oldest_nonterminal_age_seconds)", "oldest non-terminal", "A"),
        width=12,
    )


def flag_changes() -> gdash.Panel:
    return p.ts(
        "Flag changes",
        "Changes of the provider_skip flag per interval (`executor_flag_changes_total`), and the "
        "mode each replica applies (0 = off, 1 = skip, 2 = skip_reserve) to see the rollback land.",
        "short",
        p.query("sum(increase(executor_flag_changes_total[$__rate_interval]))", "flag changes",
                "A"),
        p.query(MODE_CODE_EXPR, "mode code {{instance}}", "B"),
        width=12,
    )


def build() -> gdash.Dashboard:
    return (
        p.base_dashboard(
            UID, TITLE,
            "Safety cost of provider-skip: over-commits, margin estimate error, provider outcomes, "
            "releases, orders in flight, and the flag flips of a rollback.",
            ["safety", "provider-skip"],
        )
        .with_variable(p.mode_variable())
        .with_row(p.row("Over-commits"))
        .with_panel(overcommits_in_range())
        .with_panel(overcommits_over_time())
        .with_panel(overcommit_amount())
        .with_row(p.row("Margin estimate"))
        .with_panel(estimate_error_quantiles())
        .with_panel(estimate_error_heatmap())
        .with_row(p.row("Provider settlement and rollback"))
        .with_panel(provider_outcomes())
        .with_panel(margin_releases())
        .with_panel(orders_in_flight())
        .with_panel(oldest_nonterminal_age())
        .with_panel(flag_changes())
    )
