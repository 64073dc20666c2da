"""Each strategy's paths on hand-built bars, with the exact features behind the decision."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.trading import strategies as s
from apps.trading.strategies import Action, decide
from tests.trading.helpers import TICK, bars, closes

D = Decimal

# -- trend following ----------------------------------------------------------------------------

TREND = {"fast_period": 2, "slow_period": 4, "atr_period": 2, "stop_atr_multiple": 2.0}  # needs max(4, 5) bars

# True ranges 1, 1.1, 1.5, 1.5 → Wilder ATR(2) 1.3875; fast (11 + 12) / 2; slow (10 + 10 + 11 + 12) / 4.
UPTREND = bars(
    [("10.5", "9.5", "10"), ("10.5", "9.5", "10"), ("10.6", "9.5", "10"), ("11.5", "10", "11"), ("12.5", "11", "12")]
)
# The mirror image: true ranges 1, 1.1, 1.5, 1.5 → ATR 1.3875; fast 10.5; slow 11.25.
DOWNTREND = bars(
    [("12.5", "11.5", "12"), ("12.5", "11.5", "12"), ("12.5", "11.4", "12"), ("12", "10.5", "11"), ("11", "9.5", "10")]
)


def test_trend_up_from_flat_buys_one_with_an_atr_stop_on_the_tick_grid() -> None:
    d = decide("trend_following", UPTREND, TREND, 0, tick_size=TICK)
    assert (d.action, d.target_position, d.order_quantity, d.side) == (Action.BUY, 1, 1, "BUY")
    assert d.reason_codes == ("TREND_UP",)
    # 12 − 2.0 × 1.3875 = 9.225, widened down to the 0.25 grid
    assert d.stop_price == D("9.00")
    assert d.features == {
        "close": D(12),
        "fast_sma": D("11.5"),
        "slow_sma": D("10.75"),
        "atr": D("1.3875"),
        "stop_price": D("9.00"),
    }
    assert d.bars_required == 5 and d.as_of == UPTREND[-1].ts


def test_trend_up_while_short_reverses_to_long() -> None:
    d = decide("trend_following", UPTREND, TREND, -1, tick_size=TICK)
    assert (d.action, d.target_position, d.order_quantity, d.side) == (Action.BUY, 1, 2, "BUY")


@pytest.mark.parametrize("position", [1, 3])
def test_trend_up_while_long_holds_in_position(position: int) -> None:
    d = decide("trend_following", UPTREND, TREND, position, tick_size=TICK)
    assert (d.action, d.target_position, d.order_quantity, d.side) == (Action.HOLD, position, 0, None)
    assert d.reason_codes == ("IN_POSITION", "TREND_UP")
    assert d.stop_price is None and "stop_price" not in d.features


def test_trend_down_sells_to_short_one() -> None:
    d = decide("trend_following", DOWNTREND, TREND, 0, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.SELL, -1, ("TREND_DOWN",))
    # 10 + 2.775 = 12.775, widened up to the grid
    assert d.stop_price == D("13.00")
    assert (d.features["fast_sma"], d.features["slow_sma"], d.features["atr"]) == (D("10.5"), D("11.25"), D("1.3875"))
    reverse = decide("trend_following", DOWNTREND, TREND, 1, tick_size=TICK)
    assert (reverse.action, reverse.order_quantity, reverse.side) == (Action.SELL, 2, "SELL")


@pytest.mark.parametrize("position", [-1, 0, 1])
def test_equal_averages_hold_with_no_signal(position: int) -> None:
    d = decide("trend_following", closes(["10"] * 5), TREND, position, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.HOLD, position, ("NO_SIGNAL",))
    assert d.features == {"close": D(10), "fast_sma": D(10), "slow_sma": D(10), "atr": D(2)}


def test_a_trend_with_zero_atr_does_not_enter() -> None:
    params = {"fast_period": 2, "slow_period": 6, "atr_period": 1, "stop_atr_multiple": 2.0}
    d = decide("trend_following", closes(["8", "8", "8", "10", "10", "10"], spread="0"), params, 0, tick_size=TICK)
    assert (d.action, d.reason_codes) == (Action.HOLD, ("ZERO_ATR", "TREND_UP"))
    assert (d.features["fast_sma"], d.features["slow_sma"], d.features["atr"]) == (D(10), D(9), D(0))


def test_trend_following_never_goes_flat_it_reverses() -> None:
    actions = {
        decide("trend_following", b, TREND, p, tick_size=TICK).action for b in (UPTREND, DOWNTREND) for p in (-1, 0, 1)
    }
    assert Action.FLAT not in actions


# -- breakout -----------------------------------------------------------------------------------

BREAKOUT = {"lookback_bars": 3, "breakout_buffer_ticks": 2, "atr_period": 2, "stop_atr_multiple": 1.5}  # 5 bars
# The range is bars 1..3: highest high 102, lowest low 99; buffer 2 × 0.25 → triggers 98.50 / 102.50.
RANGE = [("101", "99", "100"), ("101", "99", "100"), ("102", "100", "101"), ("101.5", "99.5", "100.5")]


def test_close_above_the_range_plus_buffer_buys() -> None:
    series = bars([*RANGE, ("103.5", "101", "103")])
    d = decide("breakout", series, BREAKOUT, 0, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.BUY, 1, ("BREAKOUT_UP",))
    # true ranges 2, 2, 2, 3 → ATR(2): 2, 2, 2.5; stop 103 − 1.5 × 2.5 = 99.25
    assert d.stop_price == D("99.25")
    assert d.features == {
        "close": D(103),
        "highest_high": D(102),  # the last bar's own high (103.5) is not part of its range
        "lowest_low": D(99),
        "buffer": D("0.50"),
        "upper_trigger": D("102.50"),
        "lower_trigger": D("98.50"),
        "atr": D("2.5"),
        "stop_price": D("99.25"),
    }


def test_close_below_the_range_minus_buffer_sells() -> None:
    series = bars([*RANGE, ("100", "97.5", "98")])
    d = decide("breakout", series, BREAKOUT, 0, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.SELL, -1, ("BREAKOUT_DOWN",))
    assert (d.features["atr"], d.stop_price) == (D("2.5"), D("101.75"))  # 98 + 3.75
    reverse = decide("breakout", series, BREAKOUT, 1, tick_size=TICK)
    assert (reverse.action, reverse.order_quantity) == (Action.SELL, 2)


@pytest.mark.parametrize("close", ["102.5", "98.5", "101"])
def test_a_close_inside_or_on_the_triggers_is_no_signal(close: str) -> None:
    c = D(close)
    series = bars([*RANGE, (str(c + 1), str(c - 1), close)])
    for position in (-1, 0, 1):
        d = decide("breakout", series, BREAKOUT, position, tick_size=TICK)
        assert (d.action, d.target_position, d.reason_codes) == (Action.HOLD, position, ("NO_SIGNAL",))
        assert (d.features["upper_trigger"], d.features["lower_trigger"], d.features["close"]) == (
            D("102.50"),
            D("98.50"),
            c,
        )


def test_the_buffer_is_counted_in_the_instruments_ticks() -> None:
    series = bars([*RANGE, ("103.5", "101", "103")])
    d = decide("breakout", series, BREAKOUT, 0, tick_size=D(1))
    assert (d.action, d.features["buffer"], d.features["upper_trigger"]) == (Action.HOLD, D(2), D(104))
    assert d.reason_codes == ("NO_SIGNAL",)


def test_a_breakout_on_the_side_already_held_holds() -> None:
    d = decide("breakout", bars([*RANGE, ("103.5", "101", "103")]), BREAKOUT, 2, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.HOLD, 2, ("IN_POSITION", "BREAKOUT_UP"))


# -- mean reversion -----------------------------------------------------------------------------

MEAN_REVERSION = {
    "lookback_bars": 5,
    "entry_zscore": 1.5,
    "exit_zscore": 0.5,
    "atr_period": 2,
    "stop_atr_multiple": 2.5,
}


def test_a_stretched_rise_is_faded_short() -> None:
    # mean 100.8; Σx² → variance (5 × 50816 − 504²) / 25 = 2.56, stdev 1.6; z = 3.2 / 1.6 = 2
    d = decide("mean_reversion", closes(["100", "100", "100", "100", "104"]), MEAN_REVERSION, 0, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.SELL, -1, ("ZSCORE_ABOVE_ENTRY",))
    # true ranges 2, 2, 2, 5 → ATR(2) 3.5; stop 104 + 2.5 × 3.5 = 112.75
    assert d.features == {
        "close": D(104),
        "mean": D("100.8"),
        "stdev": D("1.6"),
        "zscore": D(2),
        "atr": D("3.5"),
        "stop_price": D("112.75"),
    }
    assert d.stop_price == D("112.75")


def test_a_stretched_fall_is_faded_long() -> None:
    d = decide("mean_reversion", closes(["100", "100", "100", "100", "96"]), MEAN_REVERSION, 0, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.BUY, 1, ("ZSCORE_BELOW_ENTRY",))
    assert (d.features["mean"], d.features["zscore"], d.stop_price) == (D("99.2"), D(-2), D("87.25"))


def test_a_stretch_the_other_way_reverses_the_position() -> None:
    d = decide("mean_reversion", closes(["100", "100", "100", "100", "104"]), MEAN_REVERSION, 1, tick_size=TICK)
    assert (d.action, d.target_position, d.order_quantity) == (Action.SELL, -1, 2)


def test_a_stretch_on_the_side_held_holds() -> None:
    d = decide("mean_reversion", closes(["100", "100", "100", "100", "96"]), MEAN_REVERSION, 1, tick_size=TICK)
    assert (d.action, d.reason_codes) == (Action.HOLD, ("IN_POSITION", "ZSCORE_BELOW_ENTRY"))


# mean 100, Σd² = 9 + 9 + 1 + 1 + 0 = 20, stdev 2: the last close gives z = (close − 100) / 2.
AT_MEAN = closes(["103", "97", "101", "99", "100"])  # z = 0
HALF_BELOW = closes(["103", "97", "101", "100", "99"])  # z = −0.5


@pytest.mark.parametrize("position", [1, -1, 2])
def test_back_at_the_mean_goes_flat(position: int) -> None:
    d = decide("mean_reversion", AT_MEAN, MEAN_REVERSION, position, tick_size=TICK)
    assert (d.action, d.target_position, d.order_quantity, d.reason_codes) == (
        Action.FLAT,
        0,
        abs(position),
        ("ZSCORE_REVERTED",),
    )
    # true ranges 7, 5, 3, 2 → ATR(2): 6, 4.5, 3.25
    assert d.features == {"close": D(100), "mean": D(100), "stdev": D(2), "zscore": D(0), "atr": D("3.25")}
    assert d.stop_price is None


def test_the_exit_threshold_is_inclusive() -> None:
    long = decide("mean_reversion", HALF_BELOW, MEAN_REVERSION, 1, tick_size=TICK)
    assert (long.action, long.features["zscore"]) == (Action.FLAT, D("-0.5"))
    # A short is past its exit (z ≤ +0.5) as well.
    assert decide("mean_reversion", HALF_BELOW, MEAN_REVERSION, -1, tick_size=TICK).action == Action.FLAT


def test_a_long_not_yet_reverted_holds() -> None:
    tighter = {**MEAN_REVERSION, "exit_zscore": 0.4}
    d = decide("mean_reversion", HALF_BELOW, tighter, 1, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.HOLD, 1, ("IN_POSITION",))


def test_flat_within_the_entry_band_is_no_signal() -> None:
    d = decide("mean_reversion", HALF_BELOW, MEAN_REVERSION, 0, tick_size=TICK)
    assert (d.action, d.reason_codes) == (Action.HOLD, ("NO_SIGNAL",))
    assert (d.features["zscore"], d.features["mean"], d.features["stdev"]) == (D("-0.5"), D(100), D(2))


def test_the_entry_threshold_is_strict() -> None:
    at_entry = {**MEAN_REVERSION, "entry_zscore": 2.0}  # z is exactly 2
    d = decide("mean_reversion", closes(["100", "100", "100", "100", "104"]), at_entry, 0, tick_size=TICK)
    assert (d.action, d.reason_codes) == (Action.HOLD, ("NO_SIGNAL",))


@pytest.mark.parametrize("position", [-1, 0, 1])
def test_zero_volatility_holds_without_a_zscore(position: int) -> None:
    d = decide("mean_reversion", closes(["100"] * 5), MEAN_REVERSION, position, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.HOLD, position, ("ZERO_VOLATILITY",))
    assert d.features == {"close": D(100), "mean": D(100), "stdev": D(0), "atr": D(2)}


# -- shared behaviour ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "params", "series", "needed"),
    [
        ("trend_following", TREND, UPTREND, 5),
        ("breakout", BREAKOUT, bars([*RANGE, ("103.5", "101", "103")]), 5),
        ("mean_reversion", MEAN_REVERSION, AT_MEAN, 5),
        ("breakout", {**BREAKOUT, "lookback_bars": 6}, bars([*RANGE, ("103.5", "101", "103")]), 7),
    ],
)
def test_too_few_bars_hold_with_the_count_needed(key: str, params: dict, series: list, needed: int) -> None:
    short = series[-(needed - 1) :] if needed <= len(series) else series
    d = decide(key, short, params, 1, tick_size=TICK)
    assert (d.action, d.target_position, d.reason_codes) == (Action.HOLD, 1, ("INSUFFICIENT_BARS",))
    assert d.features == {"bars_required": needed, "bars_available": len(short)}
    assert d.bars_required == needed and d.as_of == short[-1].ts
    assert str(needed) in d.reasons[0].text


def test_no_bars_at_all_is_insufficient_too() -> None:
    d = decide("mean_reversion", [], MEAN_REVERSION, 0, tick_size=TICK)
    assert (d.action, d.features, d.as_of) == (Action.HOLD, {"bars_required": 5, "bars_available": 0}, None)


@pytest.mark.parametrize(
    ("key", "params", "expected"),
    [
        ("trend_following", {"fast_period": 20, "slow_period": 50, "atr_period": 14, "stop_atr_multiple": 2.0}, 50),
        ("trend_following", {"fast_period": 5, "slow_period": 10, "atr_period": 14, "stop_atr_multiple": 2.0}, 29),
        ("breakout", {"lookback_bars": 30, "breakout_buffer_ticks": 2, "atr_period": 14, "stop_atr_multiple": 1.5}, 31),
        (
            "mean_reversion",
            {"lookback_bars": 20, "entry_zscore": 2.0, "exit_zscore": 0.5, "atr_period": 14, "stop_atr_multiple": 2.5},
            29,
        ),
    ],
)
def test_required_bars(key: str, params: dict, expected: int) -> None:
    assert s.required_bars(key, params) == expected


def test_the_decision_serialises_canonically() -> None:
    d = decide("breakout", bars([*RANGE, ("103.5", "101", "103")]), BREAKOUT, -1, tick_size=TICK)
    assert d.as_dict() == {
        "strategy_key": "breakout",
        "action": "BUY",
        "position": -1,
        "target_position": 1,
        "order_quantity": 2,
        "side": "BUY",
        "stop_price": "99.25",
        "reasons": [{"code": "BREAKOUT_UP", "text": "close 103 above 102.50 (highest high 102 + buffer)"}],
        "features": {
            "close": "103",
            "highest_high": "102",
            "lowest_low": "99",
            "buffer": "0.50",
            "upper_trigger": "102.50",
            "lower_trigger": "98.50",
            "atr": "2.5",
            "stop_price": "99.25",
        },
        "bars_required": 5,
        "as_of": "2025-01-06T14:50:00+00:00",
    }


def test_every_reason_code_used_is_catalogued() -> None:
    assert {
        "INSUFFICIENT_BARS",
        "NO_SIGNAL",
        "IN_POSITION",
        "ZERO_ATR",
        "ZERO_VOLATILITY",
        "TREND_UP",
        "TREND_DOWN",
        "BREAKOUT_UP",
        "BREAKOUT_DOWN",
        "ZSCORE_ABOVE_ENTRY",
        "ZSCORE_BELOW_ENTRY",
        "ZSCORE_REVERTED",
    } == s.REASON_CODES


# -- malformed input is a caller's bug ----------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: decide("martingale", UPTREND, TREND, 0, tick_size=TICK), "UNKNOWN_STRATEGY"),
        (
            lambda: decide("trend_following", UPTREND, {**TREND, "fast_period": 4}, 0, tick_size=TICK),
            "INVALID_PARAMETERS",
        ),
        (
            lambda: decide("trend_following", UPTREND, {**TREND, "atr_period": 2.5}, 0, tick_size=TICK),
            "INVALID_PARAMETERS",
        ),
        (
            lambda: decide("trend_following", UPTREND, {**TREND, "atr_period": True}, 0, tick_size=TICK),
            "INVALID_PARAMETERS",
        ),
        (
            lambda: decide("trend_following", UPTREND, {**TREND, "stop_atr_multiple": 0}, 0, tick_size=TICK),
            "INVALID_PARAMETERS",
        ),
        (
            lambda: decide("mean_reversion", AT_MEAN, {**MEAN_REVERSION, "exit_zscore": 1.5}, 0, tick_size=TICK),
            "INVALID_PARAMETERS",
        ),
        (
            lambda: decide("trend_following", UPTREND, {**TREND, "stop_atr_multiple": float("inf")}, 0, tick_size=TICK),
            "INVALID_PARAMETERS",
        ),
        (
            lambda: decide("trend_following", UPTREND, {**TREND, "atr_period": float("nan")}, 0, tick_size=TICK),
            "INVALID_PARAMETERS",
        ),
        (lambda: decide("trend_following", UPTREND, TREND, 0.0, tick_size=TICK), "INVALID_POSITION"),
        (lambda: decide("trend_following", UPTREND, TREND, False, tick_size=TICK), "INVALID_POSITION"),
        (lambda: decide("trend_following", UPTREND, TREND, 0, tick_size=D(0)), "INVALID_TICK_SIZE"),
        (lambda: decide("trend_following", UPTREND, TREND, 0, tick_size=0.25), "INVALID_TICK_SIZE"),
        (lambda: decide("trend_following", UPTREND[::-1], TREND, 0, tick_size=TICK), "INVALID_BARS"),
        (lambda: decide("trend_following", [*UPTREND[:-1], UPTREND[-2]], TREND, 0, tick_size=TICK), "INVALID_BARS"),
    ],
)
def test_malformed_input_raises_with_a_stable_code(call, code: str) -> None:
    with pytest.raises(s.StrategyInputError) as caught:
        call()
    assert caught.value.code == code


def test_float_prices_are_refused() -> None:
    from dataclasses import replace

    series = [*UPTREND[:-1], replace(UPTREND[-1], close=12.0)]
    with pytest.raises(s.StrategyInputError) as caught:
        decide("trend_following", series, TREND, 0, tick_size=TICK)
    assert caught.value.code == "INVALID_BARS"
