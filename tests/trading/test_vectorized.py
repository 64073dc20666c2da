"""The vectorized evaluator against decide(): the same action, stop price and reason codes at
every bar, for a flat, long and short position, on generated bar series with ties, flat stretches
and lengths around the warm-up edge, and random catalogue parameters."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from apps.integrations.bars import ProviderBar
from apps.trading import strategies, vectorized
from apps.trading.catalogue import STRATEGIES as CATALOGUE
from tests.trading.helpers import T0

POSITIONS = (0, 1, -1)
TICKS = ("0.25", "0.01", "1", "0.1", "0.03125", "5")

PROPERTY = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


def _ohlc(seed: int, n: int, mode: str) -> tuple[np.ndarray, ...]:
    """A random walk in ticks. Modes: flat (every price equal: stdev and ATR 0), ties (steps of
    −1/0/+1: equal closes and highs), sparse (mostly unchanged with rare jumps: exact z-score
    ties such as z == 2, stretches of zero volatility), walk (MES-like), mixed (flat, then ties),
    settle (moves, then a flat tail: ATR 0 while the closes still vary)."""
    rng = np.random.default_rng(seed)
    base = int(rng.integers(1_000, 40_000))
    if mode == "flat":
        steps, wick = np.zeros(n, dtype=np.int64), np.zeros((2, n), dtype=np.int64)
    elif mode == "ties":
        steps, wick = rng.integers(-1, 2, n), rng.integers(0, 2, (2, n))
    elif mode == "sparse":
        steps = np.where(rng.random(n) < 0.15, rng.integers(-5, 6, n), 0)
        wick = np.where(rng.random((2, n)) < 0.1, rng.integers(0, 3, (2, n)), 0)
    elif mode == "walk":
        steps, wick = rng.integers(-12, 13, n), rng.integers(0, 7, (2, n))
    elif mode == "mixed":
        cut = int(rng.integers(0, n + 1))
        steps, wick = rng.integers(-1, 2, n), rng.integers(0, 2, (2, n))
        steps[:cut], wick[:, :cut] = 0, 0
    else:  # settle: moves, then a flat tail (ATR 0 while the closes still vary)
        cut = int(rng.integers(max(0, n - 40), n + 1))
        steps, wick = rng.integers(-4, 5, n), rng.integers(0, 2, (2, n))
        steps[cut:], wick[:, cut:] = 0, 0
    close = base + np.cumsum(steps)
    open_ = np.concatenate([[base], close[:-1]])
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    return (a.astype(np.int64) for a in (open_, high, low, close))


def _bars(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, tick: Decimal) -> list[ProviderBar]:
    return [
        ProviderBar(T0 + timedelta(minutes=i), int(o) * tick, int(h) * tick, int(lo) * tick, int(c) * tick, 100)
        for i, (o, h, lo, c) in enumerate(zip(open_, high, low, close, strict=True))
    ]


def _periods(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Mostly short periods (fast examples), sometimes anywhere in the catalogue range."""
    return st.integers(lo, min(hi, lo + 10)) | st.integers(lo, hi)


def _multiple(lo: float, hi: float, round_ones: list[float]) -> st.SearchStrategy[float]:
    return st.sampled_from(round_ones) | st.floats(lo, hi, allow_nan=False).map(lambda v: min(hi, max(lo, round(v, 3))))


@st.composite
def _parameters(draw: st.DrawFn, key: str) -> dict[str, Any]:
    stop = _multiple(0.5, 10.0, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 10.0])
    atr = _periods(2, 100)
    if key == "trend_following":
        fast = draw(_periods(2, 200))
        slow = draw(st.integers(fast + 1, min(500, fast + 12)) | st.integers(fast + 1, 500))
        p = {"fast_period": fast, "slow_period": slow, "atr_period": draw(atr), "stop_atr_multiple": draw(stop)}
    elif key == "breakout":
        p = {
            "lookback_bars": draw(_periods(5, 500)),
            "breakout_buffer_ticks": draw(st.integers(0, 3) | st.integers(0, 50)),
            "atr_period": draw(atr),
            "stop_atr_multiple": draw(stop),
        }
    else:
        entry = draw(_multiple(0.5, 5.0, [0.5, 1.0, 1.5, 2.0, 3.0]))
        exit_ = draw(_multiple(0.0, 3.0, [0.0, 0.5, 1.0]))
        assume(exit_ < entry)
        p = {
            "lookback_bars": draw(_periods(5, 500)),
            "entry_zscore": entry,
            "exit_zscore": exit_,
            "atr_period": draw(atr),
            "stop_atr_multiple": draw(stop),
        }
    spec = CATALOGUE[key]
    assert not any(spec.parameter(name).problem(v) for name, v in p.items())
    assert all(check(p) for _, check, _ in spec.rules)
    return p


def _agree(key: str, ohlc: tuple[np.ndarray, ...], p: dict[str, Any], tick: Decimal) -> None:
    """Every bar, every position: the evaluator's decision is decide()'s."""
    open_, high, low, close = ohlc
    sig = vectorized.evaluate(key, open_, high, low, close, p, tick)
    bars = _bars(open_, high, low, close, tick)
    assert sig.needed == strategies.required_bars(key, p)
    actions = {pos: vectorized.actions(sig, pos) for pos in POSITIONS}
    for i in range(len(bars)):
        for pos in POSITIONS:
            ref = strategies.decide(key, bars[: i + 1], p, pos, tick_size=tick)
            stop = None if ref.stop_price is None else int(ref.stop_price / tick)
            assert stop is None or stop * tick == ref.stop_price
            expected = (str(ref.action), stop, ref.reason_codes)
            assert vectorized.decision(sig, i, pos) == expected, (i, pos, ref.features)
            assert vectorized.ACTIONS[actions[pos][i]] == expected[0], (i, pos)


@st.composite
def _case(draw: st.DrawFn, key: str) -> tuple[dict[str, Any], tuple[np.ndarray, ...], Decimal]:
    p = draw(_parameters(key))
    needed = strategies.required_bars(key, p)
    length = needed + draw(st.sampled_from([-1, 0, 1]) | st.integers(-3, 80))
    mode = draw(st.sampled_from(["flat", "ties", "sparse", "walk", "mixed", "settle"]))
    seed = draw(st.integers(0, 2**32 - 1))
    tick = Decimal(draw(st.sampled_from(TICKS)))
    return p, tuple(_ohlc(seed, max(length, 1), mode)), tick


@pytest.mark.parametrize("key", sorted(strategies.STRATEGIES))
def test_the_evaluator_decides_as_decide_at_every_bar_and_position(key: str) -> None:
    @PROPERTY
    @given(case=_case(key))
    def check(case: tuple[dict[str, Any], tuple[np.ndarray, ...], Decimal]) -> None:
        p, ohlc, tick = case
        _agree(key, ohlc, p, tick)

    check()


# -- the boundaries, by hand ----------------------------------------------------------------------


def _series(closes: list[int], spread: int = 1) -> tuple[np.ndarray, ...]:
    close = np.array(closes, dtype=np.int64)
    return close.copy(), close + spread, close - spread, close


def test_a_z_score_exactly_at_entry_does_not_enter_and_exactly_at_exit_flattens() -> None:
    # Closes 0,0,0,0,5 (ticks, over a base): mean 1, stdev 2, z == 2 exactly.
    closes = [100] * 12 + [100, 100, 100, 100, 105]
    p = {"lookback_bars": 5, "entry_zscore": 2.0, "exit_zscore": 1.0, "atr_period": 2, "stop_atr_multiple": 2.0}
    ohlc = _series(closes)
    sig = vectorized.evaluate("mean_reversion", *ohlc, p, Decimal("0.25"))
    assert vectorized.decision(sig, len(closes) - 1, 0) == ("HOLD", None, ("NO_SIGNAL",))
    _agree("mean_reversion", ohlc, p, Decimal("0.25"))
    _agree("mean_reversion", ohlc, {**p, "entry_zscore": 1.5}, Decimal("0.25"))
    # The mirror image: z == −2 exactly.
    _agree("mean_reversion", _series([200] * 12 + [200, 200, 200, 200, 195]), {**p, "entry_zscore": 2.5}, Decimal("1"))


def test_a_stop_distance_on_the_tick_grid_is_not_widened_past_it() -> None:
    # Every true range 2 ticks: ATR exactly 2 ticks, × 2.0 = 4 ticks, already on the grid.
    closes = list(range(100, 120))
    p = {"fast_period": 2, "slow_period": 4, "atr_period": 3, "stop_atr_multiple": 2.0}
    ohlc = _series(closes)
    sig = vectorized.evaluate("trend_following", *ohlc, p, Decimal("0.25"))
    assert vectorized.decision(sig, 19, 0) == ("BUY", 119 - 4, ("TREND_UP",))
    assert vectorized.decision(sig, 19, -1) == ("BUY", 119 - 4, ("TREND_UP",))
    assert vectorized.decision(sig, 19, 1) == ("HOLD", None, ("IN_POSITION", "TREND_UP"))
    _agree("trend_following", ohlc, p, Decimal("0.25"))
    # True ranges all 3, ATR(3) exactly 3: in floats the weighted sum is 3.0000000000000004, whose
    # ceiling would widen the stop a tick too far; decide's own arithmetic decides the grid case.
    ohlc = _series(list(range(100, 160, 3)), spread=0)
    p = {"fast_period": 2, "slow_period": 4, "atr_period": 3, "stop_atr_multiple": 1.0}
    sig = vectorized.evaluate("trend_following", *ohlc, p, Decimal("0.25"))
    assert vectorized.decision(sig, 19, 0) == ("BUY", 157 - 3, ("TREND_UP",))
    _agree("trend_following", ohlc, p, Decimal("0.25"))


def test_prices_too_large_for_int64_sums_still_decide_exactly() -> None:
    rng = np.random.default_rng(7)
    close = (2**40 + np.cumsum(rng.integers(-(2**30), 2**30, 60))).astype(np.int64)
    ohlc = (close.copy(), close + 2**20, close - 2**20, close)
    tick = Decimal("0.25")
    _agree(
        "trend_following", ohlc, {"fast_period": 3, "slow_period": 9, "atr_period": 4, "stop_atr_multiple": 1.5}, tick
    )
    p = {"lookback_bars": 7, "entry_zscore": 1.0, "exit_zscore": 0.0, "atr_period": 3, "stop_atr_multiple": 2.5}
    _agree("mean_reversion", ohlc, p, tick)


def test_fewer_bars_than_needed_is_insufficient_bars_everywhere() -> None:
    p = {"lookback_bars": 30, "breakout_buffer_ticks": 2, "atr_period": 14, "stop_atr_multiple": 1.5}
    sig = vectorized.evaluate("breakout", *_series(list(range(30))), p, Decimal("0.25"))
    assert sig.needed == 31
    assert {vectorized.decision(sig, i, pos) for i in range(30) for pos in POSITIONS} == {
        ("HOLD", None, ("INSUFFICIENT_BARS",))
    }


def test_malformed_input_is_refused_as_decide_refuses_it() -> None:
    ohlc = _series(list(range(40)))
    with pytest.raises(strategies.StrategyInputError) as unknown:
        vectorized.evaluate("martingale", *ohlc, {}, Decimal("0.25"))
    assert unknown.value.code == "UNKNOWN_STRATEGY"
    with pytest.raises(strategies.StrategyInputError) as params:
        vectorized.evaluate("breakout", *ohlc, {"lookback_bars": 5}, Decimal("0.25"))
    assert params.value.code == "INVALID_PARAMETERS"
