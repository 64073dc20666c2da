"""The historical-data service: closed bars for an instrument and timeframe, from the store, with
missing stretches fetched from the bot's provider. Every write to the bar store goes through here.

`bars(instrument, timeframe, end=, count=, provider=)` answers the last `count` bars that are
closed at `end` (their slot has ended, or the market stopped trading for the rest of it).

Which bars should exist (apps.market.hours): a tf-slot [s, s + tf), s a UTC multiple of tf, during
which the market trades at some instant. Closed stretches (nights' halts, weekends, holidays) have
no slots, so they are never "missing" and never fetched.

A slot is resolved when
- a bar for it is stored, or
- it lies in a BarCoverage stretch: a provider (or an imported file) answered for it and the
  answer is final, so no bar means no trades in it. A provider's answer is final for the slots that
  ended at least MARKET_DATA_SETTLE_SECONDS before it was received; younger empty slots stay
  unresolved and are asked again later.
Unresolved slots are fetched from the provider, one call per contiguous run of slots (a run may
span a closed stretch; it is cut where the provider's symbol changes and every 7 days of 1m), under
a PostgreSQL advisory lock per (instrument, timeframe), so 500 bots ticking on the same bar cause
one provider call, not 500. Each call is logged in BarFetch; the same range is not asked again
within MARKET_DATA_REFETCH_SECONDS (a failure inside that window is answered from the log).

5m and 15m are never asked of a provider: they are aggregated here from stored 1m bars (OHLC of the
bucket's minutes, volume summed, buckets aligned to UTC multiples) once every minute of the bucket
is resolved. A bucket with minutes that had no trades is accepted (its bar is built from the minutes
that traded — what the provider's own coarser bars would be); a bucket with an unresolved minute is
never built. Derived bars are stored too (`derived=True`), so the hot path is one index scan.

Writes: INSERT … ON CONFLICT DO NOTHING. A stored bar is never changed by a later answer; an answer
that differs is recorded as a BarConflict (and counted on its BarFetch row).

Errors (ApplicationError, SPEC codes):
- DATA_UNAVAILABLE — provider not configured (reason key_missing, `missing_env_vars`), provider
  failed (provider_error; the integration error's `cause_error_code`, `cause_message`,
  `retry_after_seconds` kept), an answer that breaks the contract (bad_answer), an empty answer for
  at least MARKET_DATA_MAX_EMPTY_OPEN_MINUTES of settled open market (empty_answer), an instrument
  the provider does not cover, more provider calls than MARKET_DATA_MAX_FETCHES_PER_REQUEST
  (range_too_large), fewer bars than asked (not_enough_bars), another worker's fetch outlasting
  MARKET_DATA_FETCH_LOCK_SECONDS (fetch_in_progress).
- DATA_STALE — more than MARKET_DATA_STALE_AFTER_BARS of the newest expected slots are unresolved
  (default 0: at a tick at `end`, the bar that closed at `end` must be there).
Nothing is ever filled in: a missing bar is an error, never an invented one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.core.context import get_trace_id
from apps.core.exceptions import ApplicationError
from apps.integrations import registry
from apps.integrations.bars import BarSource, ProviderBar
from apps.integrations.errors import IntegrationError
from apps.market import hours, instruments, selectors
from apps.market.bars import MarketBar, aggregate, from_epoch, quantize
from apps.market.exceptions import DataStale, DataUnavailable, MarketDataRequestInvalid
from apps.market.instruments import TIMEFRAME_SECONDS, InstrumentSpec
from apps.market.models import Bar, BarConflict, BarCoverage, BarFetch

logger = logging.getLogger(__name__)

NATIVE = {"1m": "1m", "5m": "1m", "15m": "1m", "1h": "1h"}  # what each timeframe is built from
MAX_CALL_SPAN = {"1m": 7 * 86400, "1h": 366 * 86400}  # seconds of range per provider call
LOCK_NAMESPACE = 7_400_001  # pg_advisory_lock(namespace, hashtext(key)): market-data fetches
_MAX_ROUNDS = 3
_INSERT_CHUNK = 5000

_INSERT_SQL = (
    "INSERT INTO market_bar (instrument, timeframe, ts, open, high, low, close, volume, source, derived, fetched_at) "
    "SELECT %s, %s, t.ts, t.o, t.h, t.l, t.c, t.v, %s, %s, %s "
    "FROM unnest(%s::timestamptz[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::bigint[]) "
    "AS t(ts, o, h, l, c, v) "
    "ON CONFLICT (instrument, timeframe, ts) DO NOTHING RETURNING ts"
)


# Store ---------------------------------------------------------------------------------------


@dataclass
class StoreResult:
    inserted: int = 0
    identical: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def _values(bar: MarketBar | Bar) -> dict[str, str]:
    return {
        "open": str(quantize(bar.open)),
        "high": str(quantize(bar.high)),
        "low": str(quantize(bar.low)),
        "close": str(quantize(bar.close)),
        "volume": str(int(bar.volume)),
    }


def bar_conflicts_find(*, instrument: str, timeframe: str, bars: Sequence[MarketBar]) -> list[dict[str, Any]]:
    """The offered bars that differ from stored ones (same slot), as conflict records (not saved)."""
    offered = {bar.ts: bar for bar in bars}
    found: list[dict[str, Any]] = []
    stamps = list(offered)
    for i in range(0, len(stamps), _INSERT_CHUNK):
        for stored in Bar.objects.filter(
            instrument=instrument, timeframe=timeframe, ts__in=stamps[i : i + _INSERT_CHUNK]
        ):
            bar = offered[stored.ts]
            if _values(stored) != _values(bar):
                found.append(
                    {
                        "ts": stored.ts,
                        "stored": _values(stored),
                        "offered": _values(bar),
                        "stored_source": stored.source,
                    }
                )
    return found


def bars_store(
    *,
    instrument: str,
    timeframe: str,
    bars: Sequence[MarketBar],
    source: str,
    fetched_at: datetime,
    derived: bool = False,
) -> StoreResult:
    """Insert the bars that are new; keep every stored one. Bars offered for a stored slot with
    different values are recorded as BarConflict rows. Call inside a transaction for all-or-nothing."""
    result = StoreResult()
    if not bars:
        return result
    inserted: set[datetime] = set()
    with connection.cursor() as cursor:
        for i in range(0, len(bars), _INSERT_CHUNK):
            chunk = bars[i : i + _INSERT_CHUNK]
            cursor.execute(
                _INSERT_SQL,
                [
                    instrument,
                    timeframe,
                    source,
                    derived,
                    fetched_at,
                    [b.ts for b in chunk],
                    [quantize(b.open) for b in chunk],
                    [quantize(b.high) for b in chunk],
                    [quantize(b.low) for b in chunk],
                    [quantize(b.close) for b in chunk],
                    [int(b.volume) for b in chunk],
                ],
            )
            inserted.update(row[0] for row in cursor.fetchall())
    result.inserted = len(inserted)
    others = [b for b in bars if b.ts not in inserted]
    if others:
        result.conflicts = bar_conflicts_find(instrument=instrument, timeframe=timeframe, bars=others)
        result.identical = len(others) - len(result.conflicts)
        trace_id = get_trace_id() or ""
        BarConflict.objects.bulk_create(
            BarConflict(
                instrument=instrument,
                timeframe=timeframe,
                ts=c["ts"],
                stored=c["stored"],
                offered=c["offered"],
                stored_source=c["stored_source"],
                offered_source=source,
                seen_at=fetched_at,
                trace_id=trace_id,
            )
            for c in result.conflicts
        )
        for c in result.conflicts:
            logger.warning(
                "bar conflict %s %s %s: kept %s (%s), offered %s (%s)",
                instrument,
                timeframe,
                c["ts"].isoformat(),
                c["stored"],
                c["stored_source"],
                c["offered"],
                source,
            )
    return result


def coverage_add(*, instrument: str, timeframe: str, start: int, stop: int, source: str) -> None:
    """Record [start, stop) (epoch seconds) as answered for good, merged with the stretches it
    overlaps or touches. Concurrent adds may leave overlapping rows; readers merge them."""
    if stop <= start:
        return
    with transaction.atomic():
        touching = list(
            BarCoverage.objects.select_for_update()
            .filter(instrument=instrument, timeframe=timeframe, start__lte=from_epoch(stop), end__gte=from_epoch(start))
            .order_by("start")
        )
        lo = min([start] + [int(c.start.timestamp()) for c in touching])
        hi = max([stop] + [int(c.end.timestamp()) for c in touching])
        if touching:
            keep, rest = touching[0], touching[1:]
            if rest:
                BarCoverage.objects.filter(pk__in=[c.pk for c in rest]).delete()
            keep.start, keep.end, keep.source = from_epoch(lo), from_epoch(hi), source
            keep.save(update_fields=["start", "end", "source", "updated_at"])
        else:
            BarCoverage.objects.create(
                instrument=instrument, timeframe=timeframe, start=from_epoch(lo), end=from_epoch(hi), source=source
            )


def _runs(slots: Sequence[int], wanted: Sequence[int], tf: int) -> list[tuple[int, int]]:
    """Maximal runs of `wanted` that are consecutive in `slots`, as [start, stop) epoch ranges."""
    index = {s: i for i, s in enumerate(slots)}
    runs: list[tuple[int, int]] = []
    last_i: int | None = None
    for s in wanted:
        i = index[s]
        if runs and last_i is not None and i == last_i + 1:
            runs[-1] = (runs[-1][0], s + tf)
        else:
            runs.append((s, s + tf))
        last_i = i
    return runs


def _covered(stretches: Sequence[tuple[int, int]], start: int, stop: int) -> bool:
    return any(a <= start and stop <= b for a, b in stretches)


# The data service ----------------------------------------------------------------------------


def bars(
    instrument: str | InstrumentSpec,
    timeframe: str,
    *,
    end: datetime,
    count: int,
    provider: str,
    bot_id: int | None = None,
    now: datetime | None = None,
    source: BarSource | None = None,
) -> list[MarketBar]:
    """The last `count` closed bars with ts < end, oldest first (see the module docstring).

    `provider` is the bot's market-data provider; its client (registry) is built only if something
    must be fetched, so bars already stored are served without a key. `source` replaces the
    registry's client (tests, offline tools); it must name the same provider.

    `now` is the wall clock (default: timezone.now()); it decides which answers are final and when a
    range may be asked again. Replays and backtests pass a past `end`, never a simulated `now`."""
    now = now or timezone.now()
    spec, tf = _validated(instrument, timeframe, end=end, count=count, provider=provider, now=now, source=source)
    request = _Request(spec=spec, provider=provider, bot_id=bot_id, now=now, source=source)
    stop = hours.closed_bars_stop(spec, tf, int(end.timestamp()))
    tolerance = settings.MARKET_DATA_STALE_AFTER_BARS
    lookback = count
    rows: list[tuple[MarketBar, str]] = []
    for _ in range(_MAX_ROUNDS):
        slots = hours.bar_slots_before(spec, tf, stop, lookback)
        if not slots:
            break
        rows = selectors.bar_rows_between(instrument=spec.root, timeframe=timeframe, start=slots[0], stop=stop)
        present = {bar.epoch for bar, _ in rows}
        missing = [s for s in slots if s not in present]
        if missing:
            unresolved = request.resolve(timeframe, slots, missing)
            # Read again: this request, or another worker it waited for, may have stored bars.
            rows = selectors.bar_rows_between(instrument=spec.root, timeframe=timeframe, start=slots[0], stop=stop)
            trailing = 0
            for s in reversed(slots):
                if s not in unresolved:
                    break
                trailing += 1
            if trailing > tolerance:
                newest = rows[-1][0].ts if rows else None
                raise DataStale(
                    f"{spec.root} {timeframe}: the newest {trailing} bar(s) that should exist by "
                    f"{end.isoformat()} are not available yet (newest stored: "
                    f"{newest.isoformat() if newest else 'none'}).",
                    instrument=spec.root,
                    timeframe=timeframe,
                    end=end.isoformat(),
                    expected_bar_ts=from_epoch(slots[-1]).isoformat(),
                    newest_bar_ts=newest.isoformat() if newest else None,
                    missing_bars=trailing,
                    stale_after_bars=tolerance,
                )
        if len(rows) >= count or len(slots) < lookback:
            break
        lookback += 2 * (count - len(rows))
    if len(rows) < count:
        raise DataUnavailable(
            f"{spec.root} {timeframe}: {len(rows)} closed bar(s) before {end.isoformat()}, {count} asked.",
            reason="not_enough_bars",
            suggested_fix="Ask for fewer bars, or load older history with `manage.py import_bars`.",
            instrument=spec.root,
            timeframe=timeframe,
            provider=provider,
            asked=count,
            got=len(rows),
        )
    return [bar for bar, _ in rows[-count:]]


def _validated(
    instrument: str | InstrumentSpec,
    timeframe: str,
    *,
    end: datetime,
    count: int,
    provider: str,
    now: datetime,
    source: BarSource | None,
) -> tuple[InstrumentSpec, int]:
    spec = instruments.get(instrument)
    if spec is None:
        raise MarketDataRequestInvalid(
            f"Unknown instrument {instrument!r}; known: {', '.join(instruments.INSTRUMENTS)}.", field="instrument"
        )
    if timeframe not in TIMEFRAME_SECONDS:
        raise MarketDataRequestInvalid(
            f"Unknown timeframe {timeframe!r}; known: {', '.join(TIMEFRAME_SECONDS)}.", field="timeframe"
        )
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= settings.MARKET_DATA_MAX_BARS:
        raise MarketDataRequestInvalid(
            f"count must be a whole number from 1 to {settings.MARKET_DATA_MAX_BARS}.", field="count"
        )
    if not isinstance(end, datetime) or end.tzinfo is None:
        raise MarketDataRequestInvalid("end must be a timezone-aware datetime.", field="end")
    if end > now:
        raise MarketDataRequestInvalid(
            f"end ({end.isoformat()}) is in the future (now {now.isoformat()}): no bar has closed then.", field="end"
        )
    spec_p = registry.get(provider)
    if spec_p is None or spec_p.category != registry.Category.MARKET_DATA:
        known = [p for p, s in registry.PROVIDERS.items() if s.category == registry.Category.MARKET_DATA]
        raise MarketDataRequestInvalid(
            f"{provider!r} is not a market-data provider; known: {', '.join(known)}.", field="provider"
        )
    if source is not None and getattr(source, "provider", None) != provider:
        raise MarketDataRequestInvalid("source must be a client of the same provider.", field="source")
    return spec, TIMEFRAME_SECONDS[timeframe]


class _Request:
    """One bars() call's fetching state: its provider client (built on first need) and its budget of
    provider calls."""

    def __init__(
        self, *, spec: InstrumentSpec, provider: str, bot_id: int | None, now: datetime, source: BarSource | None
    ) -> None:
        self.spec = spec
        self.provider = provider
        self.bot_id = bot_id
        self.now = now
        self.now_epoch = int(now.timestamp())
        self.client: BarSource | None = source
        self.calls = 0

    # Resolving slots -------------------------------------------------------------------------

    def resolve(self, timeframe: str, slots: Sequence[int], missing: Sequence[int]) -> set[int]:
        """Make the missing slots stored or covered if possible; answer those still unresolved."""
        if NATIVE[timeframe] == timeframe:
            return self._resolve_native(timeframe, slots, missing)
        return self._resolve_derived(timeframe, missing)

    def _uncovered(self, timeframe: str, missing: Sequence[int]) -> list[int]:
        tf = TIMEFRAME_SECONDS[timeframe]
        stretches = selectors.coverage_between(
            instrument=self.spec.root, timeframe=timeframe, start=missing[0], stop=missing[-1] + tf
        )
        return [s for s in missing if not _covered(stretches, s, s + tf)]

    def _unstored(self, timeframe: str, missing: Sequence[int]) -> list[int]:
        tf = TIMEFRAME_SECONDS[timeframe]
        rows = selectors.bar_rows_between(
            instrument=self.spec.root, timeframe=timeframe, start=missing[0], stop=missing[-1] + tf
        )
        present = {bar.epoch for bar, _ in rows}
        return [s for s in missing if s not in present]

    def _resolve_native(self, timeframe: str, slots: Sequence[int], missing: Sequence[int]) -> set[int]:
        missing = self._uncovered(timeframe, missing)
        if not missing:
            return set()
        with self._fetch_lock(timeframe):
            # Another worker may have fetched while this one waited for the lock.
            missing = self._unstored(timeframe, missing)
            missing = self._uncovered(timeframe, missing) if missing else []
            if missing:
                self._fetch(timeframe, _runs(slots, missing, TIMEFRAME_SECONDS[timeframe]))
        if not missing:
            return set()
        missing = self._unstored(timeframe, missing)
        return set(self._uncovered(timeframe, missing)) if missing else set()

    def _resolve_derived(self, timeframe: str, missing: Sequence[int]) -> set[int]:
        tf = TIMEFRAME_SECONDS[timeframe]
        missing = self._uncovered(timeframe, missing)
        if not missing:
            return set()
        buckets = set(missing)
        span = (missing[0], missing[-1] + tf)
        minutes = [m for m in hours.bar_slots_between(self.spec, 60, *span) if m // tf * tf in buckets]
        rows = selectors.bar_rows_between(instrument=self.spec.root, timeframe="1m", start=span[0], stop=span[1])
        present = {bar.epoch for bar, _ in rows}
        missing_minutes = [m for m in minutes if m not in present]
        unresolved_minutes = self._resolve_native("1m", minutes, missing_minutes) if missing_minutes else set()
        if missing_minutes:
            rows = selectors.bar_rows_between(instrument=self.spec.root, timeframe="1m", start=span[0], stop=span[1])
        blocked = {m // tf * tf for m in unresolved_minutes}
        complete = [b for b in missing if b not in blocked]
        if complete:
            done = set(complete)
            by_bucket: dict[int, list[tuple[MarketBar, str]]] = {}
            for bar, src in rows:
                bucket = bar.epoch // tf * tf
                if bucket in done:
                    by_bucket.setdefault(bucket, []).append((bar, src))
            built: list[tuple[MarketBar, str]] = []
            for bucket in complete:
                members = by_bucket.get(bucket)
                if members:
                    (bar,) = aggregate([b for b, _ in members], bucket=tf)
                    built.append((bar, "+".join(sorted({src for _, src in members}))))
            with transaction.atomic():
                for src in sorted({src for _, src in built}):
                    bars_store(
                        instrument=self.spec.root,
                        timeframe=timeframe,
                        bars=[b for b, s in built if s == src],
                        source=src,
                        fetched_at=self.now,
                        derived=True,
                    )
                for a, b in _runs(complete, complete, tf):
                    coverage_add(instrument=self.spec.root, timeframe=timeframe, start=a, stop=b, source="derived:1m")
        return blocked & buckets

    # Fetching --------------------------------------------------------------------------------

    @contextmanager
    def _fetch_lock(self, timeframe: str) -> Iterator[None]:
        key = f"market:{self.spec.root}:{timeframe}"
        deadline = time.monotonic() + settings.MARKET_DATA_FETCH_LOCK_SECONDS
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [LOCK_NAMESPACE, key])
                if cursor.fetchone()[0]:
                    break
                if time.monotonic() > deadline:
                    raise DataUnavailable(
                        f"{self.spec.root} {timeframe}: another worker has been fetching these bars for more than "
                        f"{settings.MARKET_DATA_FETCH_LOCK_SECONDS:g} s.",
                        reason="fetch_in_progress",
                        suggested_fix="Retry; if it persists, check the provider's latency and the workers' logs.",
                        instrument=self.spec.root,
                        timeframe=timeframe,
                        provider=self.provider,
                    )
                time.sleep(0.05)
        try:
            yield
        finally:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [LOCK_NAMESPACE, key])
            except DatabaseError:
                # The transaction is aborted, so the session lock cannot be released by a query:
                # closing the connection releases it.
                logger.exception("could not release the market-data fetch lock %s; closing the connection", key)
                connection.close()

    def _fetch(self, timeframe: str, runs: list[tuple[int, int]]) -> None:
        calls: list[tuple[str, int, int]] = []
        span = MAX_CALL_SPAN[timeframe]
        for a, b in runs:
            for symbol, start, stop in instruments.provider_symbol_ranges(
                self.spec, self.provider, from_epoch(a), from_epoch(b)
            ):
                lo, hi = int(start.timestamp()), int(stop.timestamp())
                while lo < hi:
                    calls.append((symbol, lo, min(hi, lo + span)))
                    lo += span
        if self.calls + len(calls) > settings.MARKET_DATA_MAX_FETCHES_PER_REQUEST:
            raise DataUnavailable(
                f"{self.spec.root} {timeframe}: {len(calls)} provider calls would be needed "
                f"(limit {settings.MARKET_DATA_MAX_FETCHES_PER_REQUEST} per request).",
                reason="range_too_large",
                suggested_fix="Load this history with `manage.py import_bars`, or ask for fewer bars.",
                instrument=self.spec.root,
                timeframe=timeframe,
                provider=self.provider,
            )
        for symbol, a, b in calls:
            self._fetch_one(timeframe, symbol, a, b)

    def _client(self) -> BarSource:
        if self.client is not None:
            return self.client
        spec = registry.get(self.provider)
        assert spec is not None  # validated
        try:
            client: Any = spec.client_class().for_bot(self.bot_id)
        except IntegrationError as exc:
            raise self._unavailable(exc, "") from exc
        if not callable(getattr(client, "fetch_bars", None)):
            raise DataUnavailable(
                f"The {self.provider} client cannot fetch bars.",
                reason="provider_cannot_fetch_bars",
                suggested_fix="Use a data provider whose client implements fetch_bars.",
                provider=self.provider,
            )
        self.client = client
        return client

    def _unavailable(self, exc: IntegrationError, during: str) -> DataUnavailable:
        key_missing = exc.error_code == "INTEGRATION_KEY_MISSING"
        return DataUnavailable(
            f"{self.spec.root}: market data from {self.provider} is unavailable{during}: {exc.message}",
            reason="key_missing" if key_missing else "provider_error",
            suggested_fix=exc.suggested_fix,
            instrument=self.spec.root,
            provider=self.provider,
            cause_error_code=exc.error_code,
            cause_message=exc.message,
            missing_env_vars=exc.extra.get("missing_env_vars"),
            retry_after_seconds=exc.extra.get("retry_after_seconds"),
            http_status=getattr(exc, "http_status", None),
        )

    def _log(self, timeframe: str, symbol: str, a: int, b: int, **fields: Any) -> BarFetch:
        return BarFetch.objects.create(
            instrument=self.spec.root,
            timeframe=timeframe,
            provider=self.provider,
            symbol=symbol,
            start=from_epoch(a),
            end=from_epoch(b),
            requested_at=self.now,
            bot_id=self.bot_id,
            trace_id=get_trace_id() or "",
            **fields,
        )

    def _fetch_one(self, timeframe: str, symbol: str, a: int, b: int) -> None:
        tf = TIMEFRAME_SECONDS[timeframe]
        recent = selectors.recent_fetch(
            instrument=self.spec.root,
            timeframe=timeframe,
            start=a,
            stop=b,
            since=self.now - timedelta(seconds=settings.MARKET_DATA_REFETCH_SECONDS),
        )
        if recent is not None:
            if recent.status == BarFetch.Status.OK:
                return  # asked moments ago: what that answer could settle is recorded
            raise DataUnavailable(
                f"{self.spec.root} {timeframe}: {self.provider} failed on this range "
                f"{(self.now - recent.requested_at).total_seconds():.0f} s ago "
                f"({recent.error_code}: {recent.message}); "
                f"not asking again before {settings.MARKET_DATA_REFETCH_SECONDS} s have passed.",
                reason=recent.details.get("reason", "provider_error"),
                suggested_fix=recent.details.get("suggested_fix"),
                instrument=self.spec.root,
                timeframe=timeframe,
                provider=self.provider,
                cause_error_code=recent.error_code,
                cause_message=recent.message,
            )
        client = self._client()
        self.calls += 1
        try:
            answer = client.fetch_bars(symbol=symbol, timeframe=timeframe, start=from_epoch(a), end=from_epoch(b))
        except IntegrationError as exc:
            error = self._unavailable(exc, f" ({symbol} {timeframe})")
            self._log(
                timeframe,
                symbol,
                a,
                b,
                status=BarFetch.Status.ERROR,
                error_code=exc.error_code,
                message=exc.message[:2000],
                details={"reason": "provider_error", "suggested_fix": exc.suggested_fix},
            )
            raise error from exc
        problem = _answer_problem(answer, a, b, tf)
        if problem is not None:
            self._log(
                timeframe,
                symbol,
                a,
                b,
                status=BarFetch.Status.ERROR,
                error_code="INTEGRATION_BAD_RESPONSE",
                message=problem,
                bars_returned=len(answer) if isinstance(answer, list) else 0,
                details={"reason": "bad_answer"},
            )
            raise DataUnavailable(
                f"{self.spec.root}: {self.provider} answered {symbol} {timeframe} bars TradeOps cannot use: {problem}",
                reason="bad_answer",
                suggested_fix="Retry; if it persists, report the trace id (the provider's answer broke the contract).",
                instrument=self.spec.root,
                provider=self.provider,
                cause_error_code="INTEGRATION_BAD_RESPONSE",
            )
        settled = min(b, (self.now_epoch - settings.MARKET_DATA_SETTLE_SECONDS) // tf * tf)
        if not answer and settled > a:
            open_seconds = sum(c - o for o, c in hours.open_intervals(self.spec, a, settled))
            if open_seconds >= settings.MARKET_DATA_MAX_EMPTY_OPEN_MINUTES * 60:
                message = (
                    f"{self.provider} answered no {symbol} {timeframe} bars for {open_seconds // 60} minutes "
                    "of open market "
                    f"({from_epoch(a):%Y-%m-%d %H:%M} to {from_epoch(settled):%Y-%m-%d %H:%M} UTC)."
                )
                fix = (
                    f"Check that the {self.provider} key is entitled to this data (dataset, symbol {symbol}) and that "
                    "the provider has history this far back."
                )
                self._log(
                    timeframe,
                    symbol,
                    a,
                    b,
                    status=BarFetch.Status.ERROR,
                    error_code="EMPTY_ANSWER",
                    message=message,
                    details={"reason": "empty_answer", "suggested_fix": fix},
                )
                raise DataUnavailable(
                    f"{self.spec.root}: {message}",
                    reason="empty_answer",
                    suggested_fix=fix,
                    instrument=self.spec.root,
                    provider=self.provider,
                )
        cover_until = settled
        recent = self.now_epoch - settings.MARKET_DATA_RECENT_HOURS * 3600
        if settled > recent:
            # Near now, only what the answer itself proves is settled: up to the end of its last
            # bar. A provider that stops answering partway (its data lags, a feed outage) leaves a
            # trailing gap that is never recorded as "no trades": those slots stay unresolved, are
            # asked again, and make the newest bars DATA_STALE rather than a quiet market.
            proven = int(answer[-1].ts.timestamp()) + tf if answer else a
            cover_until = min(settled, max(proven, min(recent, settled)))
        offered = [
            MarketBar(
                bar.ts, quantize(bar.open), quantize(bar.high), quantize(bar.low), quantize(bar.close), bar.volume
            )
            for bar in answer
        ]
        with transaction.atomic():
            stored = bars_store(
                instrument=self.spec.root, timeframe=timeframe, bars=offered, source=self.provider, fetched_at=self.now
            )
            if cover_until > a:
                coverage_add(
                    instrument=self.spec.root, timeframe=timeframe, start=a, stop=cover_until, source=self.provider
                )
            self._log(
                timeframe,
                symbol,
                a,
                b,
                status=BarFetch.Status.OK,
                bars_returned=len(answer),
                bars_inserted=stored.inserted,
                conflicts=len(stored.conflicts),
                details={"settled_until": from_epoch(max(a, cover_until)).isoformat()},
            )


def _answer_problem(answer: Any, start: int, stop: int, tf: int) -> str | None:
    """Why a provider's answer breaks the bars contract (apps/integrations/bars.py), or None."""
    if not isinstance(answer, list):
        return f"expected a list of bars, got {type(answer).__name__}"
    previous: int | None = None
    for i, bar in enumerate(answer):
        if not isinstance(bar, ProviderBar):
            return f"bar {i} is not a ProviderBar"
        if bar.ts.tzinfo is None or bar.ts.utcoffset() != timedelta(0):
            return f"bar {i} ts is not UTC"
        t = bar.ts.timestamp()
        if t % tf:
            return f"bar {i} ts {bar.ts.isoformat()} is not aligned to {tf} s"
        if not start <= t < stop:
            return f"bar {i} ts {bar.ts.isoformat()} is outside the range asked"
        if previous is not None and t <= previous:
            return f"bar {i} is out of order or repeated ({bar.ts.isoformat()})"
        previous = int(t)
        prices = (bar.open, bar.high, bar.low, bar.close)
        if not all(isinstance(p, Decimal) and p.is_finite() for p in prices):
            return f"bar {i} has a price that is not a finite Decimal"
        if not (bar.low <= min(bar.open, bar.close) and bar.high >= max(bar.open, bar.close)):
            return f"bar {i} has open/close outside [low, high]"
        if isinstance(bar.volume, bool) or not isinstance(bar.volume, int) or bar.volume < 0:
            return f"bar {i} has a volume that is not a whole number >= 0"
    return None


# Imports ------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    instrument: str
    timeframe: str
    rows: int
    inserted: int
    identical: int
    conflicts: list[dict[str, Any]]
    covered: tuple[datetime, datetime] | None


class ImportConflict(ApplicationError):
    status_code = 409
    error_code = "BAR_CONFLICT"

    def __init__(self, conflicts: list[dict[str, Any]]) -> None:
        self.conflicts = conflicts
        super().__init__(
            f"{len(conflicts)} bar(s) in the file differ from bars already stored; nothing was imported.",
            suggested_fix="Check the file; to import the rest and keep the stored bars, pass --keep-stored.",
            extra={"conflicts": [{**c, "ts": c["ts"].isoformat()} for c in conflicts[:20]]},
        )


@transaction.atomic
def bars_import(
    *,
    instrument: str,
    timeframe: str,
    bars: Sequence[MarketBar],
    source: str,
    keep_stored: bool = False,
    record_coverage: bool = True,
    now: datetime | None = None,
) -> ImportResult:
    """Load bars from a file, all or nothing. Bars already stored with the same values are counted
    as duplicates; different values abort the import (ImportConflict) unless keep_stored, which
    keeps the stored bars and records the conflicts. With record_coverage, the file's span
    [first ts, last ts + tf) is recorded as answered: the file is complete over it (a slot inside it
    without a row had no trades), so the service will not ask a provider for it."""
    now = now or timezone.now()
    spec = instruments.get(instrument)
    if spec is None or timeframe not in TIMEFRAME_SECONDS:
        raise MarketDataRequestInvalid(f"Unknown instrument or timeframe: {instrument} {timeframe}.", field="symbol")
    ordered = sorted(bars, key=lambda b: b.ts)
    if not keep_stored:
        conflicts = bar_conflicts_find(instrument=spec.root, timeframe=timeframe, bars=ordered)
        if conflicts:
            raise ImportConflict(conflicts)
    stored = bars_store(instrument=spec.root, timeframe=timeframe, bars=ordered, source=source, fetched_at=now)
    covered = None
    if record_coverage and ordered:
        first = int(ordered[0].ts.timestamp())
        stop = int(ordered[-1].ts.timestamp()) + TIMEFRAME_SECONDS[timeframe]
        coverage_add(instrument=spec.root, timeframe=timeframe, start=first, stop=stop, source=source)
        covered = (from_epoch(first), from_epoch(stop))
    return ImportResult(
        instrument=spec.root,
        timeframe=timeframe,
        rows=len(ordered),
        inserted=stored.inserted,
        identical=stored.identical,
        conflicts=stored.conflicts,
        covered=covered,
    )
