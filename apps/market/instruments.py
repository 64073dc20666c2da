"""The instruments TradeOps trades, as data: contract specs of the CME Group roots, their trading
hours and how each market-data provider names them.

Specs (CME Group contract specifications):

| root | exchange (MIC) | tick size | point value (USD per 1.00) | tick value | contract months |
|------|----------------|-----------|----------------------------|------------|-----------------|
| ES   | XCME           | 0.25      | 50                         | 12.50      | H M U Z         |
| MES  | XCME           | 0.25      | 5                          | 1.25       | H M U Z         |
| NQ   | XCME           | 0.25      | 20                         | 5.00       | H M U Z         |
| MNQ  | XCME           | 0.25      | 2                          | 0.50       | H M U Z         |
| M2K  | XCME           | 0.10      | 5                          | 0.50       | H M U Z         |
| MYM  | XCBT           | 1         | 0.50                       | 0.50       | H M U Z         |
| MGC  | XCEC (COMEX)   | 0.10      | 10                         | 1.00       | G J M Q V Z     |
| MCL  | XNYM (NYMEX)   | 0.01      | 100                        | 1.00       | every month     |

Provider symbols:
- Databento: the continuous front contract by calendar, `<ROOT>.c.0` (stype_in `continuous`), for
  every instrument. Databento's own roll rule decides which contract that is (PROVIDERS.md §3).
- Polygon/Massive futures API: a contract ticker `<ROOT><month code><last digit of the year>`
  (`ESZ5`), for the quarterly equity-index contracts only. Roll rule: the front contract is the
  nearest quarterly contract whose roll date has not come; the roll date is the Thursday 8 days
  before the third-Friday expiry (the CME equity-index roll convention, when volume moves to the
  next contract), counted in CME trade dates (a session that opens at 17:00 CT belongs to the next
  calendar day's trade date), so the switch happens at the 17:00 CT open on the eve of the roll
  Thursday. Databento's `.c.0` follows expirations rather than this roll date, so in the week
  between the roll date and expiry the two providers name different contracts; a bot keeps one
  provider. MGC and MCL have monthly listings with product-specific last trading days that are
  not modelled here: Polygon/Massive is refused for them with a clear error (use Databento).

The bots catalogue (apps/trading/catalogue.py INSTRUMENTS) lists the same roots; market is the lower
app, so the catalogue may read INSTRUMENTS from here, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from apps.market.exceptions import ProviderSymbolUnsupported

CHICAGO = ZoneInfo("America/Chicago")

# The bar timeframes TradeOps serves, in seconds. 1m and 1h come from providers; 5m and 15m are
# aggregated from 1m by the market app (apps.integrations.bars.NATIVE_TIMEFRAMES).
TIMEFRAME_SECONDS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600}
TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_SECONDS)

MONTH_CODES = "FGHJKMNQUVXZ"  # January .. December


class TradingHours(StrEnum):
    """The trading-hours class: which calendar and which intraday guards apply (apps.market.hours)."""

    CME_EQUITY_INDEX = "cme_equity_index"
    CME_METALS = "cme_metals"
    CME_ENERGY = "cme_energy"


@dataclass(frozen=True)
class InstrumentSpec:
    root: str
    name: str
    exchange: str  # ISO 10383 MIC of the listing exchange
    tick_size: Decimal
    point_value: Decimal  # USD per 1.00 of price, per contract
    calendar: str  # pandas-market-calendars name
    hours: TradingHours
    contract_months: str  # month codes of the listed contracts the front month is chosen from
    polygon_supported: bool = False
    roll_days_before_expiry: int = 8

    @property
    def tick_value(self) -> Decimal:
        """USD per tick per contract."""
        return self.tick_size * self.point_value

    @property
    def databento_symbol(self) -> str:
        return f"{self.root}.c.0"


def _equity(root: str, name: str, exchange: str, tick: str, point: str) -> InstrumentSpec:
    return InstrumentSpec(
        root=root,
        name=name,
        exchange=exchange,
        tick_size=Decimal(tick),
        point_value=Decimal(point),
        calendar="CME Globex Equity",
        hours=TradingHours.CME_EQUITY_INDEX,
        contract_months="HMUZ",
        polygon_supported=True,
    )


INSTRUMENTS: dict[str, InstrumentSpec] = {
    s.root: s
    for s in (
        _equity("MES", "Micro E-mini S&P 500", "XCME", "0.25", "5"),
        _equity("MNQ", "Micro E-mini Nasdaq-100", "XCME", "0.25", "2"),
        _equity("M2K", "Micro E-mini Russell 2000", "XCME", "0.10", "5"),
        _equity("MYM", "Micro E-mini Dow", "XCBT", "1", "0.50"),
        InstrumentSpec(
            root="MGC",
            name="Micro Gold",
            exchange="XCEC",
            tick_size=Decimal("0.10"),
            point_value=Decimal("10"),
            calendar="CMEGlobex_Gold",
            hours=TradingHours.CME_METALS,
            contract_months="GJMQVZ",
        ),
        InstrumentSpec(
            root="MCL",
            name="Micro WTI Crude Oil",
            exchange="XNYM",
            tick_size=Decimal("0.01"),
            point_value=Decimal("100"),
            calendar="CMEGlobex_MCL",
            hours=TradingHours.CME_ENERGY,
            contract_months=MONTH_CODES,
        ),
        _equity("ES", "E-mini S&P 500", "XCME", "0.25", "50"),
        _equity("NQ", "E-mini Nasdaq-100", "XCME", "0.25", "20"),
    )
}


def get(instrument: str | InstrumentSpec) -> InstrumentSpec | None:
    if isinstance(instrument, InstrumentSpec):
        return instrument
    return INSTRUMENTS.get(instrument) if isinstance(instrument, str) else None


def from_symbol(symbol: str) -> InstrumentSpec | None:
    """The instrument for a root (`MES`) or a Databento continuous symbol (`MES.c.0`)."""
    spec = INSTRUMENTS.get(symbol.strip().upper())
    if spec is not None:
        return spec
    return next((s for s in INSTRUMENTS.values() if s.databento_symbol == symbol.strip()), None)


@dataclass(frozen=True)
class Contract:
    root: str
    year: int
    month: int
    expiry: date
    roll_date: date  # first CME trade date on which the next contract is the front one

    @property
    def code(self) -> str:
        return MONTH_CODES[self.month - 1]

    @property
    def polygon_ticker(self) -> str:
        """Massive's futures ticker: root, month code, last digit of the year (ESZ5)."""
        return f"{self.root}{self.code}{self.year % 10}"

    @property
    def rolls_at(self) -> datetime:
        """The instant the next contract becomes the front one: 17:00 CT on the eve of the roll date."""
        eve = self.roll_date - timedelta(days=1)
        return datetime.combine(eve, time(17), tzinfo=CHICAGO).astimezone(UTC)


def third_friday(year: int, month: int) -> date:
    fifteenth = date(year, month, 15)
    return fifteenth + timedelta(days=(4 - fifteenth.weekday()) % 7)


def trade_date(at: datetime) -> date:
    """The CME trade date of an instant: a session opening at 17:00 CT belongs to the next day."""
    if at.tzinfo is None:
        raise ValueError("trade_date needs a timezone-aware datetime")
    return (at.astimezone(CHICAGO) + timedelta(hours=7)).date()


def trade_date_start(at: datetime) -> datetime:
    """The start of the CME trade date `at` belongs to: 17:00 CT the evening before (daily limits reset then)."""
    return datetime.combine(trade_date(at) - timedelta(days=1), time(17), tzinfo=CHICAGO)


def _quarterly(spec: InstrumentSpec, year: int, month: int) -> Contract:
    expiry = third_friday(year, month)
    return Contract(spec.root, year, month, expiry, expiry - timedelta(days=spec.roll_days_before_expiry))


def front_contract(instrument: str | InstrumentSpec, at: datetime) -> Contract:
    """The front quarterly contract at `at` under the roll rule in the module docstring.
    Only the quarterly equity-index contracts are modelled; other roots raise ValueError."""
    spec = get(instrument)
    if spec is None:
        raise ValueError(f"unknown instrument {instrument!r}")
    if spec.hours is not TradingHours.CME_EQUITY_INDEX:
        raise ValueError(f"{spec.root}: only the quarterly equity-index contracts are modelled")
    day = trade_date(at)
    months = [MONTH_CODES.index(c) + 1 for c in spec.contract_months]
    for year in (day.year, day.year + 1):
        for month in months:
            if (year, month) < (day.year, day.month):
                continue
            contract = _quarterly(spec, year, month)
            if day < contract.roll_date:
                return contract
    raise AssertionError("unreachable: a quarterly contract rolls within 15 months")  # pragma: no cover


def provider_symbol(instrument: str | InstrumentSpec, provider: str, at: datetime) -> str:
    """The provider's symbol for the instrument at `at` (Databento continuous, or a Polygon ticker)."""
    return provider_symbol_ranges(instrument, provider, at, at + timedelta(microseconds=1))[0][0]


def provider_symbol_ranges(
    instrument: str | InstrumentSpec, provider: str, start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime]]:
    """[start, end) cut where the provider's symbol changes: [(symbol, start, end), ...] in order.
    Raises ProviderSymbolUnsupported when the provider cannot serve the instrument."""
    spec = get(instrument)
    if spec is None:
        raise ValueError(f"unknown instrument {instrument!r}")
    if provider == "databento":
        return [(spec.databento_symbol, start, end)]
    if provider != "polygon":
        raise ProviderSymbolUnsupported(spec.root, provider, "it is not a market-data provider TradeOps maps.")
    if not spec.polygon_supported:
        raise ProviderSymbolUnsupported(
            spec.root,
            provider,
            "its monthly contracts and their last trading days are not modelled for Polygon/Massive tickers.",
        )
    pieces: list[tuple[str, datetime, datetime]] = []
    cursor = start
    while cursor < end:
        contract = front_contract(spec, cursor)
        stop = min(end, contract.rolls_at)
        pieces.append((contract.polygon_ticker, cursor, stop))
        cursor = stop
    return pieces
