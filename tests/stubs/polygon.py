"""Polygon.io / Massive.com REST stub (PROVIDERS.md §4): Bearer auth (or ?apiKey=, as the real API
accepts both), `GET /v1/marketstatus/now`, the futures aggregates `GET /futures/v1/aggs/{ticker}`
with `next_url` pagination, and `/v2/aggs/ticker/...`.

Futures bars are synthetic and deterministic by default: the same generator as the Databento stub
(tests/stubs/databento.py `synthetic_bars`), so a contract (MESZ5, NQH6...) has the same prices
there and here, only for minutes when CME Globex trades (holidays ignored). The stub honours
`resolution` (1min, 1hour; anything else is a 400), `window_start.gte/.gt/.lte/.lt` (Unix ns or
YYYY-MM-DD, UTC midnight), `limit` (pages of at most `limit` bars, next_url with an opaque cursor)
and serves `ticker, open, high, low, close, volume, dollar_volume, transactions, window_start,
session_end_date`. A ticker whose root the generator does not know gets an OK answer with no
results (the real API's answer to an unknown ticker is not documented [U]).

Modes beyond the common ones:
    not_authorized  every data call answers 403 NOT_AUTHORIZED (the key's plan lacks it)
    stale           futures bars only older than (window end - stale_lag), 30 minutes by default
    empty           futures answers are OK with no results
Attributes:
    market             what /v1/marketstatus/now says
    futures_entitled   False: futures calls answer 403 NOT_AUTHORIZED while verify still works
    futures_pages      None (the default): synthetic bars as above. A list: exactly these pages of
                       bars, in order, whatever the query (cursor = page index)
    stale_lag          timedelta for `stale`
    aggs_pages         the pages /v2/aggs serves
    next_url_base      the host written into next_url (the stub's own URL unless changed)
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.stubs.base import StubRequest, StubResponse, StubServer
from tests.stubs.databento import CHICAGO, EPOCH, PX_SCALE, synthetic_bars

RESOLUTIONS = {"1min": 60, "1hour": 3600}

GOOD_KEY = "pg-StubKey0123456789abcdefghijklmnop"

# Two pages of ESZ5 1-minute bars; window_start in Unix ns.
FUTURES_PAGES: list[list[dict[str, Any]]] = [
    [
        {
            "ticker": "ESZ5",
            "open": 6021.25,
            "high": 6023.5,
            "low": 6020.75,
            "close": 6022.0,
            "volume": 1843,
            "dollar_volume": 11098741.5,
            "transactions": 512,
            "window_start": 1760000000000000000,
            "session_end_date": "2025-10-09",
        },
        {
            "ticker": "ESZ5",
            "open": 6022.0,
            "high": 6022.75,
            "low": 6019.5,
            "close": 6020.25,
            "volume": 2210,
            "dollar_volume": 13306114.0,
            "transactions": 640,
            "window_start": 1760000060000000000,
            "session_end_date": "2025-10-09",
        },
    ],
    [
        {
            "ticker": "ESZ5",
            "open": 6020.25,
            "high": 6021.0,
            "low": 6018.0,
            "close": 6018.5,
            "volume": 1977,
            "transactions": 588,
            "window_start": 1760000120000000000,
            "session_end_date": "2025-10-09",
            "settlement_price": 6019.75,
        },
    ],
]

AGGS_PAGES: list[list[dict[str, Any]]] = [
    [{"v": 95595226.0, "vw": 158.6074, "o": 162.25, "c": 156.8, "h": 162.34, "l": 156.72, "t": 1651003200000, "n": 7}],
]

MARKET_STATUS = {
    "afterHours": False,
    "currencies": {"crypto": "open", "fx": "open"},
    "earlyHours": False,
    "exchanges": {"nasdaq": "open", "nyse": "open", "otc": "open"},
    "serverTime": "2025-10-09T10:48:08-04:00",
}


def _request_id() -> str:
    return uuid.uuid4().hex


class PolygonStub(StubServer):
    good_env = {"POLYGON_API_KEY": GOOD_KEY}

    def __init__(self) -> None:
        super().__init__()
        self.market = "open"
        self.futures_entitled = True
        self.futures_pages: list[list[dict[str, Any]]] | None = None
        self.stale_lag = timedelta(minutes=30)
        self.aggs_pages: list[list[dict[str, Any]]] = [list(page) for page in AGGS_PAGES]
        self.next_url_base: str | None = None

    def _key(self, request: StubRequest) -> str | None:
        auth = request.header("authorization")
        if auth.startswith("Bearer "):
            return auth[7:]
        keys = request.query.get("apiKey")
        return keys[0] if keys else None

    def handle(self, request: StubRequest) -> StubResponse:
        if self.mode == "rate_limit":
            # No Retry-After: Polygon is not documented to send one.
            return StubResponse(
                429,
                {
                    "status": "ERROR",
                    "request_id": _request_id(),
                    "error": "You've exceeded the maximum requests per minute, please wait or upgrade your "
                    "subscription to continue. https://massive.com/pricing",
                },
            )
        key = self._key(request)
        if key is None:
            return StubResponse(
                400, {"status": "ERROR", "request_id": _request_id(), "error": "API Key was not provided"}
            )
        if self.mode == "bad_key" or key != GOOD_KEY:
            return StubResponse(401, {"status": "ERROR", "request_id": _request_id(), "error": "Unknown API Key"})
        if request.method != "GET":
            return StubResponse(405, {"status": "ERROR", "request_id": _request_id(), "error": "Method not allowed"})
        if request.path == "/v1/marketstatus/now":
            return self._market_status()
        if self.mode == "not_authorized":
            return self._not_authorized()
        match = re.fullmatch(r"/futures/v1/aggs/([^/]+)", request.path)
        if match:
            if not self.futures_entitled:
                return self._not_authorized()
            if self.futures_pages is None:
                return self._synthetic_futures(request, match.group(1))
            return self._paged(request, self.futures_pages, self._malformed_futures_bar)
        match = re.fullmatch(r"/v2/aggs/ticker/([^/]+)/range/\d+/[a-z]+/[^/]+/[^/]+", request.path)
        if match:
            no_close = {"o": 1.0, "h": 1.0, "l": 1.0, "v": 1, "t": 0}
            count = sum(len(page) for page in self.aggs_pages)
            extra = {"ticker": match.group(1), "adjusted": True, "queryCount": count, "resultsCount": count}
            return self._paged(request, self.aggs_pages, lambda: no_close, extra)
        return StubResponse(404, {"status": "NOT_FOUND", "request_id": _request_id(), "message": "Not found"})

    def _market_status(self) -> StubResponse:
        if self.mode == "malformed":
            body = dict(MARKET_STATUS)  # everything but the `market` field
            return StubResponse(200, body)
        return StubResponse(200, {"market": self.market, **MARKET_STATUS})

    def _not_authorized(self) -> StubResponse:
        return StubResponse(
            403,
            {
                "status": "NOT_AUTHORIZED",
                "request_id": _request_id(),
                "message": "You are not entitled to this data. Please upgrade your plan at https://massive.com/pricing",
            },
        )

    @staticmethod
    def _malformed_futures_bar() -> dict[str, Any]:
        bar = dict(FUTURES_PAGES[0][0])
        del bar["close"]
        return bar

    def _paged(
        self,
        request: StubRequest,
        pages: list[list[dict[str, Any]]],
        malformed: Any,
        extra: dict[str, Any] | None = None,
    ) -> StubResponse:
        cursor = request.query.get("cursor", ["0"])[0]
        index = int(cursor) if cursor.isdigit() else -1
        if not 0 <= index < max(len(pages), 1):
            return StubResponse(400, {"status": "ERROR", "request_id": _request_id(), "error": "Invalid cursor"})
        results = list(pages[index]) if pages else []
        if self.mode == "malformed":
            results = [malformed()]
        body: dict[str, Any] = {**(extra or {}), "status": "OK", "request_id": _request_id()}
        if results:
            body["results"] = results
        if index + 1 < len(pages):
            base = self.next_url_base or self.url
            body["next_url"] = f"{base}{request.path}?cursor={index + 1}"
        return StubResponse(200, body)

    # -- synthetic futures aggregates -------------------------------------------------------------
    def _synthetic_futures(self, request: StubRequest, ticker: str) -> StubResponse:
        query = {name: values[0] for name, values in request.query.items()}
        if "cursor" in query:
            try:
                query = json.loads(base64.urlsafe_b64decode(query["cursor"].encode()))
            except ValueError:
                return StubResponse(400, {"status": "ERROR", "request_id": _request_id(), "error": "Invalid cursor"})
        seconds = RESOLUTIONS.get(query.get("resolution", ""))
        if seconds is None:
            return StubResponse(
                400, {"status": "ERROR", "request_id": _request_id(), "error": "resolution value is not allowed"}
            )
        try:
            limit = int(query.get("limit", "1000"))
            start, end = _window(query)
        except ValueError as exc:
            return StubResponse(400, {"status": "ERROR", "request_id": _request_id(), "error": str(exc)})
        if not 1 <= limit <= 50_000:
            return StubResponse(400, {"status": "ERROR", "request_id": _request_id(), "error": "limit out of range"})
        if self.mode == "stale":
            end -= self.stale_lag
        bars = [] if self.mode == "empty" else synthetic_bars(ticker, seconds, start, end)
        offset = int(query.get("offset", 0))
        page = bars[offset : offset + limit]
        results = [self._futures_record(ticker, bar) for bar in page]
        if self.mode == "malformed":
            results = [self._malformed_futures_bar()]
        body: dict[str, Any] = {"status": "OK", "request_id": _request_id()}
        if results:
            body["results"] = results
        if offset + limit < len(bars):
            cursor = base64.urlsafe_b64encode(json.dumps({**query, "offset": offset + limit}).encode()).decode()
            body["next_url"] = f"{self.next_url_base or self.url}{request.path}?cursor={cursor}"
        return StubResponse(200, body)

    @staticmethod
    def _futures_record(ticker: str, bar: Any) -> dict[str, Any]:
        local = bar.ts.astimezone(CHICAGO)
        session_end = local.date() + timedelta(days=1) if local.hour >= 17 else local.date()
        close = bar.close / PX_SCALE
        return {
            "ticker": ticker,
            "open": bar.open / PX_SCALE,  # quarter ticks: exact as floats
            "high": bar.high / PX_SCALE,
            "low": bar.low / PX_SCALE,
            "close": close,
            "volume": bar.volume,
            "dollar_volume": round(close * bar.volume * 5, 2),
            "transactions": max(1, bar.volume // 4),
            "window_start": bar.ts_ns,
            "session_end_date": session_end.isoformat(),
        }


def _bound(value: str) -> datetime:
    if value.isdigit():
        return EPOCH + timedelta(microseconds=int(value) // 1000)
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)


def _window(query: dict[str, str]) -> tuple[datetime, datetime]:
    """[start, end) from window_start.gte/.gt/.lte/.lt (a bar's window_start is whole seconds, so .gt
    and .lte move the bound by one microsecond)."""
    start: datetime | None = None
    end = datetime.now(UTC) + timedelta(days=1)
    tiny = timedelta(microseconds=1)
    if "window_start.gte" in query:
        start = _bound(query["window_start.gte"])
    if "window_start.gt" in query:
        start = _bound(query["window_start.gt"]) + tiny
    if "window_start.lt" in query:
        end = _bound(query["window_start.lt"])
    if "window_start.lte" in query:
        end = _bound(query["window_start.lte"]) + tiny
    return start or end - timedelta(days=1), end  # no lower bound: the last day only, not since 1970
