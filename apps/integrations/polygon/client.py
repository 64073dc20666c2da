"""Polygon.io, now Massive.com, REST API (PROVIDERS.md §4).

Auth is `Authorization: Bearer KEY` (what the official SDK sends; the `?apiKey=` query form also
works but would put the key in URLs, so it is never used). Verify is `GET /v1/marketstatus/now`,
available on every plan including the free one.

Futures bars come from the separate futures API, `GET /futures/v1/aggs/{ticker}` (not /v2/aggs).
Each page is one metered call; `next_url` is followed like the SDK does: only its path and query
are taken and requested against the configured base URL, so the key is never sent to a host
named by a response.

`fetch_bars` (the contract in apps/integrations/bars.py) reads the futures aggregates with
resolution `1min`/`1hour`, window_start.gte/.lt in Unix ns (half-open), the largest page size, and
validates every bar strictly inside each page's metered call.

Rate limit: the free tier allows 5 requests/minute [C]; a 429 is INTEGRATION_RATE_LIMITED.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from apps.integrations.bars import NATIVE_TIMEFRAMES, ProviderBar
from apps.integrations.base import ProviderClient, require
from apps.integrations.errors import IntegrationError
from apps.integrations.http import provider_message

# /v2 aggregates answer status "OK", or "DELAYED" for delayed plans [U]; accept both. The futures
# API documents no status value of its own [P], so the same two are accepted there.
GOOD_STATUSES = frozenset({"OK", "DELAYED"})
FUTURES_MAX_LIMIT = 50_000  # per page (docs: default 1000, min 1, max 50000)
# fetch_bars timeframe -> (futures API resolution [C], bar length in ns)
FUTURES_RESOLUTIONS: dict[str, tuple[str, int]] = {"1m": ("1min", 60 * 10**9), "1h": ("1hour", 3600 * 10**9)}
AGGS_MAX_LIMIT = 50_000
# A runaway pagination guard: 200 pages of up to 50,000 bars is far beyond any request we make.
MAX_PAGES = 200
# Window bounds given as integers must be Unix nanoseconds; anything below 1e17 (1973) is almost
# certainly seconds or milliseconds passed by mistake.
_MIN_NS = 10**17
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Contract and stock tickers (ESZ5, GCJ5, AAPL, BRK.B, C:EURUSD): starts with a letter or digit, so
# nothing like ".." can reach the path.
_TICKER = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,39}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ENTITLEMENT_FIX = (
    "The Polygon (Massive) key is valid but its plan does not include this data. Futures bars need a "
    "Futures plan on massive.com; check the key's subscriptions, or use another market-data provider."
)


class PolygonRequestInvalid(IntegrationError):
    """The caller asked for something TradeOps will not send (refused before any request)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(
            message,
            error_code="INTEGRATION_REQUEST_REJECTED",
            provider="polygon",
            suggested_fix="Correct the request parameters (ticker, resolution, window bounds, limit) and retry.",
            status_code=400,
            extra={"fields": {field: [message]}},
        )


def _classify(response: Any, body: Any) -> IntegrationError | None:
    """Polygon-specific failures before the generic status rules.

    - `{"status":"NOT_AUTHORIZED","message":"You are not entitled to this data..."}` is documented
      from memory with a 403 [U]; it is recognised by its status field at any HTTP code.
    - `{"status":"ERROR","error":"API Key was not provided"}` comes with a 400 [P]: the key did not
      arrive (a proxy stripping the Authorization header, an empty key), so it is an auth failure.
    """
    if not isinstance(body, dict):
        return None
    said = provider_message(body)
    if body.get("status") == "NOT_AUTHORIZED":
        return IntegrationError(
            f"Polygon (Massive) refused this call: the key is not entitled to it ({response.status_code})"
            + (f": {said}" if said else ""),
            error_code="INTEGRATION_PERMISSION_DENIED",
            provider="polygon",
            suggested_fix=ENTITLEMENT_FIX,
            http_status=response.status_code,
        )
    if response.status_code == 400 and "api key" in said.lower():
        return IntegrationError(
            f"Polygon (Massive) did not receive a usable API key (400): {said}",
            error_code="INTEGRATION_AUTH_FAILED",
            provider="polygon",
            http_status=400,
        )
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _market_status(body: Any) -> None:
    require(isinstance(body, dict), "expected a JSON object from /v1/marketstatus/now")
    # Documented values are open, closed, extended-hours; any other non-empty string is accepted so
    # a new value does not break Verify (the fact is shown, not acted on).
    require(isinstance(body.get("market"), str) and body["market"] != "", "`market` is missing")


def _page_envelope(body: Any, what: str) -> list[Any]:
    require(isinstance(body, dict), f"expected a JSON object from {what}")
    status = body.get("status")
    require(status is None or status in GOOD_STATUSES, f"unexpected status {str(status)[:40]!r}")
    # `results` is optional in the docs (an empty window omits it); then the envelope must at least
    # carry a status, so `{}` or an unrelated object is not taken for "no bars".
    next_url = body.get("next_url")
    require(next_url is None or (isinstance(next_url, str) and next_url != ""), "`next_url` is not a URL")
    if "results" not in body:
        require(status is not None, f"neither results nor status in the answer from {what}")
        return []
    results = body["results"]
    require(isinstance(results, list), "`results` is not a list")
    return results


_FUTURES_REQUIRED = ("open", "high", "low", "close", "volume")
_FUTURES_OPTIONAL_NUMBERS = ("dollar_volume", "settlement_price")


def _futures_page(body: Any) -> None:
    for i, bar in enumerate(_page_envelope(body, "/futures/v1/aggs")):
        require(isinstance(bar, dict), f"bar {i} is not an object")
        for name in _FUTURES_REQUIRED:
            require(name in bar, f"bar {i} has no `{name}`")
            require(_is_number(bar[name]), f"bar {i} `{name}` is not a finite number")
        require("window_start" in bar, f"bar {i} has no `window_start`")
        ws = bar["window_start"]
        require(isinstance(ws, int) and not isinstance(ws, bool) and ws >= 0, f"bar {i} `window_start` is not ns")
        require(bar["high"] >= bar["low"], f"bar {i} has high < low")
        require(bar["volume"] >= 0, f"bar {i} has a negative volume")
        for name in _FUTURES_OPTIONAL_NUMBERS:
            require(bar.get(name) is None or _is_number(bar[name]), f"bar {i} `{name}` is not a number")
        tx = bar.get("transactions")
        require(tx is None or (isinstance(tx, int) and not isinstance(tx, bool)), f"bar {i} `transactions`")
        for name in ("ticker", "session_end_date"):
            require(bar.get(name) is None or isinstance(bar[name], str), f"bar {i} `{name}` is not a string")


def _futures_bar(bar: dict[str, Any]) -> dict[str, Any]:
    """The validated bar, with only the fields the provider sent (nothing is filled in)."""
    out = {name: bar[name] for name in (*_FUTURES_REQUIRED, "window_start")}
    for name in ("ticker", "transactions", "session_end_date", *_FUTURES_OPTIONAL_NUMBERS):
        if bar.get(name) is not None:
            out[name] = bar[name]
    return out


_AGGS_REQUIRED = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}


def _aggs_page(body: Any) -> None:
    for i, bar in enumerate(_page_envelope(body, "/v2/aggs")):
        require(isinstance(bar, dict), f"bar {i} is not an object")
        for key in _AGGS_REQUIRED:
            require(key in bar, f"bar {i} has no `{key}`")
            require(_is_number(bar[key]), f"bar {i} `{key}` is not a finite number")
        require("t" in bar, f"bar {i} has no `t`")
        require(isinstance(bar["t"], int) and not isinstance(bar["t"], bool), f"bar {i} `t` is not Unix ms")
        require(bar["h"] >= bar["l"], f"bar {i} has high < low")
        require(bar.get("vw") is None or _is_number(bar["vw"]), f"bar {i} `vw` is not a number")
        require(bar.get("n") is None or isinstance(bar["n"], int), f"bar {i} `n` is not an integer")


def _aggs_bar(bar: dict[str, Any]) -> dict[str, Any]:
    out = {name: bar[key] for key, name in _AGGS_REQUIRED.items()}
    out["timestamp_ms"] = bar["t"]
    if bar.get("vw") is not None:
        out["vwap"] = bar["vw"]
    if bar.get("n") is not None:
        out["transactions"] = bar["n"]
    return out


def _decimal(value: int | float) -> Decimal:
    """A JSON number as the exact decimal it was written as (repr of a float is the shortest string
    that reads back to it: 6021.25 stays 6021.25, never 6021.2500000000001)."""
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    exact = exact.normalize()  # 6021.50 -> 6021.5; 6000.0 -> 6E+3, made plain below
    return exact.quantize(Decimal(1)) if exact.as_tuple().exponent > 0 else exact  # type: ignore[operator]


def _bars_classifier(ticker: str, resolution: str) -> Any:
    """fetch_bars failures that should name the contract: a 404 for the ticker [U: the futures API's
    answer to an unknown ticker is not documented], and a 400 for the request as sent."""

    def classify(response: Any, body: Any) -> IntegrationError | None:
        error = _classify(response, body)
        if error is not None or response.status_code not in (400, 404):
            return error
        said = provider_message(body)
        suffix = f": {said}" if said else ""
        fix = (
            f"Check the instrument's Polygon (Massive) futures ticker ({ticker}: root, month code, year, e.g. "
            "MESZ5) and that the contract trades in the requested window; check POLYGON_BASE_URL if it is set."
        )
        if response.status_code == 404:
            return IntegrationError(
                f"Polygon (Massive) has no futures bars for {ticker} (404){suffix}",
                error_code="DATA_UNAVAILABLE",
                provider="polygon",
                suggested_fix=fix,
                http_status=404,
                extra={"symbol": ticker, "resolution": resolution},
            )
        return IntegrationError(
            f"Polygon (Massive) rejected the futures aggregates request for {ticker} ({resolution}) (400){suffix}",
            error_code="INTEGRATION_REQUEST_REJECTED",
            provider="polygon",
            suggested_fix=fix,
            http_status=400,
            extra={"symbol": ticker, "resolution": resolution},
        )

    return classify


def _window_bound(value: int | date | datetime | str | None, field: str) -> str | None:
    """A window bound as the futures API takes it: Unix nanoseconds, or a YYYY-MM-DD date."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PolygonRequestInvalid(f"{field} must be a timezone-aware datetime.", field=field)
        delta = value - _EPOCH
        return str((delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        if value < _MIN_NS:
            raise PolygonRequestInvalid(f"{field} must be Unix nanoseconds (got {value}).", field=field)
        return str(value)
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise PolygonRequestInvalid(f"{field} must be an aware datetime, a date, YYYY-MM-DD or Unix ns.", field=field)


class PolygonClient(ProviderClient):
    provider = "polygon"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.get('POLYGON_API_KEY')}"}

    def _next_path(self, next_url: str) -> str:
        """`next_url` names the provider's public host (api.massive.com); like the SDK, keep only its
        path and query and ask the configured base URL, so the key goes nowhere else."""
        parts = urlsplit(next_url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _paginate(
        self, operation: str, path: str, params: dict[str, Any], validate: Any, classify: Any = _classify
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        next_path: str | None = path
        query: dict[str, Any] | None = params
        pages = 0
        while next_path is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise IntegrationError(
                    f"Polygon (Massive) kept paginating past {MAX_PAGES} pages ({operation}).",
                    error_code="INTEGRATION_BAD_RESPONSE",
                    provider=self.provider,
                    suggested_fix="Ask for a narrower window or a larger limit per page.",
                )
            body = self.request(
                operation,
                "GET",
                next_path,
                headers=self._headers(),
                params=query,
                classify=classify,
                validate=validate,
            ).body
            results.extend(body.get("results") or [])
            next_url = body.get("next_url")
            if not next_url:
                break
            next_path = self._next_path(next_url)
            if next_path in seen:
                raise IntegrationError(
                    f"Polygon (Massive) returned the same next_url twice ({operation}).",
                    error_code="INTEGRATION_BAD_RESPONSE",
                    provider=self.provider,
                )
            seen.add(next_path)
            query = None  # the cursor in next_url carries the original query
        return results

    def verify(self) -> dict[str, Any]:
        body = self.request(
            "verify",
            "GET",
            "/v1/marketstatus/now",
            headers=self._headers(),
            classify=_classify,
            validate=_market_status,
        ).body
        return {"market": body["market"]}

    def futures_aggregates(
        self,
        ticker: str,
        resolution: str,
        window_start_gte: int | date | datetime | str | None = None,
        window_start_lt: int | date | datetime | str | None = None,
        limit: int = 1000,
        *,
        sort: str | None = None,
    ) -> list[dict[str, Any]]:
        """Bars of one futures contract (e.g. ESZ5), every page of them. Each bar has open, high,
        low, close, volume and window_start (Unix ns), plus ticker, transactions, dollar_volume,
        session_end_date and settlement_price when the provider sends them.

        `resolution` is passed through as given (`1min`, `1hour`, `1session`...): the docs show
        several spellings over time [P], and the API answers 400 for one it does not allow.
        `sort` is passed through when given; its accepted values are not settled [P]."""
        raw = self._futures_pages(ticker, resolution, window_start_gte, window_start_lt, limit, sort, _futures_page)
        return [_futures_bar(bar) for bar in raw]

    def _futures_pages(
        self,
        ticker: str,
        resolution: str,
        window_start_gte: int | date | datetime | str | None,
        window_start_lt: int | date | datetime | str | None,
        limit: int,
        sort: str | None,
        validate: Any,
        classify: Any = _classify,
    ) -> list[dict[str, Any]]:
        if not isinstance(ticker, str) or not _TICKER.fullmatch(ticker):
            raise PolygonRequestInvalid(f"Not a futures ticker: {str(ticker)[:40]!r}.", field="ticker")
        if not isinstance(resolution, str) or not resolution.strip():
            raise PolygonRequestInvalid("resolution is required (e.g. 1min, 1hour, 1session).", field="resolution")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= FUTURES_MAX_LIMIT:
            raise PolygonRequestInvalid(f"limit must be between 1 and {FUTURES_MAX_LIMIT}.", field="limit")
        params: dict[str, Any] = {"resolution": resolution.strip(), "limit": limit}
        gte = _window_bound(window_start_gte, "window_start_gte")
        lt = _window_bound(window_start_lt, "window_start_lt")
        if gte is not None:
            params["window_start.gte"] = gte
        if lt is not None:
            params["window_start.lt"] = lt
        if sort:
            params["sort"] = sort
        path = f"/futures/v1/aggs/{quote(ticker, safe=':')}"
        return self._paginate("futures.aggs", path, params, validate, classify)

    def fetch_bars(self, *, symbol: str, timeframe: str, start: datetime, end: datetime) -> list[ProviderBar]:
        """The contract in apps/integrations/bars.py over the futures aggregates: `symbol` is a contract
        ticker (MESZ5), `1m`/`1h` ask for resolution `1min`/`1hour`, the window is
        window_start.gte=start, window_start.lt=end in Unix ns (half-open, like the contract). Every
        page is validated strictly inside its metered call; one bad bar rejects the whole answer.
        [] when the provider answered with no bars. Prices are the provider's floats taken at their
        shortest decimal representation (6021.25 -> Decimal("6021.25")), never rounded or filled in."""
        if timeframe not in FUTURES_RESOLUTIONS:
            raise PolygonRequestInvalid(
                f"timeframe must be one of {', '.join(NATIVE_TIMEFRAMES)} (got {str(timeframe)[:10]!r}).",
                field="timeframe",
            )
        for field, value in (("start", start), ("end", end)):
            if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
                raise PolygonRequestInvalid(f"{field} must be a timezone-aware datetime.", field=field)
        if start >= end:
            raise PolygonRequestInvalid("start must be before end.", field="start")
        resolution, bar_ns = FUTURES_RESOLUTIONS[timeframe]
        start_ns, end_ns = int(_window_bound(start, "start") or 0), int(_window_bound(end, "end") or 0)
        seen: set[int] = set()

        def validate(body: Any) -> None:
            _futures_page(body)
            for i, bar in enumerate(body.get("results") or []):
                ts = bar["window_start"]
                require(start_ns <= ts < end_ns, f"bar {i} window_start {ts} is outside the requested range")
                require(ts % bar_ns == 0, f"bar {i} window_start {ts} is not on a bar boundary")
                require(ts not in seen, f"bar {i} repeats window_start {ts}")
                seen.add(ts)
                for name in ("open", "high", "low", "close"):
                    require(bar[name] > 0, f"bar {i} `{name}` is not a positive price")
                require(bar["high"] >= max(bar["open"], bar["close"]), f"bar {i} has high below open or close")
                require(bar["low"] <= min(bar["open"], bar["close"]), f"bar {i} has low above open or close")
                require(float(bar["volume"]).is_integer(), f"bar {i} `volume` is not a whole number")

        raw = self._futures_pages(
            symbol, resolution, start, end, FUTURES_MAX_LIMIT, None, validate, _bars_classifier(symbol, resolution)
        )
        bars = [
            ProviderBar(
                ts=_EPOCH + timedelta(microseconds=bar["window_start"] // 1000),
                open=_decimal(bar["open"]),
                high=_decimal(bar["high"]),
                low=_decimal(bar["low"]),
                close=_decimal(bar["close"]),
                volume=int(bar["volume"]),
            )
            for bar in raw
        ]
        bars.sort(key=lambda bar: bar.ts)
        return bars

    def aggregates(
        self,
        ticker: str,
        multiplier: int,
        timespan: str,
        from_: str | int,
        to: str | int,
        *,
        adjusted: bool = True,
        sort: str = "asc",
        limit: int = 5000,
    ) -> list[dict[str, Any]]:
        """Stock/index/FX/crypto bars from /v2/aggs (not futures). Each bar has open, high, low,
        close, volume and timestamp_ms (window start, Unix ms), plus vwap and transactions when
        sent. from_/to are YYYY-MM-DD or Unix ms."""
        timespans = {"second", "minute", "hour", "day", "week", "month", "quarter", "year"}
        if not isinstance(ticker, str) or not _TICKER.fullmatch(ticker):
            raise PolygonRequestInvalid(f"Not a ticker: {str(ticker)[:40]!r}.", field="ticker")
        if timespan not in timespans:
            raise PolygonRequestInvalid(f"timespan must be one of {', '.join(sorted(timespans))}.", field="timespan")
        if not isinstance(multiplier, int) or isinstance(multiplier, bool) or multiplier < 1:
            raise PolygonRequestInvalid("multiplier must be a positive integer.", field="multiplier")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= AGGS_MAX_LIMIT:
            raise PolygonRequestInvalid(f"limit must be between 1 and {AGGS_MAX_LIMIT}.", field="limit")
        if sort not in ("asc", "desc"):
            raise PolygonRequestInvalid("sort must be asc or desc.", field="sort")
        for field, value in (("from_", from_), ("to", to)):
            ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
                isinstance(value, str) and bool(_DATE.fullmatch(value))
            )
            if not ok:
                raise PolygonRequestInvalid(f"{field} must be YYYY-MM-DD or Unix ms.", field=field)
        path = f"/v2/aggs/ticker/{quote(ticker, safe=':')}/range/{multiplier}/{timespan}/{from_}/{to}"
        params = {"adjusted": "true" if adjusted else "false", "sort": sort, "limit": limit}
        return [_aggs_bar(bar) for bar in self._paginate("aggs", path, params, _aggs_page)]
