"""Databento Historical API stub (PROVIDERS.md §3): Basic auth with the key as username.

Calls served:
    GET  /v0/metadata.list_datasets     the dataset codes (verify)
    POST /v0/timeseries.get_range       ohlcv-1m / ohlcv-1h bars, form-encoded parameters (GET with the
                                        same query parameters also works, as it does on the real API)

get_range speaks the documented protocol: `dataset`, `symbols` (one symbol), `schema`, `start`
(inclusive), `end` (exclusive), `stype_in` (`continuous` for ROOT.c.N, `raw_symbol` for a contract
like MESZ5), `encoding=json` (JSON Lines, 64-bit integers as quoted strings), `compression=none`,
`pretty_px` / `pretty_ts` (both honoured). Records look like
    {"hd":{"ts_event":"1736258400000000000","rtype":33,"publisher_id":1,"instrument_id":42140878},
     "open":"5901250000000","high":"5902000000000","low":"5900750000000","close":"5901500000000",
     "volume":"1843"}
Prices are fixed-point int64, 1 unit = 1e-9; ts_event is the bar's open time in UTC ns.

The bars are synthetic and deterministic: a function of (root, minute) only (see `synthetic_bars`),
so the same request always yields the same bars, 1h bars are exactly the aggregate of their 1m
bars, and the Polygon stub serves the same prices for the same root. Bars exist only for minutes
when CME Globex equity futures trade: Sunday 17:00 CT to Friday 16:00 CT, with the daily
16:00-17:00 CT halt. Exchange holidays are ignored (every weekday is a full session).
Known roots: ES and MES (~5000-6000), NQ and MNQ (~18000-21000); tick 0.25. Any other root is
answered like the real API answers a symbol it cannot resolve (422 symbology_invalid_request).

Modes (stub.mode), beyond the common ones (ok, bad_key, rate_limit, timeout, malformed):
    stale           only bars older than `end - stale_lag` (default 30 minutes) are served
    partial         206 Partial Content: the symbol resolved for part of the window only; the body
                    holds the bars of the first half of the window
    unknown_symbol  422 {"detail":{"case":"symbology_invalid_request","message":"None of the symbols
                    could be resolved",...}}
    empty           200 and no records at all (an empty body)
    lagging         the real API's answer to an `end` after the dataset's available end: 422
                    data_end_after_available_end, "... has data available up to '<time>' ...".
                    The available end is `stub.available_end`, or (wall clock - stale_lag) floored
                    to the minute when that is None.
Attributes:
    stale_lag       timedelta for `stale` and `lagging`
    available_end   aware datetime for `lagging` (None: derived from the wall clock)
    records         None, or the exact records to serve from get_range in ok mode, in order: each a
                    dict (JSON-encoded) or a str (sent as the line itself), for tests of what the
                    client accepts
Helpers:
    stub.get_range_requests()  the form fields of every get_range request received, one value each
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from tests.stubs.base import StubRequest, StubResponse, StubServer

GOOD_KEY = "db-StubKey0123456789abcdefghijklm"
DATASETS = ["GLBX.MDP3", "XNAS.ITCH", "OPRA.PILLAR"]
CHICAGO = ZoneInfo("America/Chicago")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS = 1_000_000_000
PX_SCALE = 1_000_000_000  # fixed-point price unit: 1e-9
TICK_PX = 250_000_000  # 0.25 in fixed-point units
RTYPES = {"ohlcv-1m": 33, "ohlcv-1h": 34}  # DBN enums.rs
SECONDS = {"ohlcv-1m": 60, "ohlcv-1h": 3600}
PUBLISHER_GLBX = 1
SYMBOLOGY_DOCS = "https://databento.com/docs/standards-and-conventions/common-symbology"

# root -> (family whose price path it follows, centre price, amplitude scale, typical 1m volume)
ROOTS: dict[str, tuple[str, int, float, int]] = {
    "ES": ("ES", 5500, 1.0, 900),
    "MES": ("ES", 5500, 1.0, 2400),
    "NQ": ("NQ", 19500, 3.0, 450),
    "MNQ": ("NQ", 19500, 3.0, 1800),
}
_CONTINUOUS = re.compile(r"([A-Z]{1,4})\.[cvn]\.[0-9]{1,2}")
_CONTRACT = re.compile(r"([A-Z]{1,4}?)[FGHJKMNQUVXZ][0-9]{1,2}")


# -- synthetic market ------------------------------------------------------------------------------
def root_of(symbol: str, stype_in: str = "") -> str | None:
    """The product root of a continuous (MES.c.0) or contract (MESZ5) symbol the stub knows, checked
    against stype_in when given; None when the symbol would not resolve."""
    continuous = _CONTINUOUS.fullmatch(symbol)
    contract = _CONTRACT.fullmatch(symbol)
    if continuous and stype_in in ("", "continuous"):
        root = continuous.group(1)
    elif contract and stype_in in ("", "raw_symbol"):
        root = contract.group(1)
    else:
        return None
    return root if root in ROOTS else None


@lru_cache(maxsize=100_000)
def _chicago_hour(hour: int) -> tuple[int, int]:
    """(weekday, hour) in Chicago of the UTC hour `hour` (hours since the epoch). Chicago is a whole
    number of hours from UTC, so the minutes of an hour are the same in both."""
    local = (EPOCH + timedelta(hours=hour)).astimezone(CHICAGO)
    return local.weekday(), local.hour


def _open_hour(hour: int) -> bool:
    weekday, local_hour = _chicago_hour(hour)  # Monday = 0
    if weekday == 5:
        return False
    if weekday == 6:
        return local_hour >= 17
    if weekday == 4:
        return local_hour < 16
    return not 16 <= local_hour < 17


def globex_open(ts: datetime) -> bool:
    """CME Globex equity futures trade at `ts` (a minute's open time): Sunday 17:00 CT to Friday
    16:00 CT, except the daily 16:00-17:00 CT halt. Holidays are not modelled."""
    return _open_hour(int((ts - EPOCH).total_seconds()) // 3600)


@lru_cache(maxsize=400_000)
def _unit_values(family: str, minute: int) -> tuple[float, float, float, float]:
    """Four deterministic values in [0, 1) for (family, minute)."""
    a, b, c, d = struct.unpack(">4I", hashlib.blake2b(f"{family}:{minute}".encode(), digest_size=16).digest())
    return a / 2**32, b / 2**32, c / 2**32, d / 2**32


@lru_cache(maxsize=16)
def _phases(family: str) -> tuple[float, ...]:
    out = []
    for n in range(4):
        digest = hashlib.blake2b(f"{family}:phase:{n}".encode(), digest_size=4).digest()
        out.append(int.from_bytes(digest, "big") / 2**32 * 2 * math.pi)
    return tuple(out)


_TAU = 2 * math.pi


@lru_cache(maxsize=400_000)
def _mid_ticks(root: str, minute: int) -> int:
    """The price at the start of `minute` (minutes since the epoch), in ticks: a smooth path of a few
    cycles (quarter, week, day, ~1.5 h) plus a small per-minute jitter, so close(t) = open(t+1)."""
    family, centre, scale, _ = ROOTS[root]
    p0, p1, p2, p3 = _phases(family)
    u = _unit_values(family, minute)[0]
    x = _TAU * minute
    points = (
        350 * math.sin(x / 129_600 + p0)
        + 100 * math.sin(x / 10_080 + p1)
        + 25 * math.sin(x / 1_440 + p2)
        + 6 * math.sin(x / 97 + p3)
        + 3 * (u - 0.5)
    )
    return round((centre + scale * points) * 4)


@dataclass(frozen=True)
class Bar:
    """One synthetic bar; prices in fixed-point units (1e-9), ts the bar's open time."""

    ts: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int

    @property
    def ts_ns(self) -> int:
        delta = self.ts - EPOCH
        return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000


def _minute_ticks(root: str, minute: int) -> tuple[int, int, int, int, int]:
    """(open, high, low, close, volume) of one minute, prices in ticks."""
    family, _, scale, typical_volume = ROOTS[root]
    _, up, down, size = _unit_values(family, minute)
    o, c = _mid_ticks(root, minute), _mid_ticks(root, minute + 1)
    reach = max(1, round(4 * scale))
    weekday, local_hour = _chicago_hour(minute // 60)
    regular_hours = weekday < 5 and (8, 30) <= (local_hour, minute % 60) < (15, 0)
    volume = max(1, round(typical_volume * (3 if regular_hours else 1) * (0.4 + size)))
    return o, max(o, c) + int(up * reach), min(o, c) - int(down * reach), c, volume


@lru_cache(maxsize=400_000)
def _bar(root: str, minute: int, length: int) -> Bar:
    """The bar of `length` minutes opening at `minute`: a 1h bar is exactly the aggregate of its 1m bars."""
    parts = [_minute_ticks(root, minute + i) for i in range(length)]
    return Bar(
        ts=EPOCH + timedelta(minutes=minute),
        open=parts[0][0] * TICK_PX,
        high=max(p[1] for p in parts) * TICK_PX,
        low=min(p[2] for p in parts) * TICK_PX,
        close=parts[-1][3] * TICK_PX,
        volume=sum(p[4] for p in parts),
    )


def synthetic_bars(symbol: str, seconds: int, start: datetime, end: datetime) -> list[Bar]:
    """Deterministic bars of `seconds` (60 or 3600) for [start, end), only while Globex trades. 1h
    bars aggregate their 1m bars exactly. [] for a symbol the stub does not know."""
    root = root_of(symbol)
    if root is None or end <= start:
        return []
    step = seconds // 60
    first = math.ceil((start - EPOCH).total_seconds() / seconds) * step  # minutes since the epoch
    stop = math.ceil((end - EPOCH).total_seconds() / 60)  # first minute not wanted
    out: list[Bar] = []
    for minute in range(first, stop, step):
        # Sessions open and close on whole hours in Chicago, so an hour is all open or all closed.
        if not _open_hour(minute // 60):
            continue
        out.append(_bar(root, minute, step))
    return out


def instrument_id(symbol: str) -> int:
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=4).digest(), "big") % 90_000_000 + 1_000_000


def parse_time(value: str) -> datetime:
    """A Databento time parameter: UNIX ns, a date, or ISO 8601 (UTC unless a zone is given; up to
    nanoseconds, which are cut to microseconds)."""
    value = value.strip()
    if value.isdigit():
        ns = int(value)
        return EPOCH + timedelta(microseconds=ns // 1000)
    text = value.replace("Z", "+00:00")
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)", text)
    if match:
        text = f"{match.group(1)}.{match.group(2)[:6].ljust(6, '0')}{match.group(3)}"
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# -- the stub ----------------------------------------------------------------------------------
def _detail(case: str, message: str, status: int, **payload: Any) -> dict[str, Any]:
    return {
        "detail": {"case": case, "message": message, "status_code": status, "docs": SYMBOLOGY_DOCS, "payload": payload}
    }


class DatabentoStub(StubServer):
    good_env = {"DATABENTO_API_KEY": GOOD_KEY}

    def __init__(self) -> None:
        super().__init__()
        self.stale_lag = timedelta(minutes=30)
        self.available_end: datetime | None = None
        self.records: list[dict[str, Any] | str] | None = None

    def _key(self, request: StubRequest) -> str:
        auth = request.header("authorization")
        if not auth.startswith("Basic "):
            return ""
        user, _, _ = base64.b64decode(auth[6:]).decode().partition(":")
        return user

    def get_range_requests(self) -> list[dict[str, str]]:
        out = []
        for request in self.requests:
            if request.path == "/v0/timeseries.get_range":
                fields = request.form() if request.method == "POST" else request.query
                out.append({name: values[0] for name, values in fields.items()})
        return out

    def handle(self, request: StubRequest) -> StubResponse:
        if self.mode == "rate_limit":
            return StubResponse(429, {"detail": "Too many requests."}, {"Retry-After": "1"})
        if self.mode == "bad_key" or self._key(request) != GOOD_KEY:
            return StubResponse(401, {"detail": {"case": "auth_invalid_api_key", "message": "Invalid API key."}})
        if request.path == "/v0/metadata.list_datasets" and request.method == "GET":
            if self.mode == "malformed":
                return StubResponse(200, "<html>gateway maintenance</html>")
            return StubResponse(200, DATASETS)
        if request.path == "/v0/timeseries.get_range" and request.method in ("GET", "POST"):
            fields = request.form() if request.method == "POST" else request.query
            return self._get_range({name: values[0] for name, values in fields.items()})
        return StubResponse(404, {"detail": f"Not found: {request.path}"})

    # -- timeseries.get_range ------------------------------------------------------------------
    def _get_range(self, p: dict[str, str]) -> StubResponse:
        for name in ("dataset", "symbols", "schema", "start"):
            if not p.get(name):
                return StubResponse(400, {"detail": f"Missing required parameter `{name}`."})
        if p["dataset"] not in DATASETS:
            return StubResponse(400, {"detail": f"Invalid dataset `{p['dataset']}`."})
        schema = p["schema"]
        if schema not in RTYPES:
            return StubResponse(400, {"detail": f"The stub serves schemas {', '.join(RTYPES)} only, not {schema}."})
        if p.get("encoding", "dbn") != "json" or p.get("compression", "none") != "none":
            return StubResponse(400, {"detail": "The stub serves encoding=json with compression=none only."})
        try:
            start = parse_time(p["start"])
            end = parse_time(p["end"]) if p.get("end") else datetime.now(UTC)
        except ValueError:
            return StubResponse(400, {"detail": "Invalid `start` or `end`."})
        if end <= start:
            return StubResponse(422, _detail("invalid_time_range", "`start` must be before `end`.", 422))
        symbol, stype_in = p["symbols"], p.get("stype_in", "raw_symbol")
        payload = {"dataset": p["dataset"], "symbols": [symbol], "stype_in": stype_in, "start": p["start"]}
        if self.mode == "lagging":
            available = self.available_end or (datetime.now(UTC) - self.stale_lag).replace(second=0, microsecond=0)
            if end > available:
                message = (
                    f"The dataset {p['dataset']} has data available up to '{available.isoformat(sep=' ')}'. "
                    f"The `end` in the query ('{end.isoformat(sep=' ')}') is after the available range. "
                    "Try requesting with an earlier `end`."
                )
                return StubResponse(422, _detail("data_end_after_available_end", message, 422, **payload))
        if self.mode == "unknown_symbol" or "," in symbol or root_of(symbol, stype_in) is None:
            message = "None of the symbols could be resolved"
            return StubResponse(422, _detail("symbology_invalid_request", message, 422, **payload))
        if self.mode == "empty":
            return StubResponse(200, b"")
        status = 200
        if self.mode == "stale":
            end = min(end, end - self.stale_lag)
        elif self.mode == "partial":
            status, end = 206, start + (end - start) / 2
        bars = synthetic_bars(symbol, SECONDS[schema], start, end)
        if self.records is not None and self.mode == "ok":
            lines = [r if isinstance(r, str) else json.dumps(r) for r in self.records]
        else:
            pretty_px, pretty_ts = p.get("pretty_px") == "true", p.get("pretty_ts") == "true"
            records = [self._record(b, RTYPES[schema], instrument_id(symbol), pretty_px, pretty_ts) for b in bars]
            if self.mode == "malformed":
                if records:
                    del records[0]["close"]
                else:
                    return StubResponse(200, b"<html>gateway maintenance</html>\n")
            lines = [json.dumps(r, separators=(",", ":")) for r in records]
        body = "".join(f"{line}\n" for line in lines).encode()
        return StubResponse(status, body)

    @staticmethod
    def _record(bar: Bar, rtype: int, iid: int, pretty_px: bool, pretty_ts: bool) -> dict[str, Any]:
        def px(value: int) -> str:
            return f"{value // PX_SCALE}.{value % PX_SCALE:09d}" if pretty_px else str(value)

        ts = bar.ts.strftime("%Y-%m-%dT%H:%M:%S.000000000Z") if pretty_ts else str(bar.ts_ns)
        return {
            "hd": {"ts_event": ts, "rtype": rtype, "publisher_id": PUBLISHER_GLBX, "instrument_id": iid},
            "open": px(bar.open),
            "high": px(bar.high),
            "low": px(bar.low),
            "close": px(bar.close),
            "volume": str(bar.volume),
        }
