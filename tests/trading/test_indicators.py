"""Indicators: exact Decimal results, a fixed context, and refusal instead of a guess."""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_UP, Decimal, localcontext

import pytest

from apps.trading import indicators

D = Decimal


def ds(*values: str) -> list[Decimal]:
    return [D(v) for v in values]


def test_sma_averages_the_last_period_values() -> None:
    assert indicators.sma(ds("1", "2", "3", "4"), 2) == D("3.5")
    assert indicators.sma(ds("1", "2", "3", "4"), 4) == D("2.5")


def test_sma_of_a_third_is_rounded_half_even_to_34_digits() -> None:
    assert indicators.sma(ds("0", "0", "1"), 3) == D("0." + "3" * 34)


def test_ema_is_seeded_with_the_sma_then_smoothed() -> None:
    # period 3: alpha = 0.5; seed (1 + 2 + 3) / 3 = 2; then 2 + 0.5 × (6 − 2) = 4; then 4 + 0.5 × (4 − 4) = 4
    assert indicators.ema(ds("1", "2", "3", "6", "4"), 3) == D(4)


def test_mean_and_population_stdev_are_exact() -> None:
    mean, stdev = indicators.mean_and_stdev(ds("103", "97", "101", "99", "100"), 5)
    assert (mean, stdev) == (D(100), D(2))  # Σd² = 9 + 9 + 1 + 1 + 0 = 20; 20 / 5 = 4


def test_a_flat_series_has_a_stdev_of_exactly_zero_and_no_zscore() -> None:
    assert indicators.mean_and_stdev(ds("5000.25", "5000.25", "5000.25"), 3) == (D("5000.25"), D(0))
    assert indicators.zscore(ds("5000.25", "5000.25", "5000.25"), 3) is None


def test_zscore_of_the_last_value() -> None:
    assert indicators.zscore(ds("103", "97", "101", "100", "99"), 5) == D("-0.5")


def test_highest_and_lowest_look_at_the_last_period_values_only() -> None:
    values = ds("50", "1", "3", "2")
    assert indicators.highest(values, 3) == D(3)
    assert indicators.lowest(values, 3) == D(1)


def test_wilder_atr_seeds_with_the_mean_then_smooths() -> None:
    highs = ds("10.5", "10.5", "10.6", "11.5", "12.5")
    lows = ds("9.5", "9.5", "9.5", "10", "11")
    closes = ds("10", "10", "10", "11", "12")
    assert indicators.true_ranges(highs, lows, closes) == ds("1", "1.1", "1.5", "1.5")
    # seed (1 + 1.1) / 2 = 1.05; (1.05 + 1.5) / 2 = 1.275; (1.275 + 1.5) / 2 = 1.3875
    assert indicators.atr(highs, lows, closes, 2) == D("1.3875")
    # One period and one bar more: the plain mean of the true ranges.
    assert indicators.atr(highs, lows, closes, 4) == D("1.275")


def test_true_range_uses_the_gap_from_the_previous_close() -> None:
    assert indicators.true_ranges(ds("15", "15"), ds("13", "13"), ds("10", "14")) == ds("5")


def test_results_do_not_depend_on_the_ambient_decimal_context() -> None:
    values = ds("0", "0", "1")
    expected = indicators.sma(values, 3)
    with localcontext() as ctx:
        ctx.prec, ctx.rounding = 3, ROUND_UP
        assert indicators.sma(values, 3) == expected
        inside = indicators.mean_and_stdev(values, 3)
    assert inside == indicators.mean_and_stdev(values, 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: indicators.sma(ds("1", "2"), 3),
        lambda: indicators.sma(ds("1", "2"), 0),
        lambda: indicators.sma(ds("1", "2"), True),
        lambda: indicators.sma([1.5, 2.5], 2),  # floats are refused, not converted
        lambda: indicators.sma([D("NaN"), D(1)], 2),
        lambda: indicators.ema(ds("1"), 2),
        lambda: indicators.mean_and_stdev(ds("1"), 2),
        lambda: indicators.highest([], 1),
        lambda: indicators.atr(ds("1", "2"), ds("1", "2"), ds("1", "2"), 2),
        lambda: indicators.true_ranges(ds("1", "2"), ds("1"), ds("1", "2")),
    ],
)
def test_it_refuses_rather_than_guesses(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()
