"""Databento Historical API over its documented HTTP interface (PROVIDERS.md §3).

Auth is HTTP Basic with the API key as username and an empty password. Verify uses the free
`metadata.list_datasets` call and checks that the configured dataset is available to the key.

Bars (`fetch_bars`, the contract in apps/integrations/bars.py) come from
`POST /v0/timeseries.get_range`, form-encoded, one metered call per request:
- schema `ohlcv-1m` / `ohlcv-1h`; `stype_in=continuous` for a continuous symbol (`MES.c.0`: root,
  roll rule c/v/n, rank) and `raw_symbol` for a contract (`MESZ5`). Parent symbols (`ES.FUT`) and
  `ALL_SYMBOLS` name many instruments, i.e. several bars per minute, and are refused.
- `encoding=json` (JSON Lines, parsed with the standard library: no DBN decoder needed) with
  `compression=none`, and `pretty_px=false`, `pretty_ts=false`: prices stay the documented
  fixed-point int64 (1 unit = 1e-9, sent as quoted strings) and ts_event UNIX ns, both converted
  exactly (Decimal, integer arithmetic), never through a float or a decimal string the server
  formatted. (pretty_px/pretty_ts on get_range are only confirmed by third-party usage [P]; `false`
  is also the format the DBN JSON encoder documents by default.)
- start/end are sent as ISO 8601 UTC; Databento reads start as inclusive and end as exclusive,
  which is the contract's half-open range.
Every record is validated, and one bad record rejects the whole answer (INTEGRATION_BAD_RESPONSE):
nothing partial, nothing filled in. 206 Partial Content (the symbol resolved for part of the window
only), 422 symbology_invalid_request, 422 data_end_after_available_end and a 404 for the symbol are
DATA_UNAVAILABLE errors naming the symbol, never a success with fewer bars.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from apps.integrations.bars import NATIVE_TIMEFRAMES, ProviderBar
from apps.integrations.base import ProviderClient, require
from apps.integrations.errors import IntegrationError
from apps.integrations.http import classify_status

logger = logging.getLogger("tradeops.integrations.databento")

DEFAULT_DATASET = "GLBX.MDP3"  # CME Globex MDP 3.0

# timeframe -> (schema, rtype of its records [C] DBN enums.rs, bar length in ns)
SCHEMAS: dict[str, tuple[str, int, int]] = {
    "1m": ("ohlcv-1m", 0x21, 60 * 10**9),
    "1h": ("ohlcv-1h", 0x22, 3600 * 10**9),
}
UNDEF_PRICE = 2**63 - 1  # the null sentinel of fixed-point prices
_PRICE_EXP = -9  # FIXED_PRICE_SCALE: 1 unit = 1e-9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INTEGER = re.compile(r"-?[0-9]{1,20}")
# ROOT.c.0: calendar (c), volume (v) or open-interest (n) roll, rank N.
_CONTINUOUS = re.compile(r"[A-Z0-9]{1,10}\.[cvn]\.[0-9]{1,3}")
_PARENT = re.compile(r"[A-Za-z0-9]{1,10}\.(FUT|OPT|SPOT|MLEG)")
# A contract's raw symbol (MESZ5, ESH26, a spread ESZ5-ESH6): no comma (that would ask for several
# symbols), no space, nothing that is not part of a CME symbol.
_RAW = re.compile(r"[A-Z0-9][A-Za-z0-9._-]{0,30}")
# "The dataset GLBX.MDP3 has data available up to '2026-01-29 20:00:00+00:00'." [C, third-party]
_AVAILABLE_UP_TO = re.compile(r"available up to '([^']{10,40})'")


class DatabentoRequestInvalid(IntegrationError):
    """The caller asked for something TradeOps will not send (refused before any request)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(
            message,
            error_code="INTEGRATION_REQUEST_REJECTED",
            provider="databento",
            suggested_fix="Correct the request (symbol, timeframe 1m or 1h, aware UTC start before end) and retry.",
            status_code=400,
            extra={"fields": {field: [message]}},
        )


def _string_list(body: Any) -> None:
    require(isinstance(body, list), "expected a JSON array of dataset codes")
    require(all(isinstance(item, str) for item in body), "expected dataset codes as strings")


def stype_for(symbol: str) -> str:
    """`continuous` for ROOT.c.N (MES.c.0), `raw_symbol` for a contract (MESZ5); refuses anything that
    would not name exactly one series of bars."""
    if not isinstance(symbol, str) or not symbol:
        raise DatabentoRequestInvalid("A Databento symbol is required (e.g. MES.c.0 or MESZ5).", field="symbol")
    if _CONTINUOUS.fullmatch(symbol):
        return "continuous"
    if symbol.upper() == "ALL_SYMBOLS" or _PARENT.fullmatch(symbol):
        raise DatabentoRequestInvalid(
            f"{symbol[:40]} names many instruments; ask for one contract (MESZ5) or a continuous symbol (MES.c.0).",
            field="symbol",
        )
    if _RAW.fullmatch(symbol):
        return "raw_symbol"
    raise DatabentoRequestInvalid(f"Not a Databento symbol: {symbol[:40]!r}.", field="symbol")


def _ns(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _iso(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def _aware(value: Any, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise DatabentoRequestInvalid(f"{field} must be a timezone-aware datetime.", field=field)
    return value.astimezone(UTC)


def _integer(value: Any, where: str) -> int:
    """A DBN JSON integer: 64-bit values arrive as quoted strings; a plain JSON integer is taken too.
    Never a float, a bool, or a decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    raise ValueError(f"{where} is not an integer")


def _plain(value: Decimal) -> Decimal:
    """5000.250000000 -> 5000.25, 5000.000000000 -> 5000 (same value, no exponent notation)."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def price_from_fixed(units: int) -> Decimal:
    """A fixed-point price (1 unit = 1e-9) as an exact Decimal."""
    return _plain(Decimal(units).scaleb(_PRICE_EXP))


def parse_ohlcv_json(text: Any, *, rtype: int, bar_ns: int, start_ns: int, end_ns: int) -> list[ProviderBar]:
    """The bars of a get_range answer in JSON Lines, or ValueError naming the first problem. Rejects
    the whole answer for any record that is not a complete, consistent bar inside [start, end)."""
    require(isinstance(text, str), "expected JSON Lines text")
    bars: list[ProviderBar] = []
    seen: set[int] = set()
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ValueError(f"record {i} is not JSON") from None
        require(isinstance(record, dict), f"record {i} is not an object")
        hd = record.get("hd")
        require(isinstance(hd, dict), f"record {i} has no `hd` header")
        require("ts_event" in hd, f"record {i} has no `ts_event`")
        require(hd.get("rtype") == rtype, f"record {i} has rtype {str(hd.get('rtype'))[:10]}, expected {rtype}")
        ts_ns = _integer(hd["ts_event"], f"record {i} `ts_event`")
        require(start_ns <= ts_ns < end_ns, f"record {i} ts_event {ts_ns} is outside the requested range")
        require(ts_ns % bar_ns == 0, f"record {i} ts_event {ts_ns} is not on a bar boundary")
        require(ts_ns not in seen, f"record {i} repeats ts_event {ts_ns}")
        seen.add(ts_ns)
        px: dict[str, int] = {}
        for name in ("open", "high", "low", "close"):
            require(name in record, f"record {i} has no `{name}`")
            units = _integer(record[name], f"record {i} `{name}`")
            require(units != UNDEF_PRICE, f"record {i} `{name}` is undefined")
            require(units > 0, f"record {i} `{name}` is not a positive price")
            px[name] = units
        require("volume" in record, f"record {i} has no `volume`")
        volume = _integer(record["volume"], f"record {i} `volume`")
        require(volume >= 0, f"record {i} has a negative volume")
        require(px["high"] >= px["low"], f"record {i} has high < low")
        require(px["high"] >= max(px["open"], px["close"]), f"record {i} has high below open or close")
        require(px["low"] <= min(px["open"], px["close"]), f"record {i} has low above open or close")
        bars.append(
            ProviderBar(
                ts=_EPOCH + timedelta(microseconds=ts_ns // 1000),
                open=price_from_fixed(px["open"]),
                high=price_from_fixed(px["high"]),
                low=price_from_fixed(px["low"]),
                close=price_from_fixed(px["close"]),
                volume=volume,
            )
        )
    bars.sort(key=lambda bar: bar.ts)
    return bars


def _error_detail(response: httpx.Response) -> tuple[Any, str, str]:
    """(decoded body or None, detail.case, detail.message) of a Databento error answer."""
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        return None, "", ""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        case, message = detail.get("case"), detail.get("message")
        return body, case if isinstance(case, str) else "", message[:200] if isinstance(message, str) else ""
    return body, "", detail[:200] if isinstance(detail, str) else ""


class DatabentoClient(ProviderClient):
    provider = "databento"

    @property
    def dataset(self) -> str:
        return self.credentials.get("DATABENTO_DATASET", DEFAULT_DATASET)

    def _auth(self) -> tuple[str, str]:
        return (self.credentials.get("DATABENTO_API_KEY"), "")

    def list_datasets(self, *, operation: str = "metadata.list_datasets") -> list[str]:
        return self.request(
            operation, "GET", "/v0/metadata.list_datasets", auth=self._auth(), validate=_string_list
        ).body

    def verify(self) -> dict[str, Any]:
        datasets = self.list_datasets(operation="verify")
        if self.dataset not in datasets:
            raise IntegrationError(
                f"The key works, but dataset {self.dataset} is not available to it.",
                error_code="INTEGRATION_PERMISSION_DENIED",
                provider=self.provider,
                suggested_fix=f"Subscribe this key to {self.dataset} on databento.com, or set DATABENTO_DATASET "
                f"to one of: {', '.join(datasets[:10])}.",
            )
        return {"datasets": len(datasets), "dataset": self.dataset}

    # -- bars ------------------------------------------------------------------------------------
    def fetch_bars(self, *, symbol: str, timeframe: str, start: datetime, end: datetime) -> list[ProviderBar]:
        """The provider's 1m or 1h bars of `symbol` with start <= ts < end, sorted, one per ts; [] when
        Databento answered with no records (no trades in the window). Raises IntegrationError."""
        if timeframe not in SCHEMAS:
            raise DatabentoRequestInvalid(
                f"timeframe must be one of {', '.join(NATIVE_TIMEFRAMES)} (got {str(timeframe)[:10]!r}).",
                field="timeframe",
            )
        stype_in = stype_for(symbol)
        start, end = _aware(start, "start"), _aware(end, "end")
        if start >= end:
            raise DatabentoRequestInvalid("start must be before end.", field="start")
        schema, rtype, bar_ns = SCHEMAS[timeframe]
        start_ns, end_ns = _ns(start), _ns(end)
        bars: list[ProviderBar] = []

        def validate(text: Any) -> None:  # inside the metered call: a bad answer is recorded as one
            bars.extend(parse_ohlcv_json(text, rtype=rtype, bar_ns=bar_ns, start_ns=start_ns, end_ns=end_ns))

        where = {"symbol": symbol, "stype_in": stype_in, "dataset": self.dataset, "schema": schema}
        result = self.request(
            "timeseries.get_range",
            "POST",
            "/v0/timeseries.get_range",
            auth=self._auth(),
            data={
                "dataset": self.dataset,
                "symbols": symbol,
                "schema": schema,
                "stype_in": stype_in,
                "start": _iso(start),
                "end": _iso(end),
                "encoding": "json",
                "compression": "none",
                "pretty_px": "false",
                "pretty_ts": "false",
                "map_symbols": "false",
            },
            expect_json=False,
            classify=self._bars_classifier(where),
            validate=validate,
        )
        warning = result.headers.get("X-Warning")
        if warning:
            logger.warning("databento get_range %s %s warned: %s", symbol, schema, warning[:500])
        return bars

    def _bars_classifier(self, where: dict[str, str]) -> Callable[[httpx.Response, Any], IntegrationError | None]:
        symbol, stype_in, dataset = where["symbol"], where["stype_in"], where["dataset"]
        symbol_fix = (
            f"Check the instrument's Databento symbol ({symbol}, stype_in {stype_in}): a continuous symbol is "
            f"ROOT.c.0 (e.g. MES.c.0), a contract its raw symbol (e.g. MESZ5), and it must exist in "
            f"DATABENTO_DATASET ({dataset}) for the requested dates. A window with no trading session can also "
            "resolve nothing: ask for a window that covers one."
        )

        def unavailable(message: str, status: int, case: str, fix: str, **extra: Any) -> IntegrationError:
            return IntegrationError(
                message,
                error_code="DATA_UNAVAILABLE",
                provider=self.provider,
                suggested_fix=fix,
                http_status=status,
                extra={**where, "provider_case": case, **extra},
            )

        def classify(response: httpx.Response, _text: Any) -> IntegrationError | None:
            status = response.status_code
            if status == 200:
                return None
            if status == 206:
                return unavailable(
                    f"Databento resolved {symbol} for only part of the window (206 Partial Content): "
                    "some bars would be missing, so none are used.",
                    206,
                    "partial_content",
                    f"Ask for a window inside the life of {symbol} (for an expired or not yet listed contract use "
                    f"a continuous symbol such as MES.c.0), and check DATABENTO_DATASET ({dataset}).",
                )
            body, case, said = _error_detail(response)
            suffix = f" ({status} {case}: {said})" if case else (f" ({status}: {said})" if said else f" ({status})")
            if case == "data_end_after_available_end":
                found = _AVAILABLE_UP_TO.search(said)
                available_end = None
                if found:
                    try:
                        available_end = datetime.fromisoformat(found.group(1)).astimezone(UTC).isoformat()
                    except ValueError:
                        available_end = None
                return unavailable(
                    f"Databento has no {dataset} data for {symbol} up to the requested end yet{suffix}.",
                    status,
                    case,
                    f"Ask for an end at or before {available_end or 'the time Databento names'} (the latest minutes "
                    "reach Databento's historical API with a delay), or use another market-data provider for them.",
                    available_end=available_end,
                )
            if case == "dataset_unavailable_range":
                return unavailable(
                    f"Databento cannot serve {dataset} for the requested window{suffix}.",
                    status,
                    case,
                    f"Ask for a window inside {dataset}'s available range and this key's license, or check "
                    "DATABENTO_DATASET.",
                )
            symbolish = case.startswith("symbology") or "symbol" in said.lower()
            if status in (404, 422) and (symbolish or (status == 404 and case)):
                return unavailable(
                    f"Databento could not resolve symbol {symbol} (stype_in {stype_in}) in {dataset}{suffix}.",
                    status,
                    case or "symbol_not_found",
                    symbol_fix,
                )
            if status in (400, 422):
                return IntegrationError(
                    f"Databento rejected get_range for {symbol} ({where['schema']}, {dataset}){suffix}.",
                    error_code="INTEGRATION_REQUEST_REJECTED",
                    provider=self.provider,
                    suggested_fix=symbol_fix,
                    http_status=status,
                    extra={**where, "provider_case": case},
                )
            # 401, 402, 403, 429, 5xx...: the seam's own rules, with Databento's detail as the message.
            return classify_status(self.provider, "timeseries.get_range", response, body)

        return classify
