"""The SIM fill model and position accounting: pure functions over Decimals (no database, no clock).

SIM orders fill against the REAL next bar, never a price made up at decision time: a tick decides
at the close of bar N, its order fills on bar N+1 (the first bar whose open is at or after the
order's decision time), as a broker's market order would in the next trades.
- MARKET: the next bar's open, moved `slippage_ticks` against the order.
- LIMIT: fills when the bar trades through the limit: BUY when low <= limit, at min(open, limit);
  SELL when high >= limit, at max(open, limit). No slippage (the limit caps the price).
- STOP (stop-market): triggers when the bar trades at or through the stop: BUY when high >= stop,
  SELL when low <= stop; fills at the worse of the open and the stop, plus slippage.
An order that does not fill on a bar stays working for the next one. `first_fill` walks an order
over every bar from the time it works from (its decision, or for a stop the time set in
apps/trading/stops.py), however many bars that is, and answers the first bar that fills it: an
order left working through an outage is tried on every bar it missed, at that bar's time and price.

Costs: `slippage` is what the fill cost against the bar's reference (open or limit/stop price),
in USD, >= 0; `fee` is commission per contract (the model's, not a broker's statement).
PnL uses the instrument's point value (USD per 1.00 of price): MES 5, ES 50.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from apps.trading.indicators import CONTEXT

BUY, SELL = "BUY", "SELL"


@dataclass(frozen=True, slots=True)
class FillModel:
    slippage_ticks: int = 1
    commission_per_contract: Decimal = Decimal("0.85")


@dataclass(frozen=True, slots=True)
class SimFill:
    price: Decimal
    fee: Decimal
    slippage: Decimal  # USD, >= 0


def _check_bar(bar_open: Decimal, high: Decimal, low: Decimal) -> None:
    if not (low <= bar_open <= high):
        raise ValueError("bar open outside its high/low")


def sim_fill(
    *,
    side: str,
    quantity: int,
    order_type: str,
    bar_open: Decimal,
    bar_high: Decimal,
    bar_low: Decimal,
    tick_size: Decimal,
    point_value: Decimal,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    model: FillModel = FillModel(),
) -> SimFill | None:
    """The fill of a working order on one bar, or None when the bar does not reach it."""
    if side not in (BUY, SELL) or quantity <= 0 or tick_size <= 0 or point_value <= 0:
        raise ValueError("side, a positive quantity, tick size and point value are required")
    _check_bar(bar_open, bar_high, bar_low)
    sign = 1 if side == BUY else -1
    slip = tick_size * model.slippage_ticks
    if order_type == "MARKET":
        reference, price = bar_open, bar_open + sign * slip
    elif order_type == "LIMIT":
        if limit_price is None:
            raise ValueError("a LIMIT order needs its limit price")
        if side == BUY and bar_low > limit_price or side == SELL and bar_high < limit_price:
            return None
        reference = price = min(bar_open, limit_price) if side == BUY else max(bar_open, limit_price)
    elif order_type == "STOP":
        if stop_price is None:
            raise ValueError("a STOP order needs its stop price")
        if side == BUY and bar_high < stop_price or side == SELL and bar_low > stop_price:
            return None
        reference = max(bar_open, stop_price) if side == BUY else min(bar_open, stop_price)
        price = reference + sign * slip
    else:
        raise ValueError(f"unknown order type {order_type!r}")
    # A price outside the bar never traded: slippage stops at the bar's extreme.
    price = min(price, bar_high) if side == BUY else max(price, bar_low)
    slippage = CONTEXT.multiply(abs(price - reference), point_value) * quantity
    fee = CONTEXT.multiply(model.commission_per_contract, Decimal(quantity))
    return SimFill(price=price, fee=fee, slippage=slippage)


class Bar(Protocol):
    @property
    def ts(self) -> datetime: ...
    @property
    def open(self) -> Decimal: ...
    @property
    def high(self) -> Decimal: ...
    @property
    def low(self) -> Decimal: ...


def first_fill(
    *,
    side: str,
    quantity: int,
    order_type: str,
    working_from: datetime,
    bars: Sequence[Bar],
    tick_size: Decimal,
    point_value: Decimal,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    model: FillModel = FillModel(),
) -> tuple[Bar, SimFill] | None:
    """The first bar (oldest first, with ts >= working_from) on which a working order fills, with
    its fill; None when no bar given reaches it."""
    for bar in bars:
        if bar.ts < working_from:
            continue
        fill = sim_fill(
            side=side,
            quantity=quantity,
            order_type=order_type,
            bar_open=bar.open,
            bar_high=bar.high,
            bar_low=bar.low,
            tick_size=tick_size,
            point_value=point_value,
            limit_price=limit_price,
            stop_price=stop_price,
            model=model,
        )
        if fill is not None:
            return bar, fill
    return None


@dataclass(frozen=True, slots=True)
class PositionState:
    quantity: int  # signed contracts
    avg_price: Decimal | None  # None when flat
    realized_pnl: Decimal  # USD, gross of fees


def apply_fill(
    state: PositionState, *, side: str, quantity: int, price: Decimal, point_value: Decimal
) -> PositionState:
    """The position after one fill: adding to it moves the average price; reducing it realizes
    (price - average) × point value per contract closed; crossing zero opens the rest at `price`."""
    if side not in (BUY, SELL) or quantity <= 0:
        raise ValueError("side and a positive quantity are required")
    signed = quantity if side == BUY else -quantity
    held, avg = state.quantity, state.avg_price
    if held == 0 or (held > 0) == (signed > 0):  # opening or adding
        total = held + signed
        cost = (avg or Decimal(0)) * abs(held) + price * quantity
        return PositionState(total, CONTEXT.divide(cost, Decimal(abs(total))), state.realized_pnl)
    assert avg is not None
    closed = min(abs(held), quantity)
    direction = 1 if held > 0 else -1
    realized = state.realized_pnl + CONTEXT.multiply((price - avg) * direction * closed, point_value)
    remaining = held + signed
    if remaining == 0:
        return PositionState(0, None, realized)
    if (remaining > 0) == (held > 0):  # partly closed: the average of what is left is unchanged
        return PositionState(remaining, avg, realized)
    return PositionState(remaining, price, realized)  # flipped: the rest opened at this price


def unrealized_pnl(state: PositionState, *, mark: Decimal | None, point_value: Decimal) -> Decimal | None:
    """Open PnL at `mark`; None when the mark is unknown (never 0 for an open position)."""
    if state.quantity == 0:
        return Decimal(0)
    if mark is None or state.avg_price is None:
        return None
    return CONTEXT.multiply((mark - state.avg_price) * state.quantity, point_value)
