"""Margin arithmetic: the real computation the provider-skip change skips.

Rules (the tests check them against hand-computed cases):

* Margin of one order, in the symbol's quote currency:
  ``volume (lots) × contract_size × price / leverage``; converted to USD with the
  current price of the quote currency (JPY via USDJPY, CHF via USDCHF, …).
* Hedged margin per symbol: long and short positions of one symbol offset each
  other; the symbol needs the margin of the *larger side*:
  ``max(Σ margin of buys, Σ margin of sells)``. Symbols add up.
* ``compute_user_total_margin`` walks the user's orders at current prices:
  executed orders give ``executed_margin``; with ``include_queued`` the queued
  ones (sent to the provider, not yet confirmed) are walked too, giving
  ``total_margin_with_queued``. ``strict`` refuses orders it cannot price
  instead of silently leaving them out.
* Equity = balance + floating profit of executed orders at current prices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from service.symbols import SYMBOLS


class MarginError(ValueError):
    """An order could not be priced in strict mode."""


@dataclass(slots=True, frozen=True)
class Position:
    symbol: str
    side: str  # "buy" | "sell"
    volume: float
    open_price: float
    status: str  # "executed" | "queued"


@dataclass(slots=True)
class MarginBreakdown:
    executed_margin: float
    total_margin_with_queued: float
    per_symbol: dict[str, float] = field(default_factory=dict)
    orders_walked: int = 0
    orders_skipped: int = 0


def usd_rate(currency: str, prices: dict[str, float]) -> float:
    if currency == "USD":
        return 1.0
    if f"{currency}USD" in prices:
        return prices[f"{currency}USD"]
    if f"USD{currency}" in prices:
        return 1.0 / prices[f"USD{currency}"]
    raise MarginError(f"no USD conversion for {currency}")


def order_margin_usd(
    symbol: str, volume: float, leverage: float, prices: dict[str, float]
) -> float:
    spec = SYMBOLS[symbol]
    price = prices[symbol]
    margin_quote = volume * spec.contract_size * price / leverage
    return margin_quote * usd_rate(spec.quote, prices)


def _hedged(sides: dict[str, list[float]]) -> float:
    return max(sum(sides["buy"]), sum(sides["sell"]))


def compute_user_total_margin(
    orders: Iterable[Position],
    prices: dict[str, float],
    leverage: float,
    *,
    strict: bool = True,
    include_queued: bool = True,
) -> MarginBreakdown:
    executed: dict[str, dict[str, list[float]]] = {}
    with_queued: dict[str, dict[str, list[float]]] = {}
    walked = skipped = 0
    for order in orders:
        if order.status == "queued" and not include_queued:
            continue
        try:
            margin = order_margin_usd(order.symbol, order.volume, leverage, prices)
        except (KeyError, MarginError) as exc:
            if strict:
                raise MarginError(f"cannot price {order.symbol}: {exc}") from exc
            skipped += 1
            continue
        walked += 1
        empty = {"buy": [], "sell": []}
        with_queued.setdefault(order.symbol, {"buy": [], "sell": []})[order.side].append(margin)
        if order.status == "executed":
            executed.setdefault(order.symbol, empty)[order.side].append(margin)
    per_symbol = {symbol: _hedged(sides) for symbol, sides in with_queued.items()}
    return MarginBreakdown(
        executed_margin=sum(_hedged(sides) for sides in executed.values()),
        total_margin_with_queued=sum(per_symbol.values()),
        per_symbol=per_symbol,
        orders_walked=walked,
        orders_skipped=skipped,
    )


def floating_profit_usd(orders: Iterable[Position], prices: dict[str, float]) -> float:
    total = 0.0
    for order in orders:
        if order.status != "executed":
            continue
        spec = SYMBOLS[order.symbol]
        direction = 1.0 if order.side == "buy" else -1.0
        move = prices[order.symbol] - order.open_price
        total += direction * move * order.volume * spec.contract_size * usd_rate(spec.quote, prices)
    return total


def equity_usd(balance: float, orders: Iterable[Position], prices: dict[str, float]) -> float:
    return balance + floating_profit_usd(orders, prices)


__all__ = [
    "MarginBreakdown",
    "MarginError",
    "Position",
    "compute_user_total_margin",
    "equity_usd",
    "floating_profit_usd",
    "order_margin_usd",
    "usd_rate",
]
