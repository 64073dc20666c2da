"""Indicators over sequences of Decimal, oldest first: pure, and the same digits on every machine.

Why Decimal and not float: bar prices arrive as exact Decimals (apps/integrations/bars.py), and the
decisions compare them with thresholds built from them (a close against the highest high plus
2 × 0.25). In binary floating point 0.1 or 0.05 are not representable, so such a comparison can
come out differently from the exact one, and a float result also depends on how a value was
converted and summed. Decimal keeps prices exact, and every operation here runs in one fixed
context (CONTEXT: 34 significant digits, ROUND_HALF_EVEN, traps on invalid operations and division
by zero) rather than the thread's ambient context, which any other code may have changed. The
General Decimal Arithmetic rules that libmpdec implements give the same result for the same input
everywhere, square root included (correctly rounded). 34 digits keep realistic sums exact
(500 squared prices with 5 decimals fit), so e.g. a flat series has a variance of exactly zero.

Every function refuses, with ValueError, a period that is not a positive int, fewer values than
the period needs, or a value that is not a finite Decimal: an indicator never guesses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from functools import wraps
from typing import ParamSpec, TypeVar

CONTEXT = Context(prec=34, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])

P = ParamSpec("P")
R = TypeVar("R")


def in_context(fn: Callable[P, R]) -> Callable[P, R]:
    """Run fn under CONTEXT, whatever the caller's decimal context is."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(CONTEXT):
            return fn(*args, **kwargs)

    return wrapper


def _period(period: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"period must be a positive int, got {period!r}")
    return period


def _decimals(values: Sequence[Decimal], needed: int, what: str = "values") -> Sequence[Decimal]:
    if len(values) < needed:
        raise ValueError(f"{what}: {needed} needed, {len(values)} given")
    for v in values:
        if not isinstance(v, Decimal) or not v.is_finite():
            raise ValueError(f"{what} must be finite Decimals, got {v!r}")
    return values


@in_context
def sma(values: Sequence[Decimal], period: int) -> Decimal:
    """Simple moving average of the last `period` values."""
    window = _decimals(values, _period(period))[-period:]
    return sum(window, Decimal(0)) / period


@in_context
def ema(values: Sequence[Decimal], period: int) -> Decimal:
    """Exponential moving average at the last value: seeded with the SMA of the first `period`
    values, then ema = ema + alpha × (value − ema) with alpha = 2 / (period + 1). It depends on
    every value given, so callers pass a fixed window to stay reproducible."""
    _decimals(values, _period(period))
    alpha = Decimal(2) / (period + 1)
    value = sum(values[:period], Decimal(0)) / period
    for v in values[period:]:
        value += alpha * (v - value)
    return value


@in_context
def mean_and_stdev(values: Sequence[Decimal], period: int) -> tuple[Decimal, Decimal]:
    """(mean, population standard deviation) of the last `period` values.

    Population (divide by n, as Bollinger bands do), computed from exact sums:
    variance = (n·Σx² − (Σx)²) / n², so the only roundings are the two divisions and the root."""
    window = _decimals(values, _period(period))[-period:]
    total = sum(window, Decimal(0))
    squares = sum((v * v for v in window), Decimal(0))
    variance = (period * squares - total * total) / (period * period)
    # Exact sums make variance >= 0; a rounding below zero would be a bug, and sqrt would trap.
    return total / period, variance.sqrt()


@in_context
def zscore(values: Sequence[Decimal], period: int) -> Decimal | None:
    """(last value − mean) / population stdev over the last `period` values; None when the
    stdev is zero (every value equal), where the z-score is undefined."""
    mean, stdev = mean_and_stdev(values, period)
    if stdev == 0:
        return None
    return (values[-1] - mean) / stdev


def highest(values: Sequence[Decimal], period: int) -> Decimal:
    """Largest of the last `period` values (e.g. the highest high of a lookback)."""
    return max(_decimals(values, _period(period))[-period:])


def lowest(values: Sequence[Decimal], period: int) -> Decimal:
    """Smallest of the last `period` values."""
    return min(_decimals(values, _period(period))[-period:])


@in_context
def true_ranges(highs: Sequence[Decimal], lows: Sequence[Decimal], closes: Sequence[Decimal]) -> list[Decimal]:
    """True range of each bar after the first: max(high − low, |high − previous close|,
    |low − previous close|). n bars give n − 1 true ranges."""
    if not len(highs) == len(lows) == len(closes):
        raise ValueError("highs, lows and closes must have the same length")
    _decimals(highs, 2, "highs")
    _decimals(lows, 2, "lows")
    _decimals(closes, 2, "closes")
    return [
        max(highs[i] - lows[i], abs(highs[i] - closes[i - 1]), abs(lows[i] - closes[i - 1]))
        for i in range(1, len(closes))
    ]


@in_context
def atr(highs: Sequence[Decimal], lows: Sequence[Decimal], closes: Sequence[Decimal], period: int) -> Decimal:
    """Wilder's average true range at the last bar, over every bar given.

    The first `period` true ranges (bars 1..period, each against the previous close) are averaged
    into the seed; each later true range smooths it: atr = (atr × (period − 1) + tr) / period.
    So it needs period + 1 bars, and its value depends on how many bars are given: callers pass a
    window of fixed length (see apps.trading.strategies.atr_window)."""
    _period(period)
    if len(closes) < period + 1:
        raise ValueError(f"ATR({period}): {period + 1} bars needed, {len(closes)} given")
    ranges = true_ranges(highs, lows, closes)
    value = sum(ranges[:period], Decimal(0)) / period
    for tr in ranges[period:]:
        value = (value * (period - 1) + tr) / period
    return value
