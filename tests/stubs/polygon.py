"""Polygon.io / Massive.com REST stub (PROVIDERS.md §4): Bearer auth (or ?apiKey=, as the real API
accepts both), `GET /v1/marketstatus/now`, the futures aggregates `GET /futures/v1/aggs/{ticker}`
with `next_url` pagination, and `/v2/aggs/ticker/...`.

Modes beyond the common ones:
    not_authorized  every data call answers 403 NOT_AUTHORIZED (the key's plan lacks it)
Attributes:
    market             what /v1/marketstatus/now says
    futures_entitled   False: futures calls answer 403 NOT_AUTHORIZED while verify still works
    futures_pages      the pages of bars /futures/v1/aggs serves, in order (cursor = page index)
    aggs_pages         the same for /v2/aggs
    next_url_base      the host written into next_url (the stub's own URL unless changed)
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.stubs.base import StubRequest, StubResponse, StubServer

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
        self.futures_pages: list[list[dict[str, Any]]] = [list(page) for page in FUTURES_PAGES]
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
