"""Market hours: CME Globex sessions from pandas-market-calendars plus the 16:00–17:00 CT halt guard,
weekends, holidays and early closes, and the bar slots the data service expects."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from apps.market import hours
from apps.market.exceptions import MarketClosed
from apps.market.hours import ClosedReason
from tests.market.helpers import ct, epoch


def test_a_tuesday_at_10_ct_is_open() -> None:
    state = hours.market_state("ES", ct(2025, 12, 16, 10, 0))
    assert state.is_open and state.reason is None
    assert hours.is_open("MES", ct(2025, 12, 16, 10, 0))
    assert state.trade_date.isoformat() == "2025-12-16"
    assert state.next_close == ct(2025, 12, 16, 16, 0)  # the daily halt
    assert state.next_open == ct(2025, 12, 16, 17, 0)


def test_the_16_to_17_ct_halt_is_closed_and_reopens_at_17() -> None:
    state = hours.market_state("MNQ", ct(2025, 12, 16, 16, 30))
    assert not state.is_open and state.reason is ClosedReason.DAILY_HALT
    assert state.next_open == ct(2025, 12, 16, 17, 0)
    assert state.trade_date.isoformat() == "2025-12-17"  # the evening session trades for tomorrow
    assert not hours.is_open("NQ", ct(2025, 12, 16, 16, 0))
    assert hours.is_open("NQ", ct(2025, 12, 16, 15, 59, 59))
    assert hours.is_open("NQ", ct(2025, 12, 16, 17, 0))


def test_saturday_is_closed_for_the_weekend_until_sunday_17_ct() -> None:
    assert hours.closed_reason("ES", ct(2025, 12, 20, 12, 0)) is ClosedReason.WEEKEND
    assert hours.closed_reason("ES", ct(2025, 12, 19, 16, 30)) is ClosedReason.WEEKEND  # Friday after the close
    sunday = hours.market_state("ES", ct(2025, 12, 21, 16, 59))
    assert sunday.reason is ClosedReason.WEEKEND and sunday.next_open == ct(2025, 12, 21, 17, 0)


def test_sunday_17_ct_opens_the_week() -> None:
    state = hours.market_state("MES", ct(2025, 12, 21, 17, 0))
    assert state.is_open and state.trade_date.isoformat() == "2025-12-22"


def test_christmas_is_a_holiday_and_christmas_eve_closes_early() -> None:
    christmas = hours.market_state("ES", ct(2025, 12, 25, 10, 0))
    assert not christmas.is_open and christmas.reason is ClosedReason.HOLIDAY
    assert christmas.next_open == ct(2025, 12, 25, 17, 0)
    assert hours.is_open("ES", ct(2025, 12, 24, 12, 0))
    eve = hours.market_state("ES", ct(2025, 12, 24, 13, 0))
    assert eve.reason is ClosedReason.EARLY_CLOSE
    assert hours.closed_reason("ES", ct(2026, 1, 1, 10, 0)) is ClosedReason.HOLIDAY


def test_an_early_close_day_the_friday_after_thanksgiving() -> None:
    assert hours.market_state("ES", ct(2025, 11, 28, 12, 0)).next_close == ct(2025, 11, 28, 12, 15)
    assert hours.is_open("ES", ct(2025, 11, 28, 12, 14))
    assert hours.closed_reason("ES", ct(2025, 11, 28, 12, 30)) is ClosedReason.EARLY_CLOSE
    assert hours.closed_reason("ES", ct(2025, 11, 28, 16, 30)) is ClosedReason.WEEKEND
    # Thanksgiving itself halts at 12:00 CT and reopens at 17:00 CT.
    assert hours.closed_reason("ES", ct(2025, 11, 27, 14, 0)) is ClosedReason.EARLY_CLOSE
    assert hours.is_open("ES", ct(2025, 11, 27, 17, 0))


def test_the_equity_index_pause_before_2021_06_28_is_closed() -> None:
    assert hours.closed_reason("ES", ct(2020, 6, 2, 15, 20)) is ClosedReason.DAILY_HALT
    assert hours.is_open("ES", ct(2020, 6, 2, 15, 30))
    assert hours.is_open("ES", ct(2021, 6, 29, 15, 20))  # eliminated since


def test_metals_and_energy_use_their_own_calendars_with_the_halt() -> None:
    assert hours.closed_reason("MGC", ct(2025, 12, 16, 16, 30)) is ClosedReason.DAILY_HALT
    assert hours.closed_reason("MCL", ct(2025, 12, 20, 12, 0)) is ClosedReason.WEEKEND
    assert hours.is_open("MCL", ct(2025, 12, 16, 10, 0))


def test_require_open_raises_market_closed_with_the_reason() -> None:
    hours.require_open("ES", ct(2025, 12, 16, 10, 0))
    with pytest.raises(MarketClosed) as caught:
        hours.require_open("ES", ct(2025, 12, 20, 12, 0))
    assert caught.value.error_code == "MARKET_CLOSED"
    assert caught.value.extra["closed_reason"] == "weekend"


def test_naive_times_and_unknown_instruments_are_refused() -> None:
    with pytest.raises(ValueError):
        hours.is_open("ES", datetime(2025, 12, 16, 16, 0))  # noqa: DTZ001
    with pytest.raises(ValueError):
        hours.is_open("ZZ", datetime(2025, 12, 16, 16, 0, tzinfo=UTC))


def test_is_open_costs_microseconds_after_warm_up() -> None:
    at = ct(2025, 12, 16, 10, 0)
    hours.warm_up(["MES"])
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        hours.is_open("MES", at)
    per_call = (time.perf_counter() - started) / n
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per call"


def test_bar_slots_skip_the_halt_and_the_weekend() -> None:
    slots = hours.bar_slots_between("ES", 60, epoch(ct(2025, 12, 16, 15, 58)), epoch(ct(2025, 12, 16, 17, 2)))
    assert slots == [epoch(ct(2025, 12, 16, 15, 58)), epoch(ct(2025, 12, 16, 15, 59))] + [
        epoch(ct(2025, 12, 16, 17, 0)),
        epoch(ct(2025, 12, 16, 17, 1)),
    ]
    before = hours.bar_slots_before("ES", 300, epoch(ct(2025, 12, 21, 17, 10)), 4)
    assert before == [
        epoch(ct(2025, 12, 19, 15, 50)),
        epoch(ct(2025, 12, 19, 15, 55)),
        epoch(ct(2025, 12, 21, 17, 0)),
        epoch(ct(2025, 12, 21, 17, 5)),
    ]


def test_a_bar_is_closed_when_its_slot_ends_or_the_market_stops_for_the_rest_of_it() -> None:
    assert hours.closed_bars_stop("ES", 60, epoch(ct(2025, 12, 16, 10, 0, 30))) == epoch(ct(2025, 12, 16, 10, 0))
    # A 12:15 CT early close: the 12:00 CT hour bar is closed at 12:15, not at 13:00.
    assert hours.closed_bars_stop("ES", 3600, epoch(ct(2025, 11, 28, 12, 15))) == epoch(ct(2025, 11, 28, 13, 0))
    assert hours.closed_bars_stop("ES", 3600, epoch(ct(2025, 11, 28, 12, 10))) == epoch(ct(2025, 11, 28, 12, 0))
