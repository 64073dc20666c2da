"""The bar store: one bar per (instrument, timeframe, ts), written once; a different later answer is
recorded as a conflict and never replaces the stored bar; coverage stretches merge."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from apps.market import selectors, services
from apps.market.bars import MarketBar
from apps.market.models import Bar, BarConflict, BarCoverage
from tests.market.helpers import ct, epoch

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)


def _bar(ts: datetime = T0, close: str = "6000.25") -> MarketBar:
    return MarketBar(ts, Decimal("6000.00"), Decimal("6001.00"), Decimal("5999.50"), Decimal(close), 10)


def test_a_slot_holds_one_bar() -> None:
    fields = {"open": 1, "high": 2, "low": 1, "close": 2, "volume": 1, "source": "csv", "fetched_at": T0}
    Bar.objects.create(instrument="ES", timeframe="1m", ts=T0, **fields)
    Bar.objects.create(instrument="ES", timeframe="5m", ts=T0, **fields)  # another timeframe
    Bar.objects.create(instrument="MES", timeframe="1m", ts=T0, **fields)  # another instrument
    with pytest.raises(IntegrityError), transaction.atomic():
        Bar.objects.create(instrument="ES", timeframe="1m", ts=T0, **fields)


def test_the_store_refuses_a_bar_with_high_below_low() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Bar.objects.create(
            instrument="ES", timeframe="1m", ts=T0, open=1, high=1, low=2, close=1, volume=1, source="x", fetched_at=T0
        )


def test_storing_again_changes_nothing_and_records_a_different_answer() -> None:
    first = services.bars_store(instrument="ES", timeframe="1m", bars=[_bar()], source="databento", fetched_at=T0)
    assert first.inserted == 1
    again = services.bars_store(instrument="ES", timeframe="1m", bars=[_bar()], source="polygon", fetched_at=T0)
    assert (again.inserted, again.identical, again.conflicts) == (0, 1, [])
    different = services.bars_store(
        instrument="ES", timeframe="1m", bars=[_bar(close="6000.75")], source="polygon", fetched_at=T0
    )
    assert different.inserted == 0 and len(different.conflicts) == 1
    stored = Bar.objects.get(instrument="ES", timeframe="1m", ts=T0)
    assert (stored.close, stored.source) == (Decimal("6000.25"), "databento")
    conflict = BarConflict.objects.get()
    assert conflict.stored["close"] == "6000.250000000" and conflict.offered["close"] == "6000.750000000"
    assert (conflict.stored_source, conflict.offered_source) == ("databento", "polygon")


def test_the_latest_bars_before_t_come_oldest_first() -> None:
    bars = [_bar(datetime(2025, 12, 16, 16, m, tzinfo=UTC)) for m in range(5)]
    services.bars_store(instrument="ES", timeframe="1m", bars=bars, source="csv", fetched_at=T0)
    got = selectors.bars_between(
        instrument="ES", timeframe="1m", start=bars[1].ts, stop=datetime(2025, 12, 16, 16, 4, tzinfo=UTC)
    )
    assert [b.ts.minute for b in got] == [1, 2, 3]
    assert selectors.latest_bar(instrument="ES", timeframe="1m", before=bars[3].ts).ts == bars[2].ts


def test_coverage_stretches_merge_when_they_touch_or_overlap() -> None:
    a, b, c, d = (epoch(ct(2025, 12, 16, 10, m)) for m in (0, 10, 20, 30))
    services.coverage_add(instrument="ES", timeframe="1m", start=a, stop=b, source="databento")
    services.coverage_add(instrument="ES", timeframe="1m", start=c, stop=d, source="databento")
    assert BarCoverage.objects.count() == 2
    services.coverage_add(instrument="ES", timeframe="1m", start=b, stop=c, source="databento")
    assert BarCoverage.objects.count() == 1
    assert selectors.coverage_between(instrument="ES", timeframe="1m", start=a, stop=d) == [(a, d)]
