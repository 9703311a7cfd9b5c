"""Margin arithmetic against hand-computed cases."""

import pytest

from service.margin import (
    MarginError,
    Position,
    compute_user_total_margin,
    equity_usd,
    order_margin_usd,
)

PRICES = {"EURUSD": 1.1, "GBPUSD": 1.25, "USDJPY": 150.0, "USDCHF": 0.8, "XAUUSD": 2000.0, "BTCUSD": 90000.0}


def test_margin_of_one_order_in_usd():
    # 1 lot EURUSD = 100,000 EUR = 110,000 USD notional; at 1:100 -> 1,100 USD.
    assert order_margin_usd("EURUSD", 1.0, 100, PRICES) == pytest.approx(1100.0)
    # 0.5 lot USDJPY: 50,000 USD notional = 7.5M JPY; /100 = 75,000 JPY; /150 -> 500 USD.
    assert order_margin_usd("USDJPY", 0.5, 100, PRICES) == pytest.approx(500.0)
    # 2 lots XAUUSD: 200 oz * 2000 = 400,000 USD; /100 -> 4,000 USD.
    assert order_margin_usd("XAUUSD", 2.0, 100, PRICES) == pytest.approx(4000.0)
    # 1 lot USDCHF at 1:50: 100,000 USD = 80,000 CHF; /50 = 1,600 CHF; /0.8 -> 2,000 USD.
    assert order_margin_usd("USDCHF", 1.0, 50, PRICES) == pytest.approx(2000.0)


def test_hedged_margin_takes_the_larger_side_per_symbol():
    orders = [
        Position("EURUSD", "buy", 1.0, 1.1, "executed"),   # 1,100
        Position("EURUSD", "sell", 0.4, 1.1, "executed"),  # 440: hedged by the buy
        Position("XAUUSD", "sell", 1.0, 2000.0, "executed"),  # 2,000
    ]
    result = compute_user_total_margin(orders, PRICES, 100)
    assert result.executed_margin == pytest.approx(1100 + 2000)
    assert result.per_symbol == pytest.approx({"EURUSD": 1100.0, "XAUUSD": 2000.0})


def test_queued_orders_count_only_with_include_queued():
    orders = [
        Position("EURUSD", "buy", 1.0, 1.1, "executed"),
        Position("EURUSD", "buy", 1.0, 1.1, "queued"),
        Position("EURUSD", "sell", 3.0, 1.1, "queued"),  # queued sell side: 3,300 > 2,200 long
    ]
    with_queued = compute_user_total_margin(orders, PRICES, 100, include_queued=True)
    assert with_queued.executed_margin == pytest.approx(1100)
    assert with_queued.total_margin_with_queued == pytest.approx(3300)
    without = compute_user_total_margin(orders, PRICES, 100, include_queued=False)
    assert without.total_margin_with_queued == pytest.approx(1100)
    assert without.orders_walked == 1


def test_strict_refuses_an_unpriceable_order_and_lenient_skips_it():
    orders = [Position("EURUSD", "buy", 1.0, 1.1, "executed"), Position("NOPE", "buy", 1.0, 1.0, "executed")]
    with pytest.raises(MarginError):
        compute_user_total_margin(orders, PRICES, 100, strict=True)
    lenient = compute_user_total_margin(orders, PRICES, 100, strict=False)
    assert lenient.executed_margin == pytest.approx(1100)
    assert lenient.orders_skipped == 1


def test_equity_includes_floating_profit_in_usd():
    orders = [
        Position("EURUSD", "buy", 1.0, 1.0, "executed"),     # +0.1 * 100,000 = +10,000 USD
        Position("USDJPY", "sell", 1.0, 151.5, "executed"),  # +1.5 JPY * 100,000 / 150 = +1,000 USD
        Position("XAUUSD", "buy", 1.0, 1000.0, "queued"),    # queued: no profit yet
    ]
    assert equity_usd(50_000, orders, PRICES) == pytest.approx(61_000)


def test_the_symbol_catalogue_matches_the_shared_contract():
    from execbench.contract import SYMBOLS as CONTRACT_SYMBOLS
    from service.symbols import SYMBOLS

    assert tuple(SYMBOLS) == CONTRACT_SYMBOLS
