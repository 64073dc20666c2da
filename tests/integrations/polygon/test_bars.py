"""PolygonClient.fetch_bars against the loopback stub (PROVIDERS.md §4, futures aggregates; the
contract in apps/integrations/bars.py): resolution 1min/1hour, window_start in Unix ns as a
half-open window, exact Decimal prices, UTC times, sorted unique bars, a usage event per page,
each failure classified with a fix, malformed answers rejected whole, no secret in any error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.integrations.bars import ProviderBar
from apps.integrations.databento.client import DatabentoClient
from apps.integrations.polygon.client import PolygonClient, PolygonRequestInvalid
from apps.telemetry.models import IntegrationUsageEvent
from tests.integrations.helpers import failure, usage_events
from tests.stubs.base import StubResponse
from tests.stubs.polygon import FUTURES_PAGES, GOOD_KEY, PolygonStub

pytestmark = pytest.mark.django_db

# Monday 2025-03-03 14:30 UTC is 08:30 CST: the regular session is open.
START = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
END = START + timedelta(minutes=5)
# The fixed pages of tests/stubs/polygon.py (ESZ5 1m bars at 1760000000 s + 0, 60, 120 s), moved 20 s
# earlier onto minute boundaries: 2025-10-09 08:53, 08:54, 08:55 UTC.
FIXED_START = datetime(2025, 10, 9, 8, 53, tzinfo=UTC)
FIXED_END = FIXED_START + timedelta(minutes=5)
PAGES = [[{**bar, "window_start": bar["window_start"] - 20 * 10**9} for bar in page] for page in FUTURES_PAGES]
OP = "futures.aggs"


@pytest.fixture
def stub(provider_stub: Any) -> PolygonStub:
    return provider_stub("polygon")


def fetch(symbol: str = "MESH5", timeframe: str = "1m", start: datetime = START, end: datetime = END) -> Any:
    return PolygonClient.for_bot().fetch_bars(symbol=symbol, timeframe=timeframe, start=start, end=end)


def fixed(stub: PolygonStub, *pages: list[dict[str, Any]]) -> None:
    stub.futures_pages = [list(page) for page in (pages or PAGES)]


def _ns(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9


def test_the_request_asks_for_the_half_open_window_in_ns_at_the_resolution(stub: PolygonStub) -> None:
    fetch()
    fetch("MNQH5", "1h", START.replace(minute=0), START.replace(minute=0) + timedelta(hours=2))
    first, second = stub.requests
    assert (first.method, first.path) == ("GET", "/futures/v1/aggs/MESH5")
    assert first.query == {
        "resolution": ["1min"],
        "limit": ["50000"],
        "window_start.gte": [str(_ns(START))],
        "window_start.lt": [str(_ns(END))],
    }
    assert first.header("authorization") == f"Bearer {GOOD_KEY}"
    assert (second.path, second.query["resolution"]) == ("/futures/v1/aggs/MNQH5", ["1hour"])


def test_floats_become_the_exact_decimals_they_were_written_as(stub: PolygonStub) -> None:
    fixed(stub)
    bars = fetch("ESZ5", start=FIXED_START, end=FIXED_END)
    assert bars == [
        ProviderBar(datetime(2025, 10, 9, 8, 53, tzinfo=UTC), Decimal("6021.25"), Decimal("6023.5"),
                    Decimal("6020.75"), Decimal("6022"), 1843),
        ProviderBar(datetime(2025, 10, 9, 8, 54, tzinfo=UTC), Decimal("6022"), Decimal("6022.75"),
                    Decimal("6019.5"), Decimal("6020.25"), 2210),
        ProviderBar(datetime(2025, 10, 9, 8, 55, tzinfo=UTC), Decimal("6020.25"), Decimal("6021"),
                    Decimal("6018"), Decimal("6018.5"), 1977),
    ]  # fmt: skip
    assert all(bar.ts.tzinfo is UTC for bar in bars)
    # Two pages, two metered calls.
    assert [(e.operation, e.status) for e in usage_events("polygon")] == [(OP, "ok"), (OP, "ok")]


def test_a_price_off_binary_is_not_rounded(stub: PolygonStub) -> None:
    bar = {**PAGES[0][0], "open": 6021.3, "low": 6020.1, "volume": 1843.0}
    fixed(stub, [bar])
    [got] = fetch("ESZ5", start=FIXED_START, end=FIXED_END)
    assert (got.open, got.low, got.volume) == (Decimal("6021.3"), Decimal("6020.1"), 1843)


def test_bars_are_sorted_whatever_the_answer_order(stub: PolygonStub) -> None:
    fixed(stub, [PAGES[1][0], PAGES[0][1], PAGES[0][0]])
    bars = fetch("ESZ5", start=FIXED_START, end=FIXED_END)
    assert [bar.ts.minute for bar in bars] == [53, 54, 55]


def test_synthetic_bars_match_databento_for_the_same_root_and_minutes(provider_stub: Any) -> None:
    provider_stub("databento")
    provider_stub("polygon")
    for timeframe, end in (("1m", END), ("1h", START + timedelta(hours=3))):
        start = START if timeframe == "1m" else START.replace(minute=0)
        polygon = fetch("MESH5", timeframe, start, end)
        databento = DatabentoClient.for_bot().fetch_bars(symbol="MES.c.0", timeframe=timeframe, start=start, end=end)
        assert polygon and polygon == databento


def test_the_synthetic_window_is_half_open_and_only_while_globex_trades(stub: PolygonStub) -> None:
    assert [bar.ts for bar in fetch()] == [START + timedelta(minutes=i) for i in range(5)]
    saturday = datetime(2025, 3, 8, 12, tzinfo=UTC)
    assert fetch(start=saturday, end=saturday + timedelta(hours=6)) == []
    halt = datetime(2025, 3, 4, 22, tzinfo=UTC)  # 16:00-17:00 CST
    assert fetch("MESH5", "1h", halt, halt + timedelta(hours=1)) == []


def test_empty_and_stale_modes(stub: PolygonStub) -> None:
    stub.mode = "empty"
    assert fetch() == []
    stub.mode = "stale"
    end = START + timedelta(hours=2)
    assert fetch(start=START, end=end)[-1].ts == end - timedelta(minutes=31)


def test_many_pages_are_followed_and_each_is_metered(stub: PolygonStub, monkeypatch: Any) -> None:
    monkeypatch.setattr("apps.integrations.polygon.client.FUTURES_MAX_LIMIT", 2)
    bars = fetch()
    assert len(bars) == 5
    assert len(stub.requests) == 3 and [e.status for e in usage_events("polygon")] == ["ok"] * 3


@pytest.mark.parametrize(
    ("mode", "code", "http_status", "in_fix"),
    [
        ("bad_key", "INTEGRATION_AUTH_FAILED", 401, "POLYGON_API_KEY"),
        ("rate_limit", "INTEGRATION_RATE_LIMITED", 429, "retry"),
        ("timeout", "INTEGRATION_TIMEOUT", None, "retry"),
        ("malformed", "INTEGRATION_BAD_RESPONSE", 200, "POLYGON_BASE_URL"),
        ("not_authorized", "INTEGRATION_PERMISSION_DENIED", 403, "Futures plan"),
    ],
)
def test_each_failure_is_classified_with_a_fix_and_metered(
    stub: PolygonStub, mode: str, code: str, http_status: int | None, in_fix: str
) -> None:
    stub.mode = mode
    error = failure(fetch)
    assert (error.error_code, error.http_status) == (code, http_status)
    assert in_fix in error.suggested_fix
    [event] = usage_events("polygon")
    assert (event.operation, event.status, event.error_code) == (OP, "error", code)


def test_a_resolution_the_api_refuses_names_the_ticker(stub: PolygonStub) -> None:
    stub.handle = lambda request: StubResponse(
        400, {"status": "ERROR", "request_id": "x", "error": "resolution value is not allowed"}
    )
    error = failure(fetch)
    assert (error.error_code, error.http_status) == ("INTEGRATION_REQUEST_REJECTED", 400)
    assert "MESH5" in error.message and "resolution value is not allowed" in error.message
    assert "MESH5" in error.suggested_fix


def test_a_404_for_the_ticker_is_data_unavailable_naming_it(stub: PolygonStub) -> None:
    stub.handle = lambda request: StubResponse(404, {"status": "NOT_FOUND", "request_id": "x", "message": "Not found"})
    error = failure(fetch)
    assert (error.error_code, error.extra["symbol"]) == ("DATA_UNAVAILABLE", "MESH5")
    assert "MESH5" in error.message


BAD_BARS: dict[str, dict[str, Any]] = {
    "no-close": {"close": None},
    "string-price": {"open": "6021.25"},
    "zero-price": {"low": 0.0},
    "negative-price": {"low": -1.0},
    "high-below-low": {"high": 6020.0},
    "high-below-close": {"high": 6021.75},
    "low-above-open": {"low": 6021.5},
    "fractional-volume": {"volume": 10.5},
    "before-start": {"window_start": _ns(FIXED_START) - 60 * 10**9},
    "at-end": {"window_start": _ns(FIXED_END)},
    "not-on-a-minute": {"window_start": _ns(FIXED_START) + 10**9},
    "ms-not-ns": {"window_start": _ns(FIXED_START) // 10**6},
}


@pytest.mark.parametrize("change", list(BAD_BARS.values()), ids=list(BAD_BARS))
def test_one_bad_bar_rejects_the_whole_answer(stub: PolygonStub, change: dict[str, Any]) -> None:
    good = {**PAGES[0][0], "window_start": _ns(FIXED_START)}
    bad = {**PAGES[0][1], "window_start": _ns(FIXED_START) + 60 * 10**9, "open": 6021.25, "close": 6022.0}
    bad.update(change)
    fixed(stub, [good, bad])
    error = failure(lambda: fetch("ESZ5", start=FIXED_START, end=FIXED_END))
    assert error.error_code == "INTEGRATION_BAD_RESPONSE"
    [event] = usage_events("polygon")
    assert (event.status, event.error_code) == ("error", "INTEGRATION_BAD_RESPONSE")


def test_a_ts_repeated_on_a_later_page_rejects_the_answer(stub: PolygonStub) -> None:
    fixed(stub, PAGES[0], [PAGES[0][0]])
    error = failure(lambda: fetch("ESZ5", start=FIXED_START, end=FIXED_END))
    assert error.error_code == "INTEGRATION_BAD_RESPONSE" and "repeats" in error.message
    assert [(e.status, e.error_code) for e in usage_events("polygon")] == [
        ("ok", ""),
        ("error", "INTEGRATION_BAD_RESPONSE"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"symbol": "../v1/marketstatus/now"},
        {"symbol": ""},
        {"timeframe": "5m"},
        {"start": datetime(2025, 3, 3, 14, 30)},  # noqa: DTZ001 - naive on purpose
        {"end": START},
    ],
    ids=["path", "empty", "5m", "naive", "empty-range"],
)
def test_a_bad_request_is_refused_without_calling(stub: PolygonStub, kwargs: dict[str, Any]) -> None:
    args = {"symbol": "MESH5", "timeframe": "1m", "start": START, "end": END, **kwargs}
    with pytest.raises(PolygonRequestInvalid):
        PolygonClient.for_bot().fetch_bars(**args)
    assert stub.requests == [] and usage_events("polygon") == []


def test_the_api_key_appears_in_no_error_and_no_usage_event(stub: PolygonStub) -> None:
    errors = []
    for mode in ("bad_key", "rate_limit", "malformed", "not_authorized"):
        stub.mode = mode
        errors.append(failure(fetch))
    rows = list(IntegrationUsageEvent.objects.filter(provider="polygon").values())
    assert len(rows) == 4
    texts = [str(rows)] + [f"{e.message} {e.suggested_fix} {e.extra}" for e in errors]
    assert not any(GOOD_KEY in text for text in texts)
