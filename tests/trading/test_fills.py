"""The SIM fill model and position accounting: exact prices, fees and PnL from real bars."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from apps.trading.fills import FillModel, PositionState, apply_fill, sim_fill, unrealized_pnl

MES = {"tick_size": D("0.25"), "point_value": D("5")}
BAR = {"bar_open": D("5000.00"), "bar_high": D("5003.00"), "bar_low": D("4998.50")}


def test_a_market_order_fills_at_the_next_bars_open_with_slippage_against_it() -> None:
    buy = sim_fill(side="BUY", quantity=2, order_type="MARKET", **BAR, **MES)
    sell = sim_fill(side="SELL", quantity=1, order_type="MARKET", **BAR, **MES)
    assert buy is not None and sell is not None
    assert (buy.price, buy.slippage, buy.fee) == (D("5000.25"), D("2.50"), D("1.70"))
    assert (sell.price, sell.slippage, sell.fee) == (D("4999.75"), D("1.25"), D("0.85"))


def test_slippage_never_fills_outside_the_bar() -> None:
    flat = {"bar_open": D("5000"), "bar_high": D("5000"), "bar_low": D("5000")}
    fill = sim_fill(side="BUY", quantity=1, order_type="MARKET", model=FillModel(slippage_ticks=4), **flat, **MES)
    assert fill is not None and fill.price == D("5000") and fill.slippage == 0


@pytest.mark.parametrize(
    ("side", "limit", "expected"),
    [
        ("BUY", D("4999.00"), D("4999.00")),  # traded through: at the limit
        ("BUY", D("5001.00"), D("5000.00")),  # opened below the limit: at the open
        ("BUY", D("4998.25"), None),  # the low never reached it
        ("SELL", D("5002.00"), D("5002.00")),
        ("SELL", D("5003.25"), None),
    ],
)
def test_a_limit_order_fills_only_when_the_bar_trades_through(side: str, limit: D, expected: D | None) -> None:
    fill = sim_fill(side=side, quantity=1, order_type="LIMIT", limit_price=limit, **BAR, **MES)
    assert (fill.price if fill else None) == expected
    if fill:
        assert fill.slippage == 0


def test_a_stop_triggers_through_its_price_and_fills_at_the_worse_of_open_and_stop() -> None:
    # A long's protective stop at 4999: the bar's low 4998.50 triggers it.
    fill = sim_fill(side="SELL", quantity=1, order_type="STOP", stop_price=D("4999.00"), **BAR, **MES)
    assert fill is not None and fill.price == D("4998.75") and fill.slippage == D("1.25")
    # A gap through the stop fills at the open, not at the stop.
    gap = {"bar_open": D("4990.00"), "bar_high": D("4991.00"), "bar_low": D("4985.00")}
    fill = sim_fill(side="SELL", quantity=1, order_type="STOP", stop_price=D("4999.00"), **gap, **MES)
    assert fill is not None and fill.price == D("4989.75")
    assert sim_fill(side="SELL", quantity=1, order_type="STOP", stop_price=D("4998.25"), **BAR, **MES) is None


def test_bad_orders_and_bars_are_refused_not_filled() -> None:
    with pytest.raises(ValueError):
        sim_fill(side="BUY", quantity=0, order_type="MARKET", **BAR, **MES)
    with pytest.raises(ValueError):
        sim_fill(side="BUY", quantity=1, order_type="LIMIT", **BAR, **MES)
    with pytest.raises(ValueError):
        sim_fill(side="BUY", quantity=1, order_type="MARKET", bar_open=D("1"), bar_high=D("2"), bar_low=D("1.5"), **MES)


def test_position_accounting_adds_reduces_and_flips_with_exact_pnl() -> None:
    flat = PositionState(0, None, D(0))
    long2 = apply_fill(flat, side="BUY", quantity=1, price=D("5000"), point_value=D("5"))
    long2 = apply_fill(long2, side="BUY", quantity=1, price=D("5001"), point_value=D("5"))
    assert (long2.quantity, long2.avg_price) == (2, D("5000.5"))
    long1 = apply_fill(long2, side="SELL", quantity=1, price=D("5002.5"), point_value=D("5"))
    assert (long1.quantity, long1.avg_price, long1.realized_pnl) == (1, D("5000.5"), D("10.0"))
    short1 = apply_fill(long1, side="SELL", quantity=2, price=D("4999.5"), point_value=D("5"))
    assert (short1.quantity, short1.avg_price, short1.realized_pnl) == (-1, D("4999.5"), D("5.0"))
    closed = apply_fill(short1, side="BUY", quantity=1, price=D("4998.5"), point_value=D("5"))
    assert (closed.quantity, closed.avg_price, closed.realized_pnl) == (0, None, D("10.0"))


def test_unrealized_pnl_is_unknown_without_a_mark_never_zero() -> None:
    long1 = PositionState(1, D("5000"), D(0))
    assert unrealized_pnl(long1, mark=D("5004"), point_value=D("5")) == D("20")
    assert unrealized_pnl(long1, mark=None, point_value=D("5")) is None
    assert unrealized_pnl(PositionState(0, None, D(0)), mark=None, point_value=D("5")) == 0
