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
        Symbol("EURUSD", "EUR", "USD", 100_000, 1.0850, 0.00002),
        Symbol("GBPUSD", "GBP", "USD", 100_000, 1.2700, 0.00002),
        Symbol("USDJPY", "USD", "JPY", 100_000, 151.20, 0.00002),
        Symbol("USDCHF", "USD", "CHF", 100_000, 0.8800, 0.00002),
        Symbol("XAUUSD", "XAU", "USD", 100, 2650.0, 0.00004),
        Symbol("BTCUSD", "BTC", "USD", 1, 91_000.0, 0.0001),
    )
}
