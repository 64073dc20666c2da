"""The historical-data service through the real provider clients, against the Databento and
Polygon/Massive stub servers: bars arrive metered and stored, a lagging provider is DATA_STALE
(never "no trades"), a provider down is DATA_UNAVAILABLE, and the store answers the next tick."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from apps.market import services
from apps.market.exceptions import DataStale, DataUnavailable
from apps.market.models import Bar, BarCoverage, BarFetch
from apps.telemetry.models import IntegrationUsageEvent
from tests.market.helpers import ct

pytestmark = pytest.mark.django_db

END = ct(2025, 12, 16, 10, 0)  # a Tuesday, 10:00 CT: the market is open


def _bars(provider: str, **kw: Any) -> list[Any]:
    params = {"end": END, "count": 30, "provider": provider, "bot_id": 7} | kw
    return services.bars(params.pop("instrument", "MES"), params.pop("timeframe", "1m"), **params)


@pytest.mark.parametrize("provider", ["databento", "polygon"])
def test_bars_come_from_the_provider_once_metered_then_from_the_store(provider_stub: Any, provider: str) -> None:
    provider_stub(provider)
    bars = _bars(provider)
    assert len(bars) == 30 and bars[-1].ts == END.astimezone(bars[-1].ts.tzinfo) - timedelta(minutes=1)
    assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
    calls = IntegrationUsageEvent.objects.filter(provider=provider, bot_id=7)
    assert calls.count() >= 1 and all(e.status == "ok" for e in calls)
    before = calls.count()
    assert _bars(provider) == bars  # the next tick on the same bar: the store, no provider call
    assert IntegrationUsageEvent.objects.filter(provider=provider).count() == before


def test_databento_and_massive_stubs_agree_on_the_same_minutes(provider_stub: Any) -> None:
    provider_stub("databento")
    databento = _bars("databento")
    for model in (Bar, BarCoverage, BarFetch):
        model.objects.all().delete()
    provider_stub("polygon")
    assert [(b.ts, b.close) for b in _bars("polygon")] == [(b.ts, b.close) for b in databento]


def test_a_provider_whose_data_lags_is_stale_not_no_trades(provider_stub: Any) -> None:
    stub = provider_stub("databento")
    stub.mode, stub.stale_lag = "stale", timedelta(minutes=10)  # the newest 10 minutes are not there yet
    with pytest.raises(DataStale) as raised:
        _bars("databento", now=END + timedelta(seconds=5))  # a live tick at END
    assert raised.value.error_code == "DATA_STALE"
    # The missing stretch was not recorded as settled: once the provider catches up it is served.
    stub.mode = "ok"
    assert len(_bars("databento", now=END + timedelta(seconds=30))) == 30  # past the re-ask window


@pytest.mark.parametrize("mode", ["bad_key", "timeout", "malformed", "partial", "unknown_symbol"])
def test_a_failing_provider_is_data_unavailable_and_nothing_is_stored(provider_stub: Any, mode: str) -> None:
    stub = provider_stub("databento")
    stub.mode = mode
    with pytest.raises(DataUnavailable) as raised:
        _bars("databento")
    assert raised.value.error_code == "DATA_UNAVAILABLE"
    assert not Bar.objects.exists()
    assert IntegrationUsageEvent.objects.filter(provider="databento", status="error").exists()


def test_without_keys_bars_are_unavailable_and_name_the_variable(provider_stub: Any) -> None:
    provider_stub("databento", configure=False)
    with pytest.raises(DataUnavailable) as raised:
        _bars("databento")
    assert "DATABENTO_API_KEY" in raised.value.extra["missing_env_vars"]
