"""Names shared by service/, loadtests/, analysis/ and dashboards/ (docs/DESIGN.md).

Stdlib only: every package may import it, including the analysis of a production log
on a machine that runs none of the service.
"""

from __future__ import annotations

# The executor's timed stages, in order: the `durations_ms` keys besides `executor_ms`.
STAGES = (
    "config_fetch_ms",
    "single_margin_ms",
    "free_margin_ms",
    "user_lock_ms",
    "orders_fetch_ms",
    "total_margin_ms",
    "persist_ms",
    "provider_send_ms",
)
# The stages the provider flow skips in modes `skip` and `skip_reserve`.
SKIPPED_STAGES = ("user_lock_ms", "orders_fetch_ms", "total_margin_ms")
METRICS = ("executor_ms", *STAGES)
MODES = ("off", "skip", "skip_reserve")
FLOWS = ("local", "provider")
# The tradable symbols (their specifications: service/symbols.py).
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "USDCHF", "XAUUSD", "BTCUSD")
