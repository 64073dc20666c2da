"""Market hours: is an instrument's market open at an instant, why not, and when it opens or closes.

Sessions, holidays and early closes come from pandas-market-calendars (the instrument's calendar:
"CME Globex Equity" for the equity-index roots, "CMEGlobex_Gold" / "CMEGlobex_MCL" for MGC / MCL;
PROVIDERS.md §7). On top of the calendar, explicit guards remove from every session:
- the daily maintenance halt, 16:00–17:00 America/Chicago (the calendar has it as the gap between
  sessions; the guard keeps it closed whatever a calendar version says);
- for the equity-index class, the 15:15–15:30 CT pause on trade dates before 2021-06-28, when CME
  eliminated it (CME notice 20210621; so replays of older history expect no bars in it).

Speed: the tick loop asks for every bot at every bar. A calendar's schedule is computed once per
process (about 50 ms for 15 years) into sorted lists of open intervals in epoch seconds; a question
is then a bisect: `is_open` costs about a microsecond. The cache is extended (rebuilt wider) the
first time an instant outside it is asked about.

Reasons for closed (ClosedReason), checked in this order:
- weekend: from Friday 16:00 CT to Sunday 17:00 CT;
- daily_halt: inside a session's intraday halt or pause, or 16:00–17:00 CT when trading resumes
  at 17:00 the same day;
- early_close: on the calendar date of a session that closed early (before 16:00 CT), after it did;
- holiday: anything else (no session that day, e.g. Christmas, New Year's Day, Good Friday).
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from apps.market.exceptions import MarketClosed
from apps.market.instruments import CHICAGO, INSTRUMENTS, InstrumentSpec, TradingHours
from apps.market.instruments import get as instrument_get

REGULAR_CLOSE = time(16, 0)  # CT, every CME Globex product TradeOps trades
HALT = (time(16, 0), time(17, 0))  # CT, the daily maintenance halt
LEGACY_EQUITY_PAUSE = (time(15, 15), time(15, 30))  # CT, equity index, trade dates before the date below
LEGACY_EQUITY_PAUSE_UNTIL = date(2021, 6, 28)
_FIRST_YEAR = 2000  # earliest year the cache will extend to
_INITIAL_YEARS_BACK = 8


class ClosedReason(StrEnum):
    WEEKEND = "weekend"
    DAILY_HALT = "daily_halt"
    HOLIDAY = "holiday"
    EARLY_CLOSE = "early_close"


@dataclass(frozen=True, slots=True)
class MarketState:
    """The market at one instant. Open: `opened_at` is when the current stretch of trading began and
    `next_close` when it stops (halt, close or early close). Closed: `reason` says why and
    `next_open` / `next_close` bound the next stretch. `trade_date` is the CME trade date of the
    session in progress, or of the next one when closed."""

    instrument: str
    at: datetime
    is_open: bool
    reason: ClosedReason | None
    trade_date: date | None
    opened_at: datetime | None
    next_open: datetime | None
    next_close: datetime | None


class _Schedule:
    """One calendar's open intervals in [first, last) epoch seconds, with the session each belongs to."""

    __slots__ = ("first", "last", "opens", "closes", "session", "s_close", "s_date", "s_early")

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self.last = last
        self.opens: list[int] = []
        self.closes: list[int] = []
        self.session: list[int] = []  # interval -> index of its session
        self.s_close: list[int] = []  # session -> scheduled close
        self.s_date: list[date] = []  # session -> trade date
        self.s_early: list[bool] = []  # session -> closed before 16:00 CT


_CACHE: dict[tuple[str, TradingHours], _Schedule] = {}
_LOCK = threading.Lock()


def _epoch(d: date, t: time) -> int:
    return int(datetime.combine(d, t, tzinfo=CHICAGO).timestamp())


def _build(calendar: str, hours: TradingHours, first_year: int, last_year: int) -> _Schedule:
    import pandas_market_calendars as mcal  # heavy (pandas): imported on first use only

    frame = mcal.get_calendar(calendar).schedule(f"{first_year}-01-01", f"{last_year}-12-31")
    sched = _Schedule(
        int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp()),
        int(datetime(last_year, 12, 31, tzinfo=UTC).timestamp()),
    )
    opens = [int(ts.timestamp()) for ts in frame["market_open"]]
    closes = [int(ts.timestamp()) for ts in frame["market_close"]]
    for n, (day, o, c) in enumerate(zip(frame.index, opens, closes, strict=True)):
        trade_day = day.date()
        close_local = datetime.fromtimestamp(c, CHICAGO)
        sched.s_close.append(c)
        sched.s_date.append(trade_day)
        sched.s_early.append(close_local.time() < REGULAR_CLOSE)
        # Guards: remove the halt (and the legacy pause) on every local date the session touches.
        cuts: list[tuple[int, int]] = []
        local_day = datetime.fromtimestamp(o, CHICAGO).date()
        while local_day <= close_local.date():
            cuts.append((_epoch(local_day, HALT[0]), _epoch(local_day, HALT[1])))
            if (
                hours is TradingHours.CME_EQUITY_INDEX
                and local_day < LEGACY_EQUITY_PAUSE_UNTIL
                and local_day.weekday() < 5
            ):
                cuts.append((_epoch(local_day, LEGACY_EQUITY_PAUSE[0]), _epoch(local_day, LEGACY_EQUITY_PAUSE[1])))
            local_day += timedelta(days=1)
        start = o
        for cut_start, cut_end in sorted(cuts):
            if cut_end <= start or cut_start >= c:
                continue
            if cut_start > start:
                sched.opens.append(start)
                sched.closes.append(cut_start)
                sched.session.append(n)
            start = max(start, cut_end)
        if start < c:
            sched.opens.append(start)
            sched.closes.append(c)
            sched.session.append(n)
    return sched


def _schedule(spec: InstrumentSpec, t: float) -> _Schedule:
    key = (spec.calendar, spec.hours)
    sched = _CACHE.get(key)
    if sched is not None and sched.first <= t < sched.last:
        return sched
    with _LOCK:
        sched = _CACHE.get(key)
        if sched is not None and sched.first <= t < sched.last:
            return sched
        year = datetime.fromtimestamp(t, UTC).year
        today = datetime.now(UTC).year
        first = min(year - 1, today - _INITIAL_YEARS_BACK) if sched is None else min(year - 1, _year(sched.first))
        last = max(year + 1, today + 2) if sched is None else max(year + 1, _year(sched.last))
        first = max(first, _FIRST_YEAR)
        if not first <= year <= last:
            raise ValueError(f"market hours are known from {_FIRST_YEAR} on; asked about {year}")
        sched = _build(spec.calendar, spec.hours, first, last)
        _CACHE[key] = sched
        return sched


def warm_up(roots: list[str] | None = None) -> None:
    """Build the schedules now (e.g. when a tick worker starts) instead of on the first tick."""
    now = datetime.now(UTC).timestamp()
    for root in roots or list(INSTRUMENTS):
        _schedule(_spec(root), now)


def _year(epoch: int) -> int:
    return datetime.fromtimestamp(epoch, UTC).year


def _spec(instrument: str | InstrumentSpec) -> InstrumentSpec:
    spec = instrument_get(instrument)
    if spec is None:
        raise ValueError(f"unknown instrument {instrument!r}")
    return spec


def _ts(at: datetime) -> float:
    if at.tzinfo is None:
        raise ValueError("market hours need a timezone-aware datetime")
    return at.timestamp()


def is_open(instrument: str | InstrumentSpec, at: datetime) -> bool:
    """True when the instrument's market trades at `at` (tz-aware)."""
    spec = _spec(instrument)
    t = _ts(at)
    sched = _schedule(spec, t)
    i = bisect_right(sched.opens, t) - 1
    return i >= 0 and t < sched.closes[i]


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _reason(sched: _Schedule, i: int, t: float) -> ClosedReason:
    """Why the market is closed at t, where interval i (maybe -1) is the last that opened before t."""
    local = datetime.fromtimestamp(t, CHICAGO)
    weekday, clock = local.weekday(), local.time()
    if (weekday == 4 and clock >= REGULAR_CLOSE) or weekday == 5 or (weekday == 6 and clock < HALT[1]):
        return ClosedReason.WEEKEND
    if i >= 0:
        n = sched.session[i]
        if sched.closes[i] < sched.s_close[n]:
            return ClosedReason.DAILY_HALT  # an intraday pause inside the session
        if sched.s_early[n] and local.date() == datetime.fromtimestamp(sched.s_close[n], CHICAGO).date():
            return ClosedReason.EARLY_CLOSE
    if HALT[0] <= clock < HALT[1] and i + 1 < len(sched.opens):
        reopen = datetime.fromtimestamp(sched.opens[i + 1], CHICAGO)
        if reopen.date() == local.date() and reopen.time() == HALT[1]:
            return ClosedReason.DAILY_HALT
    return ClosedReason.HOLIDAY


def market_state(instrument: str | InstrumentSpec, at: datetime) -> MarketState:
    spec = _spec(instrument)
    t = _ts(at)
    sched = _schedule(spec, t)
    i = bisect_right(sched.opens, t) - 1
    if i + 1 >= len(sched.opens):  # near the end of the cache: make sure the next interval is known
        sched = _schedule(spec, sched.last + 1)
        i = bisect_right(sched.opens, t) - 1
    if i >= 0 and t < sched.closes[i]:
        return MarketState(
            instrument=spec.root,
            at=at,
            is_open=True,
            reason=None,
            trade_date=sched.s_date[sched.session[i]],
            opened_at=_dt(sched.opens[i]),
            next_open=_dt(sched.opens[i + 1]),
            next_close=_dt(sched.closes[i]),
        )
    j = i + 1
    return MarketState(
        instrument=spec.root,
        at=at,
        is_open=False,
        reason=_reason(sched, i, t),
        trade_date=sched.s_date[sched.session[j]],
        opened_at=None,
        next_open=_dt(sched.opens[j]),
        next_close=_dt(sched.closes[j]),
    )


def closed_reason(instrument: str | InstrumentSpec, at: datetime) -> ClosedReason | None:
    return market_state(instrument, at).reason


def require_open(instrument: str | InstrumentSpec, at: datetime) -> None:
    """The tick's market-hours stage: raise MarketClosed (MARKET_CLOSED) with the reason when closed."""
    if is_open(instrument, at):
        return
    state = market_state(instrument, at)
    raise MarketClosed(
        f"{state.instrument} is closed at {at.isoformat()} ({state.reason}); "
        f"it opens at {state.next_open:%Y-%m-%d %H:%M} UTC.",
        instrument=state.instrument,
        closed_reason=str(state.reason),
        next_open=state.next_open.isoformat() if state.next_open else None,
    )


# Bar slots: which tf-aligned bars should exist. Epoch seconds throughout (the data service's unit).
# A slot [s, s + tf) with s a multiple of tf (UTC-aligned) is expected when the market trades at
# some instant inside it.


def open_intervals(instrument: str | InstrumentSpec, start: int, stop: int) -> list[tuple[int, int]]:
    """The open intervals clipped to [start, stop), in epoch seconds, oldest first."""
    spec = _spec(instrument)
    _schedule(spec, start)
    sched = _schedule(spec, max(start, stop - 1))
    out: list[tuple[int, int]] = []
    i = bisect_right(sched.closes, start)
    while i < len(sched.opens) and sched.opens[i] < stop:
        out.append((max(sched.opens[i], start), min(sched.closes[i], stop)))
        i += 1
    return out


def bar_slots_between(instrument: str | InstrumentSpec, tf: int, start: int, stop: int) -> list[int]:
    """Starts of the expected tf-slots s with start <= s < stop, oldest first."""
    slots: list[int] = []
    for o, c in open_intervals(instrument, start - tf, stop + tf):
        s = max(o // tf * tf, -(-start // tf) * tf)
        if slots and s <= slots[-1]:
            s = slots[-1] + tf
        while s < c and s < stop:
            slots.append(s)
            s += tf
    return slots


def bar_slots_before(instrument: str | InstrumentSpec, tf: int, stop: int, count: int) -> list[int]:
    """The newest `count` expected tf-slots whose start is before `stop`, oldest first (fewer when
    the known history runs out)."""
    spec = _spec(instrument)
    sched = _schedule(spec, stop - 1)
    out: list[int] = []
    i = bisect_left(sched.opens, stop) - 1
    while len(out) < count:
        if i < 0:
            if _year(sched.first) <= _FIRST_YEAR:
                break
            first_open = sched.opens[0]
            sched = _schedule(spec, sched.first - 1)
            i = bisect_left(sched.opens, first_open) - 1
            continue
        o, c = sched.opens[i], min(sched.closes[i], stop)
        s = (c - 1) // tf * tf
        if out and s >= out[-1]:
            s = out[-1] - tf
        while s + tf > o and len(out) < count:
            out.append(s)
            s -= tf
        i -= 1
    out.reverse()
    return out


def closed_bars_stop(instrument: str | InstrumentSpec, tf: int, end: int) -> int:
    """The exclusive upper bound of the starts of the tf-bars that are closed at `end`: a bar is
    closed once its slot has ended, or once the market has stopped trading for the rest of it (the
    12:00 CT hour bar on a 12:15 CT early close is closed at 12:15)."""
    stop = end // tf * tf
    if stop == end:
        return stop
    spec = _spec(instrument)
    sched = _schedule(spec, end)
    i = bisect_right(sched.opens, end) - 1
    if i >= 0 and end < sched.closes[i]:
        return stop  # trading now: the bar in progress is not closed
    following = sched.opens[i + 1] if i + 1 < len(sched.opens) else None
    if following is not None and following < stop + tf:
        return stop  # trading resumes inside this slot
    return stop + tf
