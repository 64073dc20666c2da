"""Stored bars as numpy arrays (apps/market/arrays.py): exact integer ticks, oldest first, the
half-open window, a price off the tick grid failing closed with the bar named, the missing slots
(none while the market is closed), and the per-process cache that a matrix's runs share."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from apps.market import arrays, hours, services
from apps.market.arrays import BarCache, BarGap, bar_arrays, bar_gaps
from apps.market.bars import MarketBar
from apps.market.exceptions import BarPriceOffTick
from apps.market.models import Bar
from tests.market.helpers import ct, epoch, minute_bars

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)  # Tuesday 10:00 CT


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    arrays.bar_cache_clear()


def _store(instrument: str, bars: list[MarketBar], timeframe: str = "1m") -> None:
    services.bars_store(instrument=instrument, timeframe=timeframe, bars=bars, source="csv", fetched_at=T0)


def _bar(ts: datetime, o: str, h: str, lo: str, c: str, v: int = 10) -> MarketBar:
    return MarketBar(ts, Decimal(o), Decimal(h), Decimal(lo), Decimal(c), v)


def _minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def test_prices_come_back_as_exact_ticks_oldest_first() -> None:
    # MCL's tick is 0.01: the largest price the store holds (9 integer digits) still comes back exact.
    bars = [
        _bar(_minute(2), "999999999.99", "999999999.99", "999999998.01", "999999999.98", 2**40),
        _bar(_minute(0), "0.01", "0.02", "0.01", "0.01", 0),
        _bar(_minute(1), "71.37", "71.45", "71.30", "71.41", 1234),
    ]
    _store("MCL", bars)
    got = bar_arrays(instrument="MCL", timeframe="1m", start=T0, end=_minute(3))
    assert got.tick_size == Decimal("0.01") and (got.instrument, got.timeframe) == ("MCL", "1m")
    assert got.ts.tolist() == [epoch(_minute(n)) for n in range(3)]
    assert got.open.tolist() == [1, 7137, 99999999999]
    assert got.high.tolist() == [2, 7145, 99999999999]
    assert got.low.tolist() == [1, 7130, 99999999801]
    assert got.close.tolist() == [1, 7141, 99999999998]
    assert got.volume.tolist() == [0, 1234, 2**40]
    assert all(a.dtype == np.int64 for a in (got.ts, got.open, got.high, got.low, got.close, got.volume))
    assert got.price(int(got.close[2])) == Decimal("999999999.98")
    with pytest.raises(ValueError):
        got.close[0] = 5  # shared across the runs of a matrix: read-only


def test_every_stored_bar_of_the_window_in_order_whatever_the_insert_order() -> None:
    rng = random.Random(7)
    minutes = list(range(500))
    rng.shuffle(minutes)
    bars = [_bar(_minute(n), str(6000 + n), str(6001 + n), str(5999 + n), f"{6000 + n}.25", n) for n in minutes]
    for i in range(0, 500, 100):
        _store("MES", bars[i : i + 100])
    _store("MES", [_bar(_minute(3), "1", "1", "1", "1")], timeframe="5m")  # another timeframe
    _store("MNQ", [_bar(_minute(3), "1", "1", "1", "1")])  # another instrument
    got = bar_arrays(instrument="MES", timeframe="1m", start=T0, end=_minute(500))
    assert len(got) == 500
    assert np.all(np.diff(got.ts) == 60)
    assert got.open.tolist() == [(6000 + n) * 4 for n in range(500)]
    assert got.close.tolist() == [(6000 + n) * 4 + 1 for n in range(500)]
    assert got.volume.tolist() == list(range(500))


def test_the_window_is_half_open() -> None:
    _store("MES", [_bar(_minute(n), "6000", "6000", "6000", "6000") for n in range(5)])
    got = bar_arrays(instrument="MES", timeframe="1m", start=_minute(1), end=_minute(4))
    assert got.ts.tolist() == [epoch(_minute(n)) for n in (1, 2, 3)]
    assert len(bar_arrays(instrument="MES", timeframe="1m", start=_minute(1), end=_minute(1))) == 0


def test_an_empty_window_gives_empty_arrays() -> None:
    got = bar_arrays(instrument="MES", timeframe="1m", start=T0, end=_minute(60))
    assert len(got) == 0 and got.ts.dtype == np.int64 and got.close.dtype == np.int64
    assert got.close.tolist() == []


def test_a_price_off_the_tick_grid_fails_closed_naming_the_bar() -> None:
    _store("MES", [_bar(_minute(n), "6000", "6001", "5999", "6000.25") for n in range(3)])
    # One nano off a tick: every digit of the stored price counts.
    Bar.objects.create(
        instrument="MES",
        timeframe="1m",
        ts=_minute(3),
        open=Decimal("6000.25"),
        high=Decimal("6001.000000001"),
        low=Decimal("5999"),
        close=Decimal("6000.30"),
        volume=1,
        source="csv",
        fetched_at=T0,
    )
    with pytest.raises(BarPriceOffTick) as caught:
        bar_arrays(instrument="MES", timeframe="1m", start=T0, end=_minute(10))
    err = caught.value
    assert err.error_code == "DATA_UNAVAILABLE"
    assert err.extra["reason"] == "price_not_on_tick"
    assert err.extra["bar_ts"] == _minute(3).isoformat()
    assert (err.extra["field"], err.extra["price"], err.extra["tick_size"]) == ("high", "6001.000000001", "0.25")
    assert "MES 1m bar at 2025-12-16T16:03:00+00:00 has high 6001.000000001" in str(err)
    # The window before that bar is fine.
    assert len(bar_arrays(instrument="MES", timeframe="1m", start=T0, end=_minute(3))) == 3


def _provider_bars(instrument: str, start: datetime, end: datetime) -> list[MarketBar]:
    return [MarketBar(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in minute_bars(instrument, start, end)]


def test_no_gaps_across_the_daily_halt_and_the_weekend_when_every_open_minute_is_stored() -> None:
    start, end = ct(2025, 12, 11, 15, 0), ct(2025, 12, 14, 18, 0)  # Thursday 15:00 CT to Sunday 18:00 CT
    _store("MES", _provider_bars("MES", start, end))
    got = bar_arrays(instrument="MES", timeframe="1m", start=start, end=end)
    # Thursday 15:00-16:00, Thursday 17:00 to Friday 16:00, Sunday 17:00-18:00.
    assert len(got) == 60 + 23 * 60 + 60
    assert bar_gaps(instrument="MES", timeframe="1m", start=start, end=end, arrays=got) == []
    assert bar_gaps(instrument="MES", timeframe="1m", start=start, end=end) == []


def test_missing_minutes_are_reported_as_runs_oldest_first() -> None:
    start, end = ct(2025, 12, 11, 15, 0), ct(2025, 12, 14, 18, 0)
    dropped = {
        ct(2025, 12, 11, 15, 59),  # the last minute before Thursday's halt ...
        ct(2025, 12, 11, 17, 0),  # ... and the first after it: one run across the halt
        ct(2025, 12, 12, 9, 30),
        ct(2025, 12, 12, 9, 31),
        ct(2025, 12, 12, 9, 32),
        ct(2025, 12, 12, 15, 59),  # Friday's last minute and Sunday's first: one run across the weekend
        ct(2025, 12, 14, 17, 0),
    }
    _store("MES", [b for b in _provider_bars("MES", start, end) if b.ts not in dropped])
    gaps = bar_gaps(instrument="MES", timeframe="1m", start=start, end=end)
    assert gaps == [
        BarGap(ct(2025, 12, 11, 15, 59), ct(2025, 12, 11, 17, 1), 2),
        BarGap(ct(2025, 12, 12, 9, 30), ct(2025, 12, 12, 9, 33), 3),
        BarGap(ct(2025, 12, 12, 15, 59), ct(2025, 12, 14, 17, 1), 2),
    ]
    # A provider's final answer with no bar (coverage) means no trades: not missing.
    services.coverage_add(
        instrument="MES", timeframe="1m", start=epoch(ct(2025, 12, 12, 9, 0)), stop=epoch(end), source="databento"
    )
    assert bar_gaps(instrument="MES", timeframe="1m", start=start, end=end) == gaps[:1]


def test_an_empty_store_misses_every_open_slot() -> None:
    start, end = ct(2025, 12, 12, 15, 0), ct(2025, 12, 15, 0, 0)  # Friday 15:00 CT to Monday 00:00 CT
    assert bar_gaps(instrument="MES", timeframe="1h", start=start, end=end) == [
        BarGap(ct(2025, 12, 12, 15, 0), ct(2025, 12, 15, 0, 0), 1 + 7)  # Friday 15:00, Sunday 17:00-23:00
    ]


def test_expected_slots_agree_with_the_market_calendar() -> None:
    windows = [
        (ct(2025, 11, 20, 3, 7), ct(2026, 1, 6, 12, 0)),  # Thanksgiving's early close, Christmas, New Year
        (ct(2019, 3, 4, 0, 0), ct(2019, 3, 12, 0, 0)),  # the 15:15-15:30 CT pause splits an hour slot in two
    ]
    for start, end in windows:
        a, b = epoch(start), epoch(end)
        for tf in (60, 300, 900, 3600):
            assert arrays.expected_slots("MES", tf, a, b).tolist() == hours.bar_slots_between("MES", tf, a, b)
    hourly = arrays.expected_slots("MES", 3600, epoch(windows[1][0]), epoch(windows[1][1])).tolist()
    assert hourly.count(epoch(ct(2019, 3, 5, 15, 0))) == 1  # trading pauses inside it: still one slot


def test_the_cache_reads_a_window_once_and_again_after_new_bars_land_in_it(
    django_assert_num_queries: object,
) -> None:
    _store("MES", [_bar(_minute(n), "6000", "6000", "6000", "6000") for n in range(10)])
    cache = BarCache()
    first = cache.get(instrument="MES", timeframe="1m", start=T0, end=_minute(20))
    assert (len(first), cache.misses, cache.hits) == (10, 1, 0)
    with django_assert_num_queries(1):  # type: ignore[operator]
        again = cache.get(instrument="MES", timeframe="1m", start=T0, end=_minute(20))
    assert again is first and cache.hits == 1
    # New bars outside the window, or for another instrument or timeframe: still a hit.
    _store("MES", [_bar(_minute(30), "6000", "6000", "6000", "6000")])
    _store("MNQ", [_bar(_minute(15), "6000", "6000", "6000", "6000")])
    _store("MES", [_bar(_minute(15), "6000", "6000", "6000", "6000")], timeframe="5m")
    assert cache.get(instrument="MES", timeframe="1m", start=T0, end=_minute(20)) is first
    assert cache.hits == 2
    # A new bar inside the window: read again.
    _store("MES", [_bar(_minute(15), "6001", "6001", "6001", "6001")])
    fresh = cache.get(instrument="MES", timeframe="1m", start=T0, end=_minute(20))
    assert fresh is not first and len(fresh) == 11 and fresh.close[-1] == 6001 * 4
    assert cache.misses == 2
    assert cache.get(instrument="MES", timeframe="1m", start=T0, end=_minute(20)) is fresh


def test_the_cache_forgets_the_least_recently_used_window_past_its_byte_bound() -> None:
    _store("MES", [_bar(_minute(n), "6000", "6000", "6000", "6000") for n in range(12)])
    one_window = 10 * 6 * 8  # ten bars, six int64 arrays
    cache = BarCache(max_bytes=2 * one_window)
    windows = [(T0, _minute(10)), (_minute(1), _minute(11)), (_minute(2), _minute(12))]  # none inside another
    a = cache.get(instrument="MES", timeframe="1m", start=windows[0][0], end=windows[0][1])
    cache.get(instrument="MES", timeframe="1m", start=windows[1][0], end=windows[1][1])
    assert cache.get(instrument="MES", timeframe="1m", start=windows[0][0], end=windows[0][1]) is a  # now newest
    cache.get(instrument="MES", timeframe="1m", start=windows[2][0], end=windows[2][1])  # evicts the second
    assert len(cache) == 2 and cache.nbytes == 2 * one_window
    assert cache.get(instrument="MES", timeframe="1m", start=windows[0][0], end=windows[0][1]) is a
    misses = cache.misses
    cache.get(instrument="MES", timeframe="1m", start=windows[1][0], end=windows[1][1])
    assert cache.misses == misses + 1


def _minutes(numbers: range | list[int], price: str = "6000") -> list[MarketBar]:
    return [_bar(_minute(n), price, price, price, price) for n in numbers]


def test_a_window_inside_a_cached_read_is_a_slice_of_it_until_bars_land_anywhere_in_that_read() -> None:
    _store("MES", _minutes([n for n in range(30) if n != 2]))
    cache = BarCache()
    # A matrix's first run reads from further back than its own warm-up needs ...
    first = cache.get(instrument="MES", timeframe="1m", start=_minute(10), end=_minute(30), read_from=T0)
    assert (len(first), cache.misses) == (20, 1) and first.start == _minute(10)
    # ... so a run whose warm-up reaches further back finds its bars in that read: no second read.
    wider = cache.get(instrument="MES", timeframe="1m", start=_minute(5), end=_minute(30))
    assert (cache.misses, cache.hits) == (1, 1)
    exact = bar_arrays(instrument="MES", timeframe="1m", start=_minute(5), end=_minute(30))
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(wider, name), getattr(exact, name))
    assert not wider.ts.flags.writeable and wider.start == _minute(5) and wider.end == _minute(30)
    # A window reaching before the read, or past it, is read on its own.
    cache.get(instrument="MES", timeframe="1m", start=_minute(-5), end=_minute(30))
    assert cache.misses == 2
    # A bar stored inside the read, even before the asked window: the read is not trusted any more.
    _store("MES", _minutes([2], "6001"))
    again = cache.get(instrument="MES", timeframe="1m", start=T0, end=_minute(30))
    assert cache.misses == 3 and len(again) == 30 and again.close[2] == 6001 * 4


def test_a_reads_gaps_are_checked_once_and_a_window_they_do_not_reach_has_none() -> None:
    _store("MES", _minutes([n for n in range(30) if n not in (12, 13)]))
    cache = BarCache()
    bars, gaps = cache.window(instrument="MES", timeframe="1m", start=_minute(15), end=_minute(30), read_from=T0)
    assert gaps == [] and len(bars) == 15 and cache.gap_checks == 1  # the whole read's, once
    # A window the gap reaches into is checked on its own, and names it.
    _, gaps = cache.window(instrument="MES", timeframe="1m", start=_minute(10), end=_minute(30))
    assert gaps == [BarGap(_minute(12), _minute(14), 2)] and cache.gap_checks == 2
    _, gaps = cache.window(instrument="MES", timeframe="1m", start=_minute(14), end=_minute(30))
    assert gaps == [] and cache.gap_checks == 2 and cache.misses == 1
    # The missing bars are stored (a provider's fetch): read again, and no gap any more.
    _store("MES", _minutes([12, 13]))
    bars, gaps = cache.window(instrument="MES", timeframe="1m", start=_minute(10), end=_minute(30))
    assert gaps == [] and len(bars) == 20 and cache.misses == 2


def test_a_price_off_the_tick_grid_before_the_asked_window_does_not_fail_a_read_reaching_back() -> None:
    _store("MES", _minutes(range(1, 10)))
    Bar.objects.create(
        instrument="MES", timeframe="1m", ts=T0, open=Decimal("6000.1"), high=Decimal("6000.1"),
        low=Decimal("6000.1"), close=Decimal("6000.1"), volume=1, source="csv", fetched_at=T0,
    )  # fmt: skip
    cache = BarCache()
    bars = cache.get(instrument="MES", timeframe="1m", start=_minute(5), end=_minute(10), read_from=T0)
    assert len(bars) == 5
    with pytest.raises(BarPriceOffTick):  # asked for, it fails closed as ever
        cache.get(instrument="MES", timeframe="1m", start=T0, end=_minute(10))
