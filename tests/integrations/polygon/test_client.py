"""The Polygon (Massive) client against its loopback stub: what it sends, what it accepts, and how
each documented failure is classified (PROVIDERS.md §4)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from apps.integrations.errors import IntegrationError
from apps.integrations.polygon.client import PolygonClient, PolygonRequestInvalid, _classify
from apps.telemetry.models import IntegrationUsageEvent
from tests.stubs.polygon import FUTURES_PAGES, GOOD_KEY, PolygonStub

pytestmark = pytest.mark.django_db

GTE = datetime(2025, 10, 9, 8, 53, 20, tzinfo=UTC)  # 1760000000 s
LT = datetime(2025, 10, 9, 9, 0, tzinfo=UTC)


def _client() -> PolygonClient:
    return PolygonClient.for_bot()


def _events(operation: str | None = None) -> list[IntegrationUsageEvent]:
    qs = IntegrationUsageEvent.objects.filter(provider="polygon").order_by("created_at", "id")
    return list(qs.filter(operation=operation) if operation else qs)


def test_verify_sends_the_key_as_a_bearer_header_and_never_in_the_url(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    assert _client().verify() == {"market": "open"}
    request = stub.last()
    assert (request.method, request.path) == ("GET", "/v1/marketstatus/now")
    assert request.header("authorization") == f"Bearer {GOOD_KEY}"
    assert "apiKey" not in request.query and GOOD_KEY not in request.path


def test_verify_reports_what_the_market_status_says(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    stub.market = "extended-hours"
    assert _client().verify() == {"market": "extended-hours"}


def _fixed_pages(stub: PolygonStub) -> PolygonStub:
    stub.futures_pages = [list(page) for page in FUTURES_PAGES]  # instead of the synthetic bars
    return stub


def test_futures_bars_are_parsed_with_exact_values_across_pages(provider_stub: Any) -> None:
    stub = _fixed_pages(provider_stub("polygon"))
    bars = _client().futures_aggregates("ESZ5", "1min", GTE, LT, limit=2)
    assert bars == [
        {
            "open": 6021.25,
            "high": 6023.5,
            "low": 6020.75,
            "close": 6022.0,
            "volume": 1843,
            "window_start": 1760000000000000000,
            "ticker": "ESZ5",
            "transactions": 512,
            "session_end_date": "2025-10-09",
            "dollar_volume": 11098741.5,
        },
        {
            "open": 6022.0,
            "high": 6022.75,
            "low": 6019.5,
            "close": 6020.25,
            "volume": 2210,
            "window_start": 1760000060000000000,
            "ticker": "ESZ5",
            "transactions": 640,
            "session_end_date": "2025-10-09",
            "dollar_volume": 13306114.0,
        },
        {
            # page 2 has no dollar_volume: it is absent, not filled in
            "open": 6020.25,
            "high": 6021.0,
            "low": 6018.0,
            "close": 6018.5,
            "volume": 1977,
            "window_start": 1760000120000000000,
            "ticker": "ESZ5",
            "transactions": 588,
            "session_end_date": "2025-10-09",
            "settlement_price": 6019.75,
        },
    ]
    first, second = stub.requests
    assert first.path == second.path == "/futures/v1/aggs/ESZ5"
    assert first.query == {
        "resolution": ["1min"],
        "limit": ["2"],
        "window_start.gte": ["1760000000000000000"],
        "window_start.lt": ["1760000400000000000"],
    }
    # The next page is asked with next_url's cursor alone, and still with the key.
    assert second.query == {"cursor": ["1"]}
    assert second.header("authorization") == f"Bearer {GOOD_KEY}"
    events = _events("futures.aggs")
    assert [(e.status, e.http_status) for e in events] == [("ok", 200), ("ok", 200)]


def test_window_bounds_may_be_dates_or_nanoseconds(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    stub.futures_pages = [FUTURES_PAGES[0]]
    _client().futures_aggregates("GCJ5", "1hour", "2025-10-09", 1760000400000000000)
    assert stub.last().query["window_start.gte"] == ["2025-10-09"]
    assert stub.last().query["window_start.lt"] == ["1760000400000000000"]
    assert stub.last().query["limit"] == ["1000"]


def test_next_url_naming_another_host_is_followed_on_the_configured_base_only(provider_stub: Any) -> None:
    elsewhere = provider_stub("polygon", configure=False)
    stub = _fixed_pages(provider_stub("polygon"))  # started last: POLYGON_BASE_URL points here
    stub.next_url_base = elsewhere.url
    bars = _client().futures_aggregates("ESZ5", "1min", GTE, LT)
    assert len(bars) == 3
    assert len(stub.requests) == 2
    assert elsewhere.requests == []  # the key never went to the host next_url named


def test_an_empty_window_is_no_bars(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    stub.futures_pages = [[]]  # the stub then omits `results`, as the API does
    assert _client().futures_aggregates("ESZ5", "1min", GTE, LT) == []


@pytest.mark.parametrize("field", ["open", "high", "low", "close", "volume", "window_start"])
def test_a_bar_missing_a_field_is_a_bad_response_not_a_filled_in_value(provider_stub: Any, field: str) -> None:
    stub = provider_stub("polygon")
    broken = dict(FUTURES_PAGES[0][1])
    del broken[field]
    stub.futures_pages = [[FUTURES_PAGES[0][0], broken]]
    with pytest.raises(IntegrationError) as caught:
        _client().futures_aggregates("ESZ5", "1min", GTE, LT)
    assert caught.value.error_code == "INTEGRATION_BAD_RESPONSE"
    assert f"`{field}`" in caught.value.message
    [event] = _events("futures.aggs")
    assert (event.status, event.error_code) == ("error", "INTEGRATION_BAD_RESPONSE")


@pytest.mark.parametrize(
    "change",
    [{"close": None}, {"close": "6022.0"}, {"volume": True}, {"window_start": 1760000000.5}, {"low": 6030.0}],
    ids=["null-close", "string-close", "bool-volume", "float-window-start", "low-above-high"],
)
def test_a_bar_with_a_wrong_value_type_is_a_bad_response(provider_stub: Any, change: dict[str, Any]) -> None:
    stub = provider_stub("polygon")
    stub.futures_pages = [[{**FUTURES_PAGES[0][0], **change}]]
    with pytest.raises(IntegrationError) as caught:
        _client().futures_aggregates("ESZ5", "1min", GTE, LT)
    assert caught.value.error_code == "INTEGRATION_BAD_RESPONSE"


def test_a_malformed_second_page_fails_the_whole_call(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    broken = dict(FUTURES_PAGES[1][0])
    del broken["close"]
    stub.futures_pages = [FUTURES_PAGES[0], [broken]]
    with pytest.raises(IntegrationError) as caught:
        _client().futures_aggregates("ESZ5", "1min", GTE, LT)
    assert caught.value.error_code == "INTEGRATION_BAD_RESPONSE"
    assert [(e.status, e.error_code) for e in _events("futures.aggs")] == [
        ("ok", ""),
        ("error", "INTEGRATION_BAD_RESPONSE"),
    ]


def test_futures_not_in_the_plan_is_permission_denied_with_a_plan_fix(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    stub.futures_entitled = False
    assert _client().verify() == {"market": "open"}  # the key itself is fine
    with pytest.raises(IntegrationError) as caught:
        _client().futures_aggregates("ESZ5", "1min", GTE, LT)
    error = caught.value
    assert (error.error_code, error.http_status, error.permanent) == ("INTEGRATION_PERMISSION_DENIED", 403, True)
    assert "not entitled" in error.message
    assert "Futures plan" in error.suggested_fix
    [event] = _events("futures.aggs")
    assert (event.error_code, event.http_status) == ("INTEGRATION_PERMISSION_DENIED", 403)


def test_a_rate_limited_page_is_transient(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    stub.mode = "rate_limit"
    with pytest.raises(IntegrationError) as caught:
        _client().futures_aggregates("ESZ5", "1min", GTE, LT)
    assert (caught.value.error_code, caught.value.permanent) == ("INTEGRATION_RATE_LIMITED", False)
    assert "maximum requests per minute" in caught.value.message


def test_a_400_saying_no_key_arrived_is_an_auth_failure() -> None:
    body = {"status": "ERROR", "request_id": "x", "error": "API Key was not provided"}
    error = _classify(SimpleNamespace(status_code=400), body)
    assert error is not None and error.error_code == "INTEGRATION_AUTH_FAILED"
    other = {"status": "ERROR", "request_id": "x", "error": "resolution value is not allowed"}
    assert _classify(SimpleNamespace(status_code=400), other) is None  # stays a generic rejection


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ticker": "../v1/marketstatus/now"},
        {"ticker": ""},
        {"resolution": " "},
        {"limit": 0},
        {"limit": 50_001},
        {"window_start_gte": datetime(2025, 10, 9)},  # noqa: DTZ001 - naive on purpose
        {"window_start_gte": 1760000000000},  # milliseconds, not nanoseconds
        {"window_start_lt": "09/10/2025"},
    ],
    ids=["path-ticker", "empty-ticker", "blank-resolution", "limit-0", "limit-too-big", "naive", "ms", "bad-date"],
)
def test_bad_request_parameters_are_refused_without_calling(provider_stub: Any, kwargs: dict[str, Any]) -> None:
    stub = provider_stub("polygon")
    args = {"ticker": "ESZ5", "resolution": "1min", "window_start_gte": GTE, "window_start_lt": LT, **kwargs}
    with pytest.raises(PolygonRequestInvalid) as caught:
        _client().futures_aggregates(**args)
    assert caught.value.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert stub.requests == []
    assert _events() == []


def test_a_next_url_that_repeats_is_refused_instead_of_looping(provider_stub: Any, monkeypatch: Any) -> None:
    class LoopingStub(PolygonStub):
        def handle(self, request: Any) -> Any:
            response = super().handle(request)
            response.body["next_url"] = f"{self.url}{request.path}?cursor=1"
            return response

    provider_stub("polygon")  # the good key
    stub = _fixed_pages(LoopingStub().start())
    try:
        monkeypatch.setenv("POLYGON_BASE_URL", stub.url)
        with pytest.raises(IntegrationError) as caught:
            _client().futures_aggregates("ESZ5", "1min", GTE, LT)
    finally:
        stub.stop()
    assert caught.value.error_code == "INTEGRATION_BAD_RESPONSE"
    assert [r.query for r in stub.requests][1:] == [{"cursor": ["1"]}]  # page 1 pointed at itself: stop


def test_stock_aggregates_map_the_short_keys_exactly(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    bars = _client().aggregates("AAPL", 1, "day", "2022-04-26", "2022-04-27")
    assert bars == [
        {
            "open": 162.25,
            "high": 162.34,
            "low": 156.72,
            "close": 156.8,
            "volume": 95595226.0,
            "timestamp_ms": 1651003200000,
            "vwap": 158.6074,
            "transactions": 7,
        }
    ]
    request = stub.last()
    assert request.path == "/v2/aggs/ticker/AAPL/range/1/day/2022-04-26/2022-04-27"
    assert request.query == {"adjusted": ["true"], "sort": ["asc"], "limit": ["5000"]}
    assert [e.operation for e in _events()] == ["aggs"]


def test_stock_aggregates_missing_close_is_a_bad_response(provider_stub: Any) -> None:
    stub = provider_stub("polygon")
    stub.mode = "malformed"
    with pytest.raises(IntegrationError) as caught:
        _client().aggregates("AAPL", 1, "day", "2022-04-26", "2022-04-27")
    assert caught.value.error_code == "INTEGRATION_BAD_RESPONSE" and "`c`" in caught.value.message


def test_the_api_key_never_appears_in_usage_events_or_errors(provider_stub: Any, monkeypatch: Any) -> None:
    stub = provider_stub("polygon")
    errors: list[IntegrationError] = []
    _client().verify()
    for mode in ("not_authorized", "rate_limit", "malformed"):
        stub.mode = mode
        with pytest.raises(IntegrationError) as caught:
            _client().futures_aggregates("ESZ5", "1min", GTE, LT)
        errors.append(caught.value)
    wrong = "pg-WrongKey-9876543210zyxwvutsrqponm"
    monkeypatch.setenv("POLYGON_API_KEY", wrong)
    stub.mode = "ok"
    with pytest.raises(IntegrationError) as caught:
        _client().verify()
    errors.append(caught.value)
    assert caught.value.error_code == "INTEGRATION_AUTH_FAILED"
    assert stub.last().header("authorization") == f"Bearer {wrong}"  # it was sent, to the provider only

    rows = list(IntegrationUsageEvent.objects.filter(provider="polygon").values())
    assert len(rows) == 5
    texts = [str(rows)] + [f"{e.message} {e.suggested_fix} {e.extra}" for e in errors]
    for secret in (GOOD_KEY, wrong):
        assert not any(secret in text for text in texts)
