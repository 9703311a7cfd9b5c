"""The instrument catalogue: contract sizes, currencies and reference prices."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    base: str
    quote: str
    contract_size: float
    reference_price: float
    # Relative volatility per one-second price tick of the random walk.
    tick_volatility: float


SYMBOLS: dict[str, Symbol] = {
    s.name: s
    for s in (
        # ~0.1-0.2 % a day for FX, ~1 % for BTC: quiet enough that a run's margins drift
        # slowly, lively enough that the estimate error and the equity are real numbers.
        Symbol("EURUSD", "EUR", "USD", 100_000, 1.0850, 0.000005),
        Symbol("GBPUSD", "GBP", "USD", 100_000, 1.2700, 0.000005),
        Symbol("USDJPY", "USD", "JPY", 100_000, 151.20, 0.000005),
        Symbol("USDCHF", "USD", "CHF", 100_000, 0.8800, 0.000005),
        Symbol("XAUUSD", "XAU", "USD", 100, 2650.0, 0.00001),
        Symbol("BTCUSD", "BTC", "USD", 1, 91_000.0, 0.00003),
    )
}
