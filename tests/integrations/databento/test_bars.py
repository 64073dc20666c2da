"""DatabentoClient.fetch_bars against the loopback stub (PROVIDERS.md §3, the contract in
apps/integrations/bars.py): the documented request, exact Decimal prices and UTC times, the
half-open range, a usage event for every call, each failure classified with a SPEC code and a fix,
malformed answers rejected whole, and no secret in any error."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.integrations.bars import ProviderBar
from apps.integrations.databento.client import DatabentoClient, DatabentoRequestInvalid
from apps.telemetry.models import IntegrationUsageEvent
from tests.integrations.helpers import failure, usage_events
from tests.stubs.base import StubResponse
from tests.stubs.databento import GOOD_KEY, DatabentoStub, synthetic_bars

pytestmark = pytest.mark.django_db

# Monday 2025-03-03 14:30 UTC is 08:30 CST: the regular session is open.
START = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
END = START + timedelta(minutes=5)
NS = 10**9
OP = "timeseries.get_range"


@pytest.fixture
def stub(provider_stub: Any) -> DatabentoStub:
    return provider_stub("databento")


def fetch(symbol: str = "MES.c.0", timeframe: str = "1m", start: datetime = START, end: datetime = END) -> Any:
    return DatabentoClient.for_bot().fetch_bars(symbol=symbol, timeframe=timeframe, start=start, end=end)


def ns(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * NS


def record(ts: datetime, o: str, h: str, lo: str, c: str, v: str = "10", rtype: int = 33) -> dict[str, Any]:
    return {
        "hd": {"ts_event": str(ns(ts)), "rtype": rtype, "publisher_id": 1, "instrument_id": 42140878},
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "volume": v,
    }


GOOD = record(START, "5901250000000", "5902000000000", "5900750000000", "5901500000000", "1843")


# -- the request ---------------------------------------------------------------------------------
def test_the_request_is_the_documented_form_post_with_basic_auth(stub: DatabentoStub) -> None:
    fetch()
    request = stub.last()
    assert (request.method, request.path) == ("POST", "/v0/timeseries.get_range")
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert request.header("authorization") == "Basic " + base64.b64encode(f"{GOOD_KEY}:".encode()).decode()
    assert stub.get_range_requests() == [
        {
            "dataset": "GLBX.MDP3",
            "symbols": "MES.c.0",
            "schema": "ohlcv-1m",
            "stype_in": "continuous",
            "start": "2025-03-03T14:30:00Z",
            "end": "2025-03-03T14:35:00Z",
            "encoding": "json",
            "compression": "none",
            "pretty_px": "false",
            "pretty_ts": "false",
            "map_symbols": "false",
        }
    ]
    assert request.query == {}  # nothing, least of all the key, in the URL


def test_a_contract_is_a_raw_symbol_and_1h_is_ohlcv_1h_in_the_configured_dataset(
    stub: DatabentoStub, monkeypatch: Any
) -> None:
    monkeypatch.setenv("DATABENTO_DATASET", "XNAS.ITCH")
    fetch("MNQH6", "1h", START.replace(minute=0), START.replace(minute=0) + timedelta(hours=3))
    sent = stub.get_range_requests()[-1]
    assert (sent["symbols"], sent["stype_in"], sent["schema"], sent["dataset"]) == (
        "MNQH6",
        "raw_symbol",
        "ohlcv-1h",
        "XNAS.ITCH",
    )


def test_an_aware_non_utc_window_is_sent_in_utc_with_microseconds_kept(stub: DatabentoStub) -> None:
    from zoneinfo import ZoneInfo

    start = datetime(2025, 3, 3, 8, 30, 0, 250000, tzinfo=ZoneInfo("America/Chicago"))
    fetch(start=start, end=start + timedelta(minutes=2))
    sent = stub.get_range_requests()[-1]
    assert (sent["start"], sent["end"]) == ("2025-03-03T14:30:00.250000Z", "2025-03-03T14:32:00.250000Z")


# -- the bars ------------------------------------------------------------------------------------
def test_fixed_point_prices_and_ns_times_are_converted_exactly(stub: DatabentoStub) -> None:
    stub.records = [
        GOOD,
        record(START + timedelta(minutes=1), "1234567890123", "1234567890124", "1234000000000", "1234500000000", "1"),
    ]
    bars = fetch()
    assert bars == [
        ProviderBar(
            ts=datetime(2025, 3, 3, 14, 30, tzinfo=UTC),
            open=Decimal("5901.25"),
            high=Decimal("5902"),
            low=Decimal("5900.75"),
            close=Decimal("5901.5"),
            volume=1843,
        ),
        ProviderBar(
            ts=datetime(2025, 3, 3, 14, 31, tzinfo=UTC),
            open=Decimal("1234.567890123"),  # all nine decimals, no float on the way
            high=Decimal("1234.567890124"),
            low=Decimal("1234"),
            close=Decimal("1234.5"),
            volume=1,
        ),
    ]
    assert all(bar.ts.tzinfo is UTC for bar in bars)
    assert str(bars[0].high) == "5902" and str(bars[0].open) == "5901.25"


def test_bars_are_sorted_by_time_whatever_the_answer_order(stub: DatabentoStub) -> None:
    later = record(START + timedelta(minutes=2), "5901500000000", "5901500000000", "5901000000000", "5901000000000")
    stub.records = [later, GOOD]
    assert [bar.ts.minute for bar in fetch()] == [30, 32]


def test_the_synthetic_session_gives_one_bar_per_trading_minute_in_the_half_open_range(stub: DatabentoStub) -> None:
    bars = fetch()
    assert [bar.ts for bar in bars] == [START + timedelta(minutes=i) for i in range(5)]  # END itself excluded
    expected = synthetic_bars("MES.c.0", 60, START, END)
    assert [(b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (Decimal(e.open) / NS, Decimal(e.high) / NS, Decimal(e.low) / NS, Decimal(e.close) / NS, e.volume)
        for e in expected
    ]
    for bar in bars:
        assert Decimal(5000) < bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.high < Decimal(6000)
        assert all(price % Decimal("0.25") == 0 for price in (bar.open, bar.high, bar.low, bar.close))
    assert fetch() == bars  # the same request, the same bars


def test_hour_bars_are_the_aggregate_of_their_minutes(stub: DatabentoStub) -> None:
    hour = START.replace(minute=0)
    [h] = fetch("ESM5", "1h", hour, hour + timedelta(hours=1))
    minutes = fetch("ESM5", "1m", hour, hour + timedelta(hours=1))
    assert len(minutes) == 60
    assert (h.ts, h.open, h.close) == (hour, minutes[0].open, minutes[-1].close)
    assert (h.high, h.low) == (max(m.high for m in minutes), min(m.low for m in minutes))
    assert h.volume == sum(m.volume for m in minutes)


@pytest.mark.parametrize(
    ("start", "end", "count"),
    [
        (datetime(2025, 3, 8, 12, tzinfo=UTC), datetime(2025, 3, 8, 18, tzinfo=UTC), 0),  # Saturday
        (datetime(2025, 3, 4, 22, tzinfo=UTC), datetime(2025, 3, 4, 23, tzinfo=UTC), 0),  # 16:00-17:00 CST halt
        (datetime(2025, 3, 7, 21, 58, tzinfo=UTC), datetime(2025, 3, 7, 22, 3, tzinfo=UTC), 2),  # Friday close
        (datetime(2025, 3, 9, 21, 58, tzinfo=UTC), datetime(2025, 3, 9, 22, 3, tzinfo=UTC), 3),  # Sunday 17:00 CDT
    ],
    ids=["saturday", "daily-halt", "friday-close", "sunday-open"],
)
def test_bars_exist_only_while_globex_trades(stub: DatabentoStub, start: datetime, end: datetime, count: int) -> None:
    assert len(fetch(start=start, end=end)) == count
    [event] = usage_events("databento")
    assert (event.operation, event.status) == (OP, "ok")


def test_an_empty_answer_is_no_bars_and_still_metered(stub: DatabentoStub) -> None:
    stub.mode = "empty"
    assert fetch() == []
    [event] = usage_events("databento")
    assert (event.operation, event.status, event.http_status) == (OP, "ok", 200)


def test_stale_mode_serves_nothing_newer_than_the_lag(stub: DatabentoStub) -> None:
    stub.mode = "stale"
    end = START + timedelta(hours=2)
    bars = fetch(start=START, end=end)
    assert bars and bars[-1].ts == end - timedelta(minutes=31)


def test_every_call_writes_one_usage_event(stub: DatabentoStub) -> None:
    fetch()
    fetch("MESM5", "1h", START.replace(minute=0), START.replace(minute=0) + timedelta(hours=1))
    events = usage_events("databento")
    assert [(e.operation, e.status, e.http_status) for e in events] == [(OP, "ok", 200), (OP, "ok", 200)]
    assert all(e.latency_ms is not None and e.trace_id for e in events)


# -- failures ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "code", "http_status", "permanent", "in_fix"),
    [
        ("bad_key", "INTEGRATION_AUTH_FAILED", 401, True, "DATABENTO_API_KEY"),
        ("rate_limit", "INTEGRATION_RATE_LIMITED", 429, False, "retry"),
        ("timeout", "INTEGRATION_TIMEOUT", None, False, "retry"),
        ("malformed", "INTEGRATION_BAD_RESPONSE", 200, True, "DATABENTO_BASE_URL"),
        ("partial", "DATA_UNAVAILABLE", 206, True, "DATABENTO_DATASET"),
        ("unknown_symbol", "DATA_UNAVAILABLE", 422, True, "DATABENTO_DATASET"),
        ("lagging", "DATA_UNAVAILABLE", 422, True, "2025-03-03T14:00:00+00:00"),
    ],
)
def test_each_failure_is_classified_with_a_fix_and_metered(
    stub: DatabentoStub, mode: str, code: str, http_status: int | None, permanent: bool, in_fix: str
) -> None:
    stub.mode = mode
    stub.available_end = START.replace(minute=0)
    error = failure(fetch)
    assert (error.error_code, error.http_status, error.permanent) == (code, http_status, permanent)
    assert in_fix in error.suggested_fix
    [event] = usage_events("databento")
    assert (event.operation, event.status, event.error_code) == (OP, "error", code)
    if code == "DATA_UNAVAILABLE":
        assert "MES.c.0" in error.message
        assert error.extra["symbol"] == "MES.c.0" and error.extra["dataset"] == "GLBX.MDP3"


def test_rate_limit_carries_retry_after(stub: DatabentoStub) -> None:
    stub.mode = "rate_limit"
    error = failure(fetch)
    assert error.retry_after == 1.0 and error.extra["retry_after_seconds"] == 1.0


def test_a_partial_answer_is_never_a_success_with_fewer_bars(stub: DatabentoStub) -> None:
    stub.mode = "partial"
    error = failure(fetch)
    assert "206" in error.message and "only part" in error.message
    assert error.extra["provider_case"] == "partial_content"


def test_an_unknown_symbol_names_the_symbol_and_the_provider_case(stub: DatabentoStub) -> None:
    error = failure(lambda: fetch("ZZZZ.c.0"))  # a root nobody lists: the real API's 422
    assert error.error_code == "DATA_UNAVAILABLE"
    assert "ZZZZ.c.0" in error.message and "None of the symbols could be resolved" in error.message
    assert error.extra["provider_case"] == "symbology_invalid_request"
    assert "ZZZZ.c.0" in error.suggested_fix


def test_an_end_past_the_available_data_says_how_far_it_goes(stub: DatabentoStub) -> None:
    stub.mode = "lagging"
    stub.available_end = datetime(2025, 3, 3, 14, 32, tzinfo=UTC)
    error = failure(fetch)
    assert error.extra["provider_case"] == "data_end_after_available_end"
    assert error.extra["available_end"] == "2025-03-03T14:32:00+00:00"
    assert fetch(end=stub.available_end)  # an end at the available end is served


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, {"detail": "Invalid symbols: MES.c.0"}, "INTEGRATION_REQUEST_REJECTED"),
        (404, "<html>Not Found</html>", "INTEGRATION_REQUEST_REJECTED"),  # a wrong base URL, not a symbol
        (404, {"detail": {"case": "symbol_not_found", "message": "Symbol does not exist."}}, "DATA_UNAVAILABLE"),
        (
            402,
            {"detail": {"case": "account_insufficient_funds", "message": "Add funds."}},
            "INTEGRATION_REQUEST_REJECTED",
        ),
        (
            403,
            {"detail": {"case": "license_not_found_unauthorized", "message": "No license."}},
            "INTEGRATION_PERMISSION_DENIED",
        ),
        (503, {"detail": "Gateway offline."}, "INTEGRATION_PROVIDER_ERROR"),
    ],
    ids=["400", "404-html", "404-symbol", "402", "403", "503"],
)
def test_other_documented_statuses(stub: DatabentoStub, status: int, body: Any, code: str) -> None:
    stub.handle = lambda request: StubResponse(status, body)
    error = failure(fetch)
    assert (error.error_code, error.http_status) == (code, status)
    if isinstance(body, dict):
        detail = body["detail"]
        said = detail if isinstance(detail, str) else detail["message"]
        assert said in error.message  # Databento's own words reach the operator
    if status == 400:
        assert "MES.c.0" in error.message and "DATABENTO_DATASET" in error.suggested_fix
    [event] = usage_events("databento")
    assert (event.status, event.error_code, event.http_status) == ("error", code, status)


# -- malformed answers are rejected whole ---------------------------------------------------------------
def _without(name: str) -> dict[str, Any]:
    bad = json.loads(json.dumps(GOOD))
    if name == "ts_event":
        del bad["hd"]["ts_event"]
    else:
        del bad[name]
    return bad


def _with(**change: Any) -> dict[str, Any]:
    bad = json.loads(json.dumps(GOOD))
    for name, value in change.items():
        if name in ("ts_event", "rtype"):
            bad["hd"][name] = value
        else:
            bad[name] = value
    return bad


BAD_RECORDS: dict[str, Any] = {
    "no-open": _without("open"),
    "no-high": _without("high"),
    "no-low": _without("low"),
    "no-close": _without("close"),
    "no-volume": _without("volume"),
    "no-header": _without("hd"),
    "no-ts-event": _without("ts_event"),
    "non-numeric-price": _with(close="abc"),
    "float-price": _with(close=5901.5),
    "pretty-price": _with(close="5901.500000000"),
    "null-price": _with(close=None),
    "bool-volume": _with(volume=True),
    "zero-price": _with(low="0"),
    "negative-price": _with(low="-5900750000000"),
    "undefined-price": _with(open=str(2**63 - 1), high=str(2**63 - 1)),
    "high-below-low": _with(high="5900000000000"),
    "high-below-close": _with(high="5901250000000"),
    "low-above-open": _with(low="5901500000000"),
    "negative-volume": _with(volume="-1"),
    "before-start": _with(ts_event=str(ns(START - timedelta(minutes=1)))),
    "at-end": _with(ts_event=str(ns(END))),
    "not-on-a-minute": _with(ts_event=str(ns(START) + NS)),
    "pretty-ts": _with(ts_event="2025-03-03T14:30:00.000000000Z"),
    "wrong-rtype": _with(rtype=34),
    "not-json": "<html>gateway maintenance</html>",
    "not-an-object": "[1, 2, 3]",
}


@pytest.mark.parametrize("bad", list(BAD_RECORDS.values()), ids=list(BAD_RECORDS))
def test_one_bad_record_rejects_the_whole_answer(stub: DatabentoStub, bad: Any) -> None:
    ok = record(START + timedelta(minutes=1), "5901500000000", "5901750000000", "5901000000000", "5901250000000")
    stub.records = [ok, bad]  # the good record is not returned on its own either
    error = failure(fetch)
    assert error.error_code == "INTEGRATION_BAD_RESPONSE"
    assert "record 1" in error.message
    [event] = usage_events("databento")
    assert (event.status, event.error_code, event.http_status) == ("error", "INTEGRATION_BAD_RESPONSE", 200)


def test_a_repeated_ts_is_malformed(stub: DatabentoStub) -> None:
    stub.records = [GOOD, GOOD]
    error = failure(fetch)
    assert (error.error_code, "repeats" in error.message) == ("INTEGRATION_BAD_RESPONSE", True)


def test_blank_lines_are_not_records(stub: DatabentoStub) -> None:
    stub.records = ["", GOOD, "  "]
    assert len(fetch()) == 1


# -- refused before any call ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"symbol": "ES.FUT"},
        {"symbol": "ALL_SYMBOLS"},
        {"symbol": "MESZ5,MNQZ5"},
        {"symbol": ""},
        {"symbol": "MES Z5"},
        {"timeframe": "5m"},
        {"start": datetime(2025, 3, 3, 14, 30)},  # noqa: DTZ001 - naive on purpose
        {"end": START},
        {"end": START - timedelta(minutes=1)},
    ],
    ids=["parent", "all-symbols", "two-symbols", "empty", "space", "5m", "naive", "empty-range", "reversed"],
)
def test_a_bad_request_is_refused_without_calling(stub: DatabentoStub, kwargs: dict[str, Any]) -> None:
    args = {"symbol": "MES.c.0", "timeframe": "1m", "start": START, "end": END, **kwargs}
    with pytest.raises(DatabentoRequestInvalid) as caught:
        DatabentoClient.for_bot().fetch_bars(**args)
    assert caught.value.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert stub.requests == [] and usage_events("databento") == []


# -- secrets -----------------------------------------------------------------------------------
def test_the_api_key_appears_in_no_error_and_no_usage_event(stub: DatabentoStub, monkeypatch: Any) -> None:
    errors = []
    stub.available_end = START
    for mode in ("bad_key", "rate_limit", "malformed", "partial", "unknown_symbol", "lagging"):
        stub.mode = mode
        errors.append(failure(fetch))
    stub.mode = "ok"
    echo = {"detail": {"case": "symbology_invalid_request", "message": f"Key {GOOD_KEY} cannot resolve MES.c.0"}}
    stub.handle = lambda request: StubResponse(422, echo)
    echoed = failure(fetch)
    assert GOOD_KEY not in echoed.message and "[redacted]" in echoed.message
    errors.append(echoed)
    rows = list(IntegrationUsageEvent.objects.filter(provider="databento").values())
    assert len(rows) == 7
    texts = [str(rows)] + [f"{e.message} {e.suggested_fix} {e.extra}" for e in errors]
    assert not any(GOOD_KEY in text for text in texts)
