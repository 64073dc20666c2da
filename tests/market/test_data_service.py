"""The historical-data service against a fake provider implementing the bars contract: served from
the store when present, missing stretches fetched once and stored, provider failures and stale or
missing data fail closed with DATA_UNAVAILABLE / DATA_STALE, closed markets never fetched, 5m bars
aggregated from 1m exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.integrations.bars import ProviderBar
from apps.integrations.errors import IntegrationError
from apps.market import services
from apps.market.bars import MarketBar
from apps.market.exceptions import DataStale, DataUnavailable, MarketDataRequestInvalid
from apps.market.models import Bar, BarCoverage, BarFetch
from tests.market.helpers import FakeBarSource, ct, minute_bars

pytestmark = pytest.mark.django_db

END = ct(2025, 12, 16, 10, 0)  # a Tuesday, market open
NOW = END + timedelta(seconds=5)


def _fetch(source: FakeBarSource, *, end: datetime = END, now: datetime | None = None, **kw: Any) -> list[MarketBar]:
    params: dict[str, Any] = {"timeframe": "1m", "count": 30, "provider": source.provider} | kw
    timeframe = params.pop("timeframe")
    return services.bars(
        params.pop("instrument", "MES"),
        timeframe,
        end=end,
        now=now or end + timedelta(seconds=5),
        source=source,
        **params,
    )


def _history(
    source: FakeBarSource, symbol: str = "MES.c.0", *, start: datetime, end: datetime, instrument: str = "MES"
) -> list[ProviderBar]:
    bars = minute_bars(instrument, start, end)
    source.add(symbol, "1m", bars)
    return bars


def test_bars_in_the_store_are_served_without_a_provider_call(fake_source: FakeBarSource) -> None:
    bars = minute_bars("MES", END - timedelta(minutes=30), END)
    services.bars_import(
        instrument="MES",
        timeframe="1m",
        bars=[MarketBar(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars],
        source="csv",
    )
    got = _fetch(fake_source)
    assert fake_source.calls == []
    assert [(b.ts, b.close, b.volume) for b in got] == [(b.ts, b.close, b.volume) for b in bars]


def test_a_missing_range_is_fetched_once_and_stored(fake_source: FakeBarSource) -> None:
    expected = _history(fake_source, start=END - timedelta(hours=2), end=END + timedelta(minutes=1))[-31:-1]
    got = _fetch(fake_source)
    assert len(fake_source.calls) == 1
    symbol, timeframe, start, end = fake_source.calls[0]
    assert (symbol, timeframe, start, end) == ("MES.c.0", "1m", END - timedelta(minutes=30), END)
    assert [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in got] == [
        (b.ts, b.open, b.high, b.low, b.close, b.volume) for b in expected
    ]
    assert Bar.objects.filter(instrument="MES", timeframe="1m", source="databento").count() == 30
    fetch = BarFetch.objects.get()
    assert (fetch.status, fetch.bars_returned, fetch.bars_inserted) == ("ok", 30, 30)

    assert _fetch(fake_source) == got  # again: from the store
    assert len(fake_source.calls) == 1

    # The next bar: only the new minute is asked for.
    _fetch(fake_source, end=END + timedelta(minutes=1))
    assert fake_source.calls[-1][2:] == (END, END + timedelta(minutes=1))


def test_a_provider_error_is_data_unavailable_with_its_cause_and_not_retried_at_once(
    fake_source: FakeBarSource,
) -> None:
    fake_source.error = IntegrationError(
        "Databento is rate-limiting this key.",
        error_code="INTEGRATION_RATE_LIMITED",
        provider="databento",
        retry_after=30,
    )
    with pytest.raises(DataUnavailable) as caught:
        _fetch(fake_source)
    error = caught.value
    assert error.error_code == "DATA_UNAVAILABLE" and error.extra["reason"] == "provider_error"
    assert error.extra["cause_error_code"] == "INTEGRATION_RATE_LIMITED"
    assert error.extra["retry_after_seconds"] == 30
    assert isinstance(error.__cause__, IntegrationError)
    assert BarFetch.objects.get().error_code == "INTEGRATION_RATE_LIMITED"
    # A second tick moments later is answered from the fetch log: the provider is not hammered.
    with pytest.raises(DataUnavailable) as again:
        _fetch(fake_source, now=NOW + timedelta(seconds=3))
    assert again.value.extra["cause_error_code"] == "INTEGRATION_RATE_LIMITED"
    assert len(fake_source.calls) == 1
    assert Bar.objects.count() == 0  # nothing invented


def test_a_missing_key_is_data_unavailable_with_the_missing_variables() -> None:
    with pytest.raises(DataUnavailable) as caught:
        services.bars("MES", "1m", end=END, count=5, provider="databento", now=NOW)
    assert caught.value.extra["reason"] == "key_missing"
    assert caught.value.extra["cause_error_code"] == "INTEGRATION_KEY_MISSING"
    assert caught.value.extra["missing_env_vars"] == ["DATABENTO_API_KEY"]
    assert "DATABENTO_API_KEY" in caught.value.suggested_fix


def test_bars_already_stored_need_no_key() -> None:
    bars = minute_bars("MES", END - timedelta(minutes=5), END)
    services.bars_import(
        instrument="MES",
        timeframe="1m",
        bars=[MarketBar(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars],
        source="csv",
    )
    assert len(services.bars("MES", "1m", end=END, count=5, provider="databento", now=NOW)) == 5


def test_when_the_newest_bar_is_not_out_yet_it_is_data_stale(fake_source: FakeBarSource, settings: Any) -> None:
    _history(fake_source, start=END - timedelta(hours=2), end=END)
    fake_source.published_until = END - timedelta(minutes=2)  # the provider lags two bars
    with pytest.raises(DataStale) as caught:
        _fetch(fake_source)
    error = caught.value
    assert error.error_code == "DATA_STALE"
    assert error.extra["missing_bars"] == 2
    assert error.extra["expected_bar_ts"] == (END - timedelta(minutes=1)).astimezone(UTC).isoformat()
    assert error.extra["newest_bar_ts"] == (END - timedelta(minutes=3)).astimezone(UTC).isoformat()
    # With a tolerance of two bars, the same data is fresh enough: 30 bars ending 3 minutes ago.
    settings.MARKET_DATA_STALE_AFTER_BARS = 2
    got = _fetch(fake_source, now=NOW + timedelta(seconds=1))
    assert len(got) == 30 and got[-1].ts == END - timedelta(minutes=3)
    assert Bar.objects.filter(ts__gte=END - timedelta(minutes=2)).count() == 0  # never filled in


def test_a_minute_without_trades_is_accepted_once_the_answer_is_final(fake_source: FakeBarSource) -> None:
    bars = _history(fake_source, start=END - timedelta(hours=1), end=END)
    quiet = END - timedelta(minutes=10)
    fake_source.bars[("MES.c.0", "1m")] = [b for b in bars if b.ts != quiet]
    got = _fetch(fake_source, count=20)
    assert quiet not in [b.ts for b in got] and len(got) == 20  # not invented, and not an error
    assert got[0].ts == END - timedelta(minutes=21)
    assert len(fake_source.calls) == 2  # the window grew by the missing minute


def test_a_closed_market_is_never_fetched(fake_source: FakeBarSource) -> None:
    friday_close, sunday_open = ct(2025, 12, 19, 16, 0), ct(2025, 12, 21, 17, 0)
    _history(fake_source, start=friday_close - timedelta(hours=1), end=friday_close)
    _history(fake_source, start=sunday_open, end=sunday_open + timedelta(hours=1))
    saturday = ct(2025, 12, 20, 12, 0)
    got = _fetch(fake_source, end=saturday, count=10)
    assert got[-1].ts == friday_close - timedelta(minutes=1)
    assert fake_source.calls[0][2:] == (friday_close - timedelta(minutes=10), friday_close)
    # Sunday before the open, and again: the weekend is not "missing".
    _fetch(fake_source, end=ct(2025, 12, 21, 16, 0), count=10)
    _fetch(fake_source, end=saturday + timedelta(hours=3), count=10)
    assert len(fake_source.calls) == 1
    # After the open, only the new session's minutes are asked for.
    got = _fetch(fake_source, end=sunday_open + timedelta(minutes=5), count=10)
    assert fake_source.calls[-1][2:] == (sunday_open, sunday_open + timedelta(minutes=5))
    assert len(fake_source.calls) == 2
    assert [b.ts for b in got][4:6] == [friday_close - timedelta(minutes=1), sunday_open]


def test_5m_bars_are_aggregated_exactly_from_1m(fake_source: FakeBarSource) -> None:
    start = (END - timedelta(minutes=10)).astimezone(UTC)
    minutes = [
        ProviderBar(start + timedelta(minutes=i), Decimal(o), Decimal(h), Decimal(lo), Decimal(c), v)
        for i, (o, h, lo, c, v) in enumerate(
            [
                ("6000.00", "6001.00", "5999.75", "6000.50", 10),
                ("6000.50", "6003.25", "6000.25", "6002.00", 20),
                ("6002.00", "6002.50", "5998.00", "5998.25", 30),
                ("5998.25", "5999.00", "5997.50", "5998.75", 40),
                ("5998.75", "6000.00", "5998.50", "5999.75", 50),
                ("5999.75", "6000.25", "5999.50", "6000.00", 1),
                ("6000.00", "6000.75", "5999.25", "6000.50", 2),
                ("6000.50", "6001.00", "6000.25", "6000.75", 3),
                ("6000.75", "6004.00", "6000.50", "6003.75", 4),
                ("6003.75", "6004.25", "6002.00", "6002.25", 5),
            ]
        )
    ]
    fake_source.add("MES.c.0", "1m", minutes)
    got = _fetch(fake_source, timeframe="5m", count=2)
    assert [(b.ts, b.open, b.high, b.low, b.close, b.volume) for b in got] == [
        (start, Decimal("6000.00"), Decimal("6003.25"), Decimal("5997.50"), Decimal("5999.75"), 150),
        (
            start + timedelta(minutes=5),
            Decimal("5999.75"),
            Decimal("6004.25"),
            Decimal("5999.25"),
            Decimal("6002.25"),
            15,
        ),
    ]
    assert [c[1] for c in fake_source.calls] == ["1m"]  # providers are asked for 1m only
    assert Bar.objects.filter(timeframe="5m", derived=True).count() == 2
    assert _fetch(fake_source, timeframe="5m", count=2) == got  # from the stored 5m bars
    assert len(fake_source.calls) == 1


def test_a_5m_bucket_with_an_unfinished_minute_is_never_built(fake_source: FakeBarSource) -> None:
    _history(fake_source, start=END - timedelta(hours=1), end=END)
    fake_source.published_until = END - timedelta(minutes=1)
    with pytest.raises(DataStale):
        _fetch(fake_source, timeframe="5m", count=3)
    assert not Bar.objects.filter(timeframe="5m", ts=END - timedelta(minutes=5)).exists()


def test_an_empty_answer_while_the_market_was_open_is_data_unavailable(fake_source: FakeBarSource) -> None:
    with pytest.raises(DataUnavailable) as caught:
        _fetch(fake_source, count=60, now=END + timedelta(hours=1))
    assert caught.value.extra["reason"] == "empty_answer"
    assert BarCoverage.objects.count() == 0  # the silence is not taken as "no trades"
    assert BarFetch.objects.get().error_code == "EMPTY_ANSWER"


def test_fewer_bars_than_asked_is_data_unavailable(fake_source: FakeBarSource) -> None:
    _history(fake_source, start=END - timedelta(minutes=40), end=END)  # the provider's history starts here
    with pytest.raises(DataUnavailable) as caught:  # history older than MARKET_DATA_RECENT_HOURS: settled
        _fetch(fake_source, count=50, now=END + timedelta(days=2))
    assert caught.value.extra["reason"] == "not_enough_bars"
    assert (caught.value.extra["asked"], caught.value.extra["got"]) == (50, 40)


def test_an_answer_that_breaks_the_contract_is_refused(fake_source: FakeBarSource) -> None:
    off = END - timedelta(minutes=3, seconds=30)
    fake_source.add("MES.c.0", "1m", [ProviderBar(off, Decimal(1), Decimal(2), Decimal(1), Decimal(2), 1)])
    with pytest.raises(DataUnavailable) as caught:
        _fetch(fake_source, count=5)
    assert caught.value.extra["reason"] == "bad_answer"
    assert Bar.objects.count() == 0


def test_polygon_is_asked_for_the_front_contract_and_refused_for_crude() -> None:
    polygon = FakeBarSource(provider="polygon")
    _history(polygon, "ESH6", start=END - timedelta(hours=1), end=END, instrument="ES")  # rolled from ESZ5 on Dec 11
    got = services.bars("ES", "1m", end=END, count=5, provider="polygon", now=NOW, source=polygon)
    assert len(got) == 5 and polygon.calls[0][0] == "ESH6"
    with pytest.raises(DataUnavailable) as caught:
        services.bars("MCL", "1m", end=END, count=5, provider="polygon", now=NOW, source=polygon)
    assert caught.value.extra["reason"] == "provider_does_not_cover"


def test_requests_that_make_no_sense_are_validation_errors(fake_source: FakeBarSource) -> None:
    cases = [
        ({"instrument": "ZZ"}, "instrument"),
        ({"timeframe": "2m"}, "timeframe"),
        ({"count": 0}, "count"),
        ({"now": END - timedelta(seconds=1)}, "end"),
        ({"provider": "tradovate"}, "provider"),
    ]
    for overrides, field in cases:
        with pytest.raises(MarketDataRequestInvalid) as caught:
            _fetch(fake_source, **overrides)
        assert caught.value.error_code == "VALIDATION_ERROR" and field in caught.value.extra["fields"]
    assert fake_source.calls == []


def test_a_replay_long_after_the_fact_records_the_range_as_final(fake_source: FakeBarSource) -> None:
    _history(fake_source, start=END - timedelta(hours=1), end=END)
    _fetch(fake_source, now=END + timedelta(days=3))
    coverage = BarCoverage.objects.get()
    assert (coverage.start, coverage.end) == (END - timedelta(minutes=30), END)
    assert datetime.now(UTC) > coverage.end


@pytest.mark.django_db(transaction=True)
def test_workers_ticking_on_the_same_bar_cause_one_provider_call() -> None:
    """The fetch runs under an advisory lock per (instrument, timeframe): the worker that waited
    finds the bars stored by the one that fetched, and asks nothing."""
    import threading
    import time

    from django.db import connection

    class SlowSource(FakeBarSource):
        def fetch_bars(self, **kwargs: Any) -> list[ProviderBar]:
            time.sleep(0.3)
            return super().fetch_bars(**kwargs)

    source = SlowSource()
    _history(source, start=END - timedelta(hours=1), end=END)
    results: list[Any] = []

    def tick() -> None:
        try:
            results.append(len(_fetch(source, count=10)))
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [10, 10, 10]
    assert len(source.calls) == 1
