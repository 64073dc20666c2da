"""Reading bar files for `manage.py import_bars`: CSV and Databento DBN (plain or zstd-compressed).
Pure: a file in, MarketBars out, or ImportFileInvalid naming every bad line (nothing half-read).

CSV
- One header line. Columns, any order, case-insensitive: the bar open time as `ts`, `timestamp` or
  `ts_event`; `open`, `high`, `low`, `close`, `volume`. Other columns are ignored, except `symbol`
  (when present, one symbol per file) and `rtype` (below).
- Time: ISO 8601 with a UTC offset or `Z` (`2025-01-02T14:30:00Z`, `2025-01-02 08:30:00-06:00`), or
  an integer Unix epoch in seconds, milliseconds, microseconds or nanoseconds, told apart by size
  (seconds < 1e11, ms < 1e14, µs < 1e17, else ns; unambiguous for 1973–5138). A time without an
  offset is refused: it could be exchange time or UTC.
- Prices: decimal numbers (`4200.25`). A Databento CSV export (it has an `rtype` column) writes
  prices as fixed-point integers in units of 1e-9 unless it was made with pretty_px: there an
  integer price is read as 1e-9 units; `rtype` must match the timeframe (33 = 1m, 34 = 1h).
- Volume: a whole number >= 0.
- Every row: time aligned to the timeframe (UTC multiples), low <= open, close <= high, no time
  twice.

DBN
- Decoded with databento-dbn (zstd detected from the file's magic bytes). The schema must be
  ohlcv-1m or ohlcv-1h and match the timeframe; every record must be an OHLCV record; the file
  must name one symbol (continuous `MES.c.0`, parent `MES.FUT` or raw `MESZ5`) of the instrument
  imported; prices are fixed-point int64 in units of 1e-9 (UNDEF_PRICE refused); `ts_event` is
  the bar open time in UTC nanoseconds.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from apps.market.bars import MarketBar, quantize
from apps.market.instruments import TIMEFRAME_SECONDS, InstrumentSpec

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
FIXED_SCALE = 9  # 1 unit = 1e-9
UNDEF_PRICE = 2**63 - 1
DBN_RTYPES = {33: "1m", 34: "1h"}  # ohlcv-1m, ohlcv-1h
DBN_SCHEMAS = {"ohlcv-1m": "1m", "ohlcv-1h": "1h"}
TIME_COLUMNS = ("ts", "timestamp", "ts_event")
MAX_PROBLEMS = 50
_RAW_SYMBOL = re.compile(r"^([A-Z0-9]+?)[FGHJKMNQUVXZ][0-9]{1,2}$")


class ImportFileInvalid(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:MAX_PROBLEMS])
        more = f"\n  … and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        super().__init__(f"{len(problems)} problem(s); nothing was imported:\n{shown}{more}")


@dataclass
class ParsedFile:
    bars: list[MarketBar]
    symbol: str | None = None  # the symbol the file names, if any
    notes: list[str] = field(default_factory=list)


def parse_epoch(text: str) -> datetime:
    value = int(text)
    if value < 0:
        raise ValueError("a negative epoch")
    if value < 10**11:
        return datetime.fromtimestamp(value, UTC)
    for digits, per_second in ((10**14, 10**3), (10**17, 10**6), (10**20, 10**9)):
        if value < digits:
            seconds, rest = divmod(value, per_second)
            if rest:
                raise ValueError("not on a whole second")
            return datetime.fromtimestamp(seconds, UTC)
    raise ValueError("too large for an epoch")


def parse_time(text: str) -> datetime:
    text = text.strip()
    if text.isdigit():
        return parse_epoch(text)
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("no UTC offset (write Z or +00:00: exchange time and UTC cannot be told apart)")
    return value.astimezone(UTC)


def _check_bar(bar: MarketBar, tf: int) -> str | None:
    if int(bar.ts.timestamp()) % tf or bar.ts.microsecond:
        return f"time {bar.ts.isoformat()} is not aligned to the timeframe ({tf} s, UTC multiples)"
    if not bar.low <= min(bar.open, bar.close) or not bar.high >= max(bar.open, bar.close):
        return "open/close outside [low, high]"
    if bar.volume < 0:
        return "negative volume"
    return None


def _root_of(symbol: str) -> str:
    symbol = symbol.strip().upper()
    if "." in symbol:
        return symbol.split(".", 1)[0]
    match = _RAW_SYMBOL.match(symbol)
    return match.group(1) if match else symbol


def parse_csv(path: Path, *, instrument: InstrumentSpec, timeframe: str) -> ParsedFile:
    tf = TIMEFRAME_SECONDS[timeframe]
    problems: list[str] = []
    bars: list[MarketBar] = []
    seen: dict[datetime, int] = {}
    symbols: set[str] = set()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ImportFileInvalid(["line 1: the file is empty (a header line is needed)"])
        names = [h.strip().lower() for h in header]
        time_col = next((names.index(n) for n in TIME_COLUMNS if n in names), None)
        missing = [n for n in ("open", "high", "low", "close", "volume") if n not in names]
        if time_col is None:
            missing.insert(0, "ts (or timestamp, ts_event)")
        if missing:
            raise ImportFileInvalid([f"line 1: the header has no {', '.join(missing)} column(s); it has: {header}"])
        col = {n: names.index(n) for n in ("open", "high", "low", "close", "volume")}
        rtype_col = names.index("rtype") if "rtype" in names else None
        symbol_col = names.index("symbol") if "symbol" in names else None
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                problems.append(f"line {line}: {len(row)} fields, the header has {len(names)}")
                continue
            try:
                ts = parse_time(row[time_col])
            except ValueError as exc:
                problems.append(f"line {line}: time {row[time_col]!r}: {exc}")
                continue
            try:
                prices = [_price(row[col[n]], fixed=rtype_col is not None) for n in ("open", "high", "low", "close")]
            except (InvalidOperation, ValueError) as exc:
                problems.append(f"line {line}: price: {exc}")
                continue
            volume_text = row[col["volume"]].strip()
            if not volume_text.isdigit():
                problems.append(f"line {line}: volume {volume_text!r} is not a whole number >= 0")
                continue
            if rtype_col is not None and DBN_RTYPES.get(_int_or_none(row[rtype_col])) != timeframe:
                problems.append(f"line {line}: rtype {row[rtype_col]!r} is not {timeframe} OHLCV")
                continue
            if symbol_col is not None and row[symbol_col].strip():
                symbols.add(row[symbol_col].strip())
            bar = MarketBar(ts, *prices, int(volume_text))
            problem = _check_bar(bar, tf)
            if problem:
                problems.append(f"line {line}: {problem}")
                continue
            if ts in seen:
                problems.append(f"line {line}: time {ts.isoformat()} repeats line {seen[ts]}")
                continue
            seen[ts] = line
            bars.append(bar)
    symbol = _one_symbol(symbols, instrument, problems)
    if not bars and not problems:
        problems.append("the file has no bars")
    if problems:
        raise ImportFileInvalid(problems)
    return ParsedFile(bars=sorted(bars, key=lambda b: b.ts), symbol=symbol)


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _price(text: str, *, fixed: bool) -> Decimal:
    text = text.strip()
    if fixed and re.fullmatch(r"-?[0-9]+", text):
        units = int(text)
        if units == UNDEF_PRICE:
            raise ValueError("undefined price (UNDEF_PRICE)")
        return quantize(Decimal(units).scaleb(-FIXED_SCALE))
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return quantize(value)


def _one_symbol(symbols: set[str], instrument: InstrumentSpec, problems: list[str]) -> str | None:
    if not symbols:
        return None
    if len(symbols) > 1:
        problems.append(f"the file holds several symbols ({', '.join(sorted(symbols))}); import one per file")
        return None
    (symbol,) = symbols
    if _root_of(symbol) != instrument.root:
        problems.append(f"the file's symbol {symbol} is not {instrument.root}")
    return symbol


def parse_dbn(path: Path, *, instrument: InstrumentSpec, timeframe: str) -> ParsedFile:
    import databento_dbn as dbn

    tf = TIMEFRAME_SECONDS[timeframe]
    data = path.read_bytes()
    compression = dbn.Compression.ZSTD if data[:4] == ZSTD_MAGIC else dbn.Compression.NONE
    try:
        decoder = dbn.DBNDecoder(compression=compression)
        decoder.write(data)
        records = decoder.decode()
    except Exception as exc:  # the decoder raises its own error types (DBNError, ValueError, ...)
        raise ImportFileInvalid([f"not a readable DBN file: {exc}"]) from exc
    if not records or not isinstance(records[0], dbn.Metadata):
        raise ImportFileInvalid(["not a DBN file with metadata"])
    meta, body = records[0], records[1:]
    problems: list[str] = []
    schema = str(meta.schema) if meta.schema is not None else None
    if DBN_SCHEMAS.get(schema or "") != timeframe:
        problems.append(f"the file's schema is {schema}, not the {timeframe} OHLCV schema (ohlcv-1m or ohlcv-1h)")
    symbols = set(meta.symbols or [])
    symbol = _one_symbol(symbols, instrument, problems) if symbols else None
    bars: list[MarketBar] = []
    seen: dict[datetime, int] = {}
    for n, record in enumerate(body, start=1):
        if not isinstance(record, dbn.OHLCVMsg):
            problems.append(f"record {n}: a {type(record).__name__}, not an OHLCV record")
            continue
        if DBN_RTYPES.get(int(record.rtype.value)) != timeframe:
            problems.append(f"record {n}: rtype {record.rtype} is not {timeframe} OHLCV")
            continue
        units = (record.open, record.high, record.low, record.close)
        if any(u == UNDEF_PRICE for u in units):
            problems.append(f"record {n}: undefined price (UNDEF_PRICE)")
            continue
        seconds, rest = divmod(int(record.ts_event), 10**9)
        if rest:
            problems.append(f"record {n}: ts_event {record.ts_event} is not on a whole second")
            continue
        ts = datetime.fromtimestamp(seconds, UTC)
        prices = [quantize(Decimal(u).scaleb(-FIXED_SCALE)) for u in units]
        bar = MarketBar(ts, *prices, int(record.volume))
        problem = _check_bar(bar, tf)
        if problem:
            problems.append(f"record {n}: {problem}")
            continue
        if ts in seen:
            problems.append(
                f"record {n}: time {ts.isoformat()} repeats record {seen[ts]} (several instruments in one file?)"
            )
            continue
        seen[ts] = n
        bars.append(bar)
    if not bars and not problems:
        problems.append("the file has no bars")
    if problems:
        raise ImportFileInvalid(problems)
    return ParsedFile(bars=sorted(bars, key=lambda b: b.ts), symbol=symbol)


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".dbn", ".dbn.zst")):
        return "dbn"
    if name.endswith(".csv"):
        return "csv"
    with path.open("rb") as handle:
        head = handle.read(4)
    return "dbn" if head[:3] == b"DBN" or head == ZSTD_MAGIC else "csv"
