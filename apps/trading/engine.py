"""The bot's bar-by-bar state as one pure piece: position, working orders, protective stop, fills and
PnL, stepped over closed bars with a SIM runner's rules (SPEC §1.5, §9). No database, no clock, no
provider: a backtest runs it in memory over years of bars, and a parity test holds it to a SIM runner
replayed with `as_of` over the same bars (tests/backtests/test_parity.py).

It is built from the very functions the SIM path persists around, so the rules exist once:
- the decision: `apps.trading.vectorized` (held equal to `strategies.decide` by property tests),
  at the close of every bar whose last second traded and whose close the market is open at
  (`tick_stages.market_hours_stage`'s rule, as a mask over the window);
- the fills: `apps.trading.fills.sim_fill` (market at the next bar's open, stops at the worse of the
  open and the stop, slippage and commission of the fill model) and `apply_fill` (the position and
  its realized PnL);
- protective stops: `apps.trading.stops.protection_plan` and `stop_working_from` (a stop works from
  its entry's decision, so on the bar its entry fills it is tried against that bar's range before
  the decision at that bar's close);
- risk: `apps.trading.risk.check` with the context a SIM order would get (position, working
  orders, the day's PnL and orders, duplicates, the account cap) and R6's halt after repeated
  breaches; none at all when `risk_limits` is None.

The tick it mirrors (apps/runners/services/tick.py, replayed: the tick's clock is its bar's close +
1 s): settle the working orders on the bar just closed, protect the position, decide, check risk,
and when the order is accepted settle it at once on the next bar (a replay or a late tick finds that
bar closed already), so the stop of an entry is placed in the tick that decided it.

Speed: the decisions of the whole window come from numpy arrays; the loop then runs one of two ways.
- The compiled kernel (apps/trading/engine_kernel.py, numba, over int64 arrays: prices in ticks, times
  in epoch seconds) for every run without risk limits and without a decision log: a backtest from a
  strategy, every matrix run. It visits every bar, in chunks between which progress and cancel are
  called, and keeps its fills and trades as integer columns; `EngineResult.fills` and `.trades` are
  built from them on first access, with the Python loop's own Decimal expressions. What a strategy
  of one contract never does (adding to a position, closing part of it) sends the run to the Python
  loop, as does a bar whose open is outside its range (sim_fill's error, raised there).
- The Python loop below, for runs with risk limits (risk.check needs the Decimal context of a SIM
  order) or with `record_decisions`. It runs only at the bars where something can happen: a decision
  that is not a HOLD for the position held, a bar where a working stop is reached, the bar after an
  accepted order; the bars in between are counted by reason code with numpy. Prices are integer
  ticks in the arrays and Decimals at fills, exactly as SIM. It is the reference: the parity test
  holds it to a SIM runner, and tests/trading/test_engine_kernel.py holds the kernel to it (fills,
  trades, decision counts, notes, equity and position, on thousands of generated series).

The equity curve marks the position at every window bar's close: initial capital + realized PnL −
fees + open PnL (float64 USD; the trades carry the exact Decimals). An open position at the end is a
trade with exit reason END at the last bar's close (a mark, no exit fee is charged).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from apps.market import hours
from apps.market.instruments import trade_date_start
from apps.trading import risk, stops, strategies, vectorized
from apps.trading.fills import BUY, SELL, FillModel, PositionState, apply_fill, sim_fill
from apps.trading.indicators import CONTEXT
from apps.trading.risk import DEFAULT_POLICY, RiskPolicy


@dataclass(frozen=True)
class EngineConfig:
    strategy_key: str
    parameters: Mapping[str, Any]
    instrument: str  # root symbol (MES)
    tick_size: Decimal
    point_value: Decimal
    timeframe_seconds: int
    fill_model: FillModel = FillModel()
    risk_limits: Mapping[str, Any] | None = None  # None: no risk checks at all
    risk_policy: RiskPolicy = DEFAULT_POLICY  # apps.trading.services.policy() for the SIM's
    # The SIM account's cap (settings.TRADING_SIM_ACCOUNT_MAX_CONTRACTS); with risk limits and no
    # cap, every order is refused RISK_LIMIT_MISSING, as risk refuses a SIM order without one.
    account_limit_contracts: int | None = None
    initial_capital: Decimal = Decimal(10000)


@dataclass(frozen=True, slots=True)
class EngineFill:
    ts: datetime  # the open time of the bar the fill happened on
    side: str  # BUY | SELL
    quantity: int
    price: Decimal
    fee: Decimal
    slippage: Decimal  # USD, >= 0
    order_type: str  # MARKET | STOP
    decided_at: datetime  # the close the order works from


@dataclass(frozen=True, slots=True)
class EngineTrade:
    side: str  # LONG | SHORT
    quantity: int
    entry_ts: datetime
    entry_price: Decimal
    exit_ts: datetime
    exit_price: Decimal
    exit_reason: str  # STOP | SIGNAL | END
    pnl: Decimal  # USD, net of its fees
    fees: Decimal
    slippage: Decimal


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    bar_ts: datetime  # the close decided at
    outcome: str  # TRADE | NO_TRADE
    stage: str  # "" for TRADE; market_hours | strategy | risk
    reason_code: str


class EngineResult:
    """What a run made. `fills` and `trades` are lists of the dataclasses above; a run of the compiled
    kernel holds them as integer columns (`columns`) and builds the lists on first access (the same
    values, digit for digit: tests/trading/test_engine_kernel.py)."""

    def __init__(
        self,
        fills: list[EngineFill] | None = None,
        trades: list[EngineTrade] | None = None,
        decisions: dict[str, dict[str, int]] | None = None,  # {"TRADE": {code: n}, "NO_TRADE": {code: n}}
        bars: int = 0,  # bars in the window (decided or closed)
        close_ts: np.ndarray | None = None,  # int64 epoch seconds: each window bar's close
        equity: np.ndarray
        | None = None,  # float64 USD at each window bar's close (capital + realized − fees + open PnL)
        position: np.ndarray | None = None,  # int64 signed contracts held at each window bar's close
        decision_log: list[DecisionRecord] | None = None,
        notes: list[str] | None = None,
        *,
        columns: Columns | None = None,
    ) -> None:
        if columns is None and (fills is None or trades is None):
            raise ValueError("an engine result has its fills and trades, as lists or as columns")
        self._fills, self._trades, self.columns = fills, trades, columns
        self.decisions = decisions if decisions is not None else {"TRADE": {}, "NO_TRADE": {}}
        self.bars = bars
        self.close_ts = close_ts if close_ts is not None else np.zeros(0, dtype=np.int64)
        self.equity = equity if equity is not None else np.zeros(0, dtype=np.float64)
        self.position = position if position is not None else np.zeros(0, dtype=np.int64)
        self.decision_log = decision_log
        self.notes = notes if notes is not None else []

    @property
    def fills(self) -> list[EngineFill]:
        if self._fills is None:
            assert self.columns is not None
            self._fills = self.columns.fills()
        return self._fills

    @property
    def trades(self) -> list[EngineTrade]:
        if self._trades is None:
            assert self.columns is not None
            self._trades = self.columns.trades(self.fills)
        return self._trades

    def __repr__(self) -> str:
        return f"<EngineResult {self.bars} bars, {len(self.trades)} trades>"


class Cancelled(Exception):
    """`cancelled()` answered True: the run stopped where it was."""


# -- the window's decision mask and reason codes ------------------------------------------------------

# Reason codes an engine decision can carry: the evaluator's, then the position-dependent HOLDs.
REASONS: tuple[str, ...] = (
    *vectorized.CODES,
    strategies.IN_POSITION,
    strategies.ZERO_ATR,
    strategies.ZSCORE_REVERTED,
)
_R = {code: n for n, code in enumerate(REASONS)}
MARKET_CLOSED = "MARKET_CLOSED"


def tradable(instrument: str, ts: np.ndarray, tf: int) -> np.ndarray:
    """Per bar (open times `ts`, epoch seconds): True when the tick at its close runs past the
    market-hours stage, i.e. the market is open at the bar's last second and at its close
    (tick_stages.market_hours_stage, as a mask: the same calendar, apps.market.hours)."""
    if not len(ts):
        return np.zeros(0, dtype=bool)
    intervals = hours.open_intervals(instrument, int(ts[0]) - tf, int(ts[-1]) + 3 * tf)
    opens = np.array([o for o, _ in intervals], dtype=np.int64)
    # closes[k]: the close of the interval opened last at or before t, when searchsorted answers k
    # (0: none opened yet, a close no time is before).
    closes = np.array([np.iinfo(np.int64).min] + [c for _, c in intervals], dtype=np.int64)

    def is_open(t: np.ndarray) -> np.ndarray:
        return t < closes[np.searchsorted(opens, t, side="right")]

    close = ts + tf
    return is_open(close - 1) & is_open(close)


def hold_reasons(sig: vectorized.Signals, side: int) -> np.ndarray:
    """Per bar, the index in REASONS of decide()'s reasons[0] for a position on `side` (−1, 0, 1):
    vectorized.decision() over the whole window (a HOLD's reason; for a bar that trades, the
    signal's code)."""
    code = sig.signal.astype(np.int16)
    out = code.copy()
    blind = (code == vectorized.CODE[strategies.INSUFFICIENT_BARS]) | (
        code == vectorized.CODE[strategies.ZERO_VOLATILITY]
    )
    quiet = (sig.want == 0) & ~blind
    if side != 0:
        if sig.key == "mean_reversion":  # no entry signal while in a position: hold it, or revert
            out[quiet] = _R[strategies.IN_POSITION]
            out[quiet & (sig.exit_long if side > 0 else sig.exit_short)] = _R[strategies.ZSCORE_REVERTED]
        out[(sig.want == side) & ~blind] = _R[strategies.IN_POSITION]
    entering = (sig.want != 0) & (sig.want != side) & ~blind
    out[entering & sig.zero_atr] = _R[strategies.ZERO_ATR]
    return out


# -- the state ------------------------------------------------------------------------------------------


@dataclass
class _Order:
    ref: int
    side: str
    quantity: int
    order_type: str  # MARKET | STOP
    working_from: int  # epoch: fills on bars opening at or after it
    decided_at: datetime
    stop_price: Decimal | None = None
    protective_stop: Decimal | None = None  # an entry's stop
    stop_of: int | None = None  # a stop: the ref of the entry it protects


@dataclass
class _Open:
    side: int  # +1 LONG, −1 SHORT
    quantity: int
    entry_ts: datetime
    entry_price: Decimal
    fees: Decimal
    slippage: Decimal


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


class _Book:
    """The bot's orders, position, fills and trades, changed only by the tick's rules below."""

    def __init__(self, bars: Any, config: EngineConfig) -> None:
        self.bars, self.config = bars, config
        self.tick = config.tick_size
        self.pv = config.point_value
        self.position = PositionState(0, None, Decimal(0))
        self.working: list[_Order] = []
        self.next_ref = 0
        self.entry: _Order | None = None  # the filled entry that opened the position, with its stop
        self.stops_since_entry = 0
        self.fills: list[EngineFill] = []
        self.fill_bars: list[int] = []
        self.trades: list[EngineTrade] = []
        self.open: _Open | None = None
        self.sent: list[tuple[datetime, risk.RecentIntent]] = []  # accepted orders (for risk)
        self.day_fills: list[tuple[datetime, Decimal, Decimal]] = []  # (filled_at, realized, fee)
        self.breaches: list[risk.Breach] = []
        self.trading_state = risk.TradingState.ACTIVE
        self.notes: list[str] = []
        # False once the position or the working orders change: protection has something to look at.
        # While True, protection_plan would answer "keep" again (it is a function of exactly these).
        self.protected = True

    # -- orders ---------------------------------------------------------------------------------

    def _new(self, **fields: Any) -> _Order:
        self.next_ref += 1
        return _Order(ref=self.next_ref, **fields)

    def working_quantity(self, side: str, excluding: tuple[int, ...] = ()) -> int:
        return sum(o.quantity for o in self.working if o.side == side and o.ref not in excluding)

    def risk_allows(
        self, *, side: str, quantity: int, order_type: str, stop_price: Decimal | None, origin: str,
        now: datetime, bar_ts: datetime, reference: Decimal, replaces: tuple[int, ...] = (),
    ) -> tuple[bool, str]:  # fmt: skip
        """risk.check with the context a SIM order gets (apps.trading.services._context); (allowed,
        the first failed check's reason code). Refused: recorded as a breach, halting as R6 says."""
        cfg = self.config
        if cfg.risk_limits is None:
            return True, ""
        pol = cfg.risk_policy
        day_start = trade_date_start(bar_ts)
        since = min(day_start, now - pol.burst_window, now - pol.duplicate_window)
        self.sent = [s for s in self.sent if s[0] >= since]
        self.day_fills = [f for f in self.day_fills if f[0] >= day_start]
        held = self.position.quantity
        buys = self.working_quantity(BUY, replaces)
        sells = self.working_quantity(SELL, replaces)
        open_pnl = (reference - self.position.avg_price) * held * self.pv if held else Decimal(0)
        context = risk.RiskContext(
            now=now,
            risk_limits=cfg.risk_limits,
            position=held,
            working_buy_quantity=buys,
            working_sell_quantity=sells,
            daily_pnl=sum((r - f for _, r, f in self.day_fills), Decimal(0)) + open_pnl,
            trading_day_start=day_start,
            recent_order_times=[at for at, _ in self.sent if at >= day_start],
            recent_intents=[intent for at, intent in self.sent if at >= now - pol.duplicate_window],
            reference_price=reference,
            reference_price_at=bar_ts,
            trading_state=self.trading_state,
            killed=False,
            account_exposure_contracts=max(held + buys, sells - held, abs(held)),
            account_limit_contracts=cfg.account_limit_contracts,
            point_value=self.pv,
        )
        intent = risk.OrderIntent.create(
            bot_id=0,
            account="backtest",
            instrument=cfg.instrument,
            side=risk.Side(side),
            quantity=quantity,
            order_type=risk.OrderType(order_type),
            position=held,
            stop_price=stop_price,
            origin=risk.IntentOrigin(origin),
        )
        verdict = risk.check(intent, context, pol)
        if verdict.allowed:
            recent = risk.RecentIntent(
                cfg.instrument, risk.Side(side), quantity, risk.OrderType(order_type), None, stop_price, now
            )
            self.sent.append((now, recent))
            return True, ""
        code = verdict.reason_codes[0] if verdict.reason_codes else "RISK_REJECTED"
        self.breaches = [b for b in self.breaches if b.at > now - pol.halt_breach_window]
        self.breaches.append(risk.Breach(code=code, at=now))
        if self.trading_state != risk.TradingState.HALTED and risk.should_halt(
            self.breaches, pol.halt_breach_window, now=now, threshold=pol.halt_breach_threshold
        ):
            self.trading_state = risk.TradingState.HALTED
            self.notes.append(f"halted at {now.isoformat()}: {len(self.breaches)} risk rejections (R6)")
        return False, code

    # -- fills ----------------------------------------------------------------------------------

    def settle(self, j: int) -> bool:
        """Fill the working orders that bar j reaches (oldest first, as sim_settle orders fills on one
        bar). True when anything filled."""
        if not self.working:
            return False
        b, t = self.bars, int(self.bars.ts[j])
        high, low = int(b.high[j]), int(b.low[j])
        prices: tuple[Decimal, Decimal, Decimal] | None = None
        filled = False
        for order in list(self.working):
            if order.working_from > t:
                continue
            if order.stop_price is not None:  # a bar that does not reach the stop: no fill (sim_fill's trigger)
                level = order.stop_price / self.tick
                if (order.side == BUY and high < level) or (order.side == SELL and low > level):
                    continue
            if prices is None:
                prices = (self.tick * int(b.open[j]), self.tick * high, self.tick * low)
            o_, h_, l_ = prices
            fill = sim_fill(
                side=order.side, quantity=order.quantity, order_type=order.order_type,
                bar_open=o_, bar_high=h_, bar_low=l_, tick_size=self.tick, point_value=self.pv,
                stop_price=order.stop_price, model=self.config.fill_model,
            )  # fmt: skip
            if fill is None:
                continue
            self.working.remove(order)
            self._apply(order, j, fill.price, fill.fee, fill.slippage)
            filled = True
        return filled

    def _apply(self, order: _Order, j: int, price: Decimal, fee: Decimal, slippage: Decimal) -> None:
        at = _utc(int(self.bars.ts[j]))
        before = self.position
        after = apply_fill(before, side=order.side, quantity=order.quantity, price=price, point_value=self.pv)
        self.position = after
        self.protected = False
        self.fills.append(
            EngineFill(at, order.side, order.quantity, price, fee, slippage, order.order_type, order.decided_at)
        )
        self.fill_bars.append(j)
        self.day_fills.append((at, after.realized_pnl - before.realized_pnl, fee))
        self._trades(order, at, price, fee, slippage, before.quantity)
        if order.protective_stop is not None and after.quantity != 0 and (after.quantity > 0) == (order.side == BUY):
            self.entry, self.stops_since_entry = order, 0  # the newest filled entry with a stop opened it
        if after.quantity == 0:
            self.entry = None

    def _trades(self, order: _Order, at: datetime, price: Decimal, fee: Decimal, slip: Decimal, held: int) -> None:
        """The trade list from the fills: a fill closes the open trade (SIGNAL, or STOP for a stop
        order) and opens one with what is left on the other side; fees and slippage split per contract."""
        signed = order.quantity if order.side == BUY else -order.quantity
        per_fee, per_slip = fee / order.quantity, slip / order.quantity
        if self.open is not None and (signed > 0) != (self.open.side > 0):
            closing = min(abs(held), order.quantity)
            reason = "STOP" if order.order_type == "STOP" else "SIGNAL"
            self._close(at, price, reason, closing, per_fee * closing, per_slip * closing)
            rest = order.quantity - closing
        else:
            rest = order.quantity
        if rest:
            if self.open is None:
                side = 1 if signed > 0 else -1
                self.open = _Open(side, rest, at, price, per_fee * rest, per_slip * rest)
            else:  # adding to the open trade: its average entry
                o = self.open
                total = o.quantity + rest
                o.entry_price = (o.entry_price * o.quantity + price * rest) / total
                o.quantity, o.fees, o.slippage = total, o.fees + per_fee * rest, o.slippage + per_slip * rest

    def _close(self, at: datetime, price: Decimal, reason: str, quantity: int, fee: Decimal, slip: Decimal) -> None:
        o = self.open
        assert o is not None
        if quantity == o.quantity:  # the whole trade (the usual case): no division
            entry_fee, entry_slip = o.fees, o.slippage
        else:
            share = Decimal(quantity) / o.quantity
            entry_fee, entry_slip = o.fees * share, o.slippage * share
        gross = (price - o.entry_price) * o.side * quantity * self.pv
        fees = entry_fee + fee
        self.trades.append(
            EngineTrade(
                side="LONG" if o.side > 0 else "SHORT", quantity=quantity, entry_ts=o.entry_ts,
                entry_price=o.entry_price, exit_ts=at, exit_price=price, exit_reason=reason,
                pnl=gross - fees, fees=fees, slippage=entry_slip + slip,
            )
        )  # fmt: skip
        o.quantity -= quantity
        o.fees -= entry_fee
        o.slippage -= entry_slip
        if o.quantity == 0:
            self.open = None

    # -- protection (apps/trading/stops.py, as protection_sync does it) -------------------------------

    def protect(self, *, now: datetime, bar_ts: datetime, reference: Decimal) -> bool:
        """Make the position's protection match it. True when a stop was placed (it may fill on the
        bar just settled: the caller settles that bar again)."""
        if self.protected:
            return False
        self.protected = True
        held = self.position.quantity
        working_stops = [o for o in self.working if o.order_type == "STOP"]
        in_flight = [str(o.ref) for o in self.working if o.order_type != "STOP"]
        entry = self.entry if held else None
        plan = stops.protection_plan(
            position=held,
            stop_price=entry.protective_stop if entry else None,
            stops=[stops.WorkingStop(str(o.ref), o.side, o.quantity, o.stop_price) for o in working_stops],
            in_flight=in_flight,
        )
        gone = set(plan.cancel)
        self.working = [o for o in self.working if str(o.ref) not in gone]
        if plan.place is None or entry is None:
            return False
        wanted = plan.place
        sequence = self.stops_since_entry
        self.stops_since_entry += 1  # a refused stop row counts too (protection_sync counts every STOP row)
        working_from = stops.stop_working_from(entry_bar_ts=entry.decided_at, tick_bar_ts=bar_ts, sequence=sequence)
        allowed, code = self.risk_allows(
            side=wanted.side, quantity=wanted.quantity, order_type="STOP", stop_price=wanted.stop_price,
            origin=risk.IntentOrigin.PROTECTIVE, now=now, bar_ts=bar_ts, reference=reference,
        )  # fmt: skip
        if not allowed:
            self.notes.append(f"{bar_ts.isoformat()}: the stop was refused ({code}); the position is unprotected")
            return False
        self.working.append(
            self._new(
                side=wanted.side, quantity=wanted.quantity, order_type="STOP",
                working_from=int(working_from.timestamp()), decided_at=working_from, stop_price=wanted.stop_price,
                stop_of=entry.ref,
            )
        )  # fmt: skip
        return True

    def settle_and_protect(self, j: int, *, now: datetime, bar_ts: datetime, reference: Decimal) -> None:
        """tick_stages.settle_and_protect for one bar: settle, protect, settle the new stop, protect."""
        for _ in range(3):
            self.settle(j)
            if not self.protect(now=now, bar_ts=bar_ts, reference=reference):
                break


# -- the run -------------------------------------------------------------------------------------------


class _Counts:
    def __init__(self) -> None:
        self.trade = np.zeros(len(REASONS), dtype=np.int64)
        self.no_trade = np.zeros(len(REASONS), dtype=np.int64)
        self.closed = 0
        self.risk: dict[str, int] = {}

    def as_dict(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {"TRADE": {}, "NO_TRADE": {}}
        for n in np.flatnonzero(self.trade):
            out["TRADE"][REASONS[n]] = int(self.trade[n])
        for n in np.flatnonzero(self.no_trade):
            out["NO_TRADE"][REASONS[n]] = int(self.no_trade[n])
        if self.closed:
            out["NO_TRADE"][MARKET_CLOSED] = self.closed
        for code, k in self.risk.items():
            out["NO_TRADE"][code] = out["NO_TRADE"].get(code, 0) + k
        return out


def _first_stop_hit(bars: Any, order: _Order, tick: Decimal, lo: int, hi: int) -> int | None:
    """The first bar in [lo, hi) that reaches a working stop (sim_fill's trigger), or None."""
    if order.stop_price is None or lo >= hi:
        return None
    level = order.stop_price / tick  # on the tick grid: an integer
    chunk = 4096
    while lo < hi:
        end = min(hi, lo + chunk)
        hit = (bars.high[lo:end] >= level) if order.side == BUY else (bars.low[lo:end] <= level)
        at = np.flatnonzero(hit)
        if len(at):
            return lo + int(at[0])
        lo, chunk = end, chunk * 4
    return None


def run(
    bars: Any,  # apps.market.arrays.BarArrays: the warm-up bars before `start`, then the window
    config: EngineConfig,
    *,
    start: datetime,
    record_decisions: bool = False,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    use_kernel: bool = True,
) -> EngineResult:
    """Every tick of a SIM runner started at `start` over `bars`: a decision at the close of each
    window bar (those with open time ≥ start), its orders, fills, stops and PnL. `progress(f)` and
    `cancelled()` are called about every half second; `cancelled()` True raises Cancelled.
    `use_kernel=False` runs the Python loop where the compiled kernel would (the reference)."""
    tf = config.timeframe_seconds
    first = int(np.searchsorted(bars.ts, int(start.timestamp())))
    sig = vectorized.evaluate(
        config.strategy_key, bars.open, bars.high, bars.low, bars.close, config.parameters, config.tick_size
    )
    ok = tradable(config.instrument, np.asarray(bars.ts, dtype=np.int64), tf)
    sides = (-1, 0, 1)
    acts = {s: vectorized.actions(sig, s) for s in sides}
    reasons = {s: hold_reasons(sig, s) for s in sides}
    if cancelled is not None and cancelled():  # the arrays took a while on a long window: look once now
        raise Cancelled("cancelled before the first bar")
    if use_kernel and kernel_covers(config, record_decisions=record_decisions):
        result = _run_kernel(bars, config, sig, ok, acts, reasons, first, progress, cancelled)
        if result is not None:
            return result
    return _run_loop(bars, config, sig, ok, acts, reasons, first, record_decisions, progress, cancelled)


def kernel_covers(config: EngineConfig, *, record_decisions: bool) -> bool:
    """The runs the compiled kernel makes (the module docstring): no risk limits, no decision log,
    a fill model and instrument sim_fill accepts."""
    return (
        config.risk_limits is None
        and not record_decisions
        and config.tick_size.is_finite()
        and config.tick_size > 0
        and config.point_value.is_finite()
        and config.point_value > 0
        and config.fill_model.commission_per_contract.is_finite()
        and isinstance(config.fill_model.slippage_ticks, int)
        and abs(config.fill_model.slippage_ticks) < 2**31
    )


def _run_loop(
    bars: Any,
    config: EngineConfig,
    sig: vectorized.Signals,
    ok: np.ndarray,
    acts: dict[int, np.ndarray],
    reasons: dict[int, np.ndarray],
    first: int,
    record_decisions: bool,
    progress: Callable[[float], None] | None,
    cancelled: Callable[[], bool] | None,
) -> EngineResult:
    """The Python loop: the reference, and every run outside the kernel's domain."""
    n = len(bars.ts)
    tf = config.timeframe_seconds
    sides = (-1, 0, 1)
    # The decision events per side: a tradable window bar whose decision is not a HOLD.
    events = {s: np.flatnonzero((acts[s] != vectorized.HOLD) & ok & (np.arange(n) >= first)) for s in sides}
    book = _Book(bars, config)
    counts = _Counts()
    log: list[DecisionRecord] | None = [] if record_decisions else None
    settled_upto = first - 1  # the newest bar whose fills are applied
    i = first
    last_beat = _time.monotonic()

    quiet: list[tuple[int, int, int]] = []  # (a, b, side): bars a..b−1 held on `side`, counted at the end

    def count_quiet(a: int, b: int, side: int) -> None:
        """Bars a..b−1 decided HOLD (or closed) for `side`: counted, logged when asked."""
        if b <= a:
            return
        quiet.append((a, b, side))
        if log is not None:
            for k in range(a, b):
                at = _utc(int(bars.ts[k]) + tf)
                if ok[k]:
                    log.append(DecisionRecord(at, "NO_TRADE", "strategy", REASONS[reasons[side][k]]))
                else:
                    log.append(DecisionRecord(at, "NO_TRADE", "market_hours", MARKET_CLOSED))

    while i < n:
        if progress is not None or cancelled is not None:
            beat = _time.monotonic()
            if beat - last_beat >= 0.5:
                last_beat = beat
                if cancelled is not None and cancelled():
                    raise Cancelled(f"cancelled at bar {i - first} of {n - first}")
                if progress is not None:
                    progress((i - first) / max(1, n - first))
        held = book.position.quantity
        side = (held > 0) - (held < 0)
        # The next bar where something can happen: a decision event for this side, a working order
        # reached (a market order: its next bar; a stop: the first bar that trades through it).
        ev = events[side]
        at = int(np.searchsorted(ev, i))
        nxt = int(ev[at]) if at < len(ev) else n
        for order in book.working:
            lo = max(i, settled_upto + 1, int(np.searchsorted(bars.ts, order.working_from)))
            if order.order_type == "MARKET":
                nxt = min(nxt, lo)
            else:
                hit = _first_stop_hit(bars, order, config.tick_size, lo, nxt + 1)
                if hit is not None:
                    nxt = min(nxt, hit)
        if nxt >= n:
            count_quiet(i, n, side)
            break
        count_quiet(i, nxt, side)
        i = nxt
        bar_ts = _utc(int(bars.ts[i]) + tf)
        now = bar_ts + timedelta(seconds=1)
        close = config.tick_size * int(bars.close[i])
        if not ok[i]:
            # market_hours stops the tick before market data: nothing settles now; the bar's fills
            # happen at the next tick that settles, on the same bars (first_fill walks them all).
            counts.closed += 1
            if log is not None:
                log.append(DecisionRecord(bar_ts, "NO_TRADE", "market_hours", MARKET_CLOSED))
            if settled_upto < i and book.working:
                book.settle_and_protect(i, now=now, bar_ts=bar_ts, reference=close)
                settled_upto = i
            i += 1
            continue
        if settled_upto < i:
            book.settle_and_protect(i, now=now, bar_ts=bar_ts, reference=close)
            settled_upto = i
        else:
            book.protect(now=now, bar_ts=bar_ts, reference=close)
        held = book.position.quantity
        action, stop_ticks, codes = vectorized.decision(sig, i, held)
        if action == "HOLD":
            counts.no_trade[_R[codes[0]]] += 1
            if log is not None:
                log.append(DecisionRecord(bar_ts, "NO_TRADE", "strategy", codes[0]))
            i += 1
            continue
        target = {"BUY": strategies.UNIT, "SELL": -strategies.UNIT, "FLAT": 0}[action]
        order_side = BUY if target > held else SELL
        quantity = abs(target - held)
        replaces = tuple(o.ref for o in book.working if o.order_type == "STOP") if held else ()
        allowed, code = book.risk_allows(
            side=order_side, quantity=quantity, order_type="MARKET", stop_price=None,
            origin=risk.IntentOrigin.STRATEGY, now=now, bar_ts=bar_ts, reference=close, replaces=replaces,
        )  # fmt: skip
        if not allowed:
            counts.risk[code] = counts.risk.get(code, 0) + 1
            if log is not None:
                log.append(DecisionRecord(bar_ts, "NO_TRADE", "risk", code))
            i += 1
            continue
        counts.trade[_R[codes[0]]] += 1
        if log is not None:
            log.append(DecisionRecord(bar_ts, "TRADE", "", codes[0]))
        book.working = [o for o in book.working if o.ref not in replaces]
        book.protected = False
        book.working.append(
            book._new(
                side=order_side, quantity=quantity, order_type="MARKET", working_from=int(bar_ts.timestamp()),
                decided_at=bar_ts, protective_stop=None if stop_ticks is None else config.tick_size * stop_ticks,
            )
        )  # fmt: skip
        # The execution stage: the next bar has closed (a replay), so the order fills on it now and
        # the position gets its stop in this tick.
        if i + 1 < n:
            book.settle_and_protect(i + 1, now=now, bar_ts=bar_ts, reference=close)
            settled_upto = i + 1
        i += 1

    if progress is not None:
        progress(1.0)
    held_on = np.full(n, 2, dtype=np.int8)  # 2: not a quiet bar
    for a, b, side in quiet:
        held_on[a:b] = side
    for side in sides:
        on = held_on == side
        counts.closed += int((on & ~ok).sum())
        counts.no_trade += np.bincount(reasons[side][on & ok], minlength=len(REASONS))
    window = slice(first, n)
    close_ts = np.asarray(bars.ts[window], dtype=np.int64) + tf
    position, equity = _marks(
        bars,
        config,
        first,
        n,
        np.asarray(book.fill_bars, dtype=np.int64),
        np.asarray([f.quantity if f.side == BUY else -f.quantity for f in book.fills], dtype=np.int64),
        np.asarray([float(f.price / config.tick_size) for f in book.fills], dtype=np.float64),
        np.asarray([float(f.fee) for f in book.fills], dtype=np.float64),
    )
    if book.open is not None and n > first:
        last = n - 1
        mark = config.tick_size * int(bars.close[last])
        book._close(_utc(int(bars.ts[last])), mark, "END", book.open.quantity, Decimal(0), Decimal(0))
    return EngineResult(
        fills=book.fills,
        trades=book.trades,
        decisions=counts.as_dict(),
        bars=n - first,
        close_ts=close_ts,
        equity=equity,
        position=position,
        decision_log=log,
        notes=book.notes,
    )


def _marks(
    bars: Any,
    config: EngineConfig,
    first: int,
    n: int,
    fill_bar: np.ndarray,
    signed: np.ndarray,
    price_ticks: np.ndarray,
    fee: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(position, equity) at each window bar's close, from the fills (their bar, signed quantity,
    price in ticks and fee in USD, in the order they happened): cash in ticks plus the position
    marked at the close, times the tick's value, less the fees so far."""
    m = n - first
    at = np.maximum(fill_bar - first, 0)
    flow = np.zeros(m + 1, dtype=np.float64)  # Δ cash in ticks at bar k (k = index − first)
    qty = np.zeros(m + 1, dtype=np.int64)
    fees = np.zeros(m + 1, dtype=np.float64)
    np.add.at(qty, at, signed)
    np.add.at(flow, at, -(signed * price_ticks))
    np.add.at(fees, at, fee)  # in the fills' order, as a bar's fees were summed one by one
    position = np.cumsum(qty[:m])
    tick_value = float(config.tick_size * config.point_value)
    closes = np.asarray(bars.close[first:n], dtype=np.float64)
    equity = (
        float(config.initial_capital) + (np.cumsum(flow[:m]) + position * closes) * tick_value - np.cumsum(fees[:m])
    )
    return position, equity


# -- the compiled kernel ----------------------------------------------------------------------------------

# Bars per kernel call: progress and cancel are looked at between calls; a window is run in about
# 64 calls (a call costs some µs), none over KERNEL_CHUNK bars (a few ms of run).
KERNEL_CHUNK = 1 << 16


def _kernel_rows(window_bars: int) -> int:
    """The first size of the kernel's fill and trade buffers (doubled when full): about the fills
    of a fast strategy on minute bars."""
    return 1024 + window_bars // 8


def _run_kernel(
    bars: Any,
    config: EngineConfig,
    sig: vectorized.Signals,
    ok: np.ndarray,
    acts: dict[int, np.ndarray],
    reasons: dict[int, np.ndarray],
    first: int,
    progress: Callable[[float], None] | None,
    cancelled: Callable[[], bool] | None,
) -> EngineResult | None:
    """The run in the compiled kernel (apps/trading/engine_kernel.py), or None when it met what it
    does not cover (the caller runs the Python loop then)."""
    from apps.trading import engine_kernel as k  # numba is imported by the runs that use it

    n = len(bars.ts)
    tf = config.timeframe_seconds
    ts, op, hi, lo, cl = (_readonly(a) for a in (bars.ts, bars.open, bars.high, bars.low, bars.close))
    act = np.stack([acts[-1], acts[0], acts[1]]).astype(np.int8)
    why = np.stack([reasons[-1], reasons[0], reasons[1]]).astype(np.int16)
    stop = np.ascontiguousarray(sig.stop, dtype=np.int64)
    ok8 = np.ascontiguousarray(ok, dtype=np.bool_)
    state, orders = k.new_state(first)
    cap = _kernel_rows(n - first)
    fills = np.zeros((cap, k.FILL_FIELDS), dtype=np.int64)
    trades = np.zeros((cap, k.TRADE_FIELDS), dtype=np.int64)
    traded = np.zeros(len(REASONS), dtype=np.int64)
    held = np.zeros(len(REASONS), dtype=np.int64)
    slip, unit = int(config.fill_model.slippage_ticks), int(strategies.UNIT)
    chunk = max(1, min(KERNEL_CHUNK, max(256, (n - first) // 64)))
    i = first
    last_beat = _time.monotonic()
    while i < n:
        if progress is not None or cancelled is not None:
            beat = _time.monotonic()
            if beat - last_beat >= 0.5:
                last_beat = beat
                if cancelled is not None and cancelled():
                    raise Cancelled(f"cancelled at bar {i - first} of {n - first}")
                if progress is not None:
                    progress((i - first) / max(1, n - first))
        end = min(n, i + chunk)
        status, i = k.run_chunk(
            i, end, tf, ts, op, hi, lo, cl, ok8, act, why, stop, slip, unit, state, orders, fills, trades, traded, held
        )
        if status == k.FULL:
            more = len(fills) + k.FILL_MARGIN
            fills = np.concatenate([fills, np.zeros((more, k.FILL_FIELDS), dtype=np.int64)])
            trades = np.concatenate([trades, np.zeros((more, k.TRADE_FIELDS), dtype=np.int64)])
        elif status != k.DONE:
            return None
    if progress is not None:
        progress(1.0)
    fills = fills[: state[k.N_FILLS]]
    trades = trades[: state[k.N_TRADES]]
    if state[k.OPEN] == 1 and n > first:  # the position open at the end: a trade to the last close
        end_row = np.array(
            [[state[k.OPEN_FILL], -1, state[k.OPEN_QTY], k.REASON_END, state[k.OPEN_SIDE]]], dtype=np.int64
        )
        trades = np.concatenate([trades, end_row])
    counts = _Counts()
    counts.trade, counts.no_trade, counts.closed = traded, held, int(state[k.CLOSED])
    columns = Columns(config, ts, cl, fills, trades)
    signed = fills[:, k.F_SIDE] * fills[:, k.F_QTY]
    quantities = fills[:, k.F_QTY]
    fee = np.zeros(len(fills), dtype=np.float64)
    for q in np.unique(quantities).tolist():
        fee[quantities == q] = float(columns.fee(q))
    position, equity = _marks(
        bars, config, first, n, fills[:, k.F_BAR], signed, fills[:, k.F_PRICE].astype(np.float64), fee
    )
    return EngineResult(
        decisions=counts.as_dict(),
        bars=n - first,
        close_ts=ts[first:n] + tf,
        equity=equity,
        position=position,
        notes=[],
        columns=columns,
    )


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only int64 view (a copy only when the type or layout differs): the bars reach the kernel
    as one array type, writable or not (BarArrays' are read-only), so it is compiled once."""
    out = np.ascontiguousarray(a, dtype=np.int64).view()
    out.flags.writeable = False
    return out


class Columns:
    """A kernel run's fills and trades as int64 columns (engine_kernel's F_* and T_* fields: prices
    in ticks, times in epoch seconds, sides ±1), and the Decimals the Python loop makes from them:
    each figure is computed with the very expression _Book uses, so values and their digits match."""

    def __init__(self, config: EngineConfig, ts: np.ndarray, close: np.ndarray, fills: np.ndarray, trades: np.ndarray):
        self.config, self.ts, self.close = config, ts, close
        self.fill_columns, self.trade_columns = fills, trades
        self._fees: dict[int, Decimal] = {}
        self._money: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._money_done = False

    def fee(self, quantity: int) -> Decimal:
        """sim_fill's commission for `quantity` contracts."""
        fee = self._fees.get(quantity)
        if fee is None:
            fee = self._fees[quantity] = CONTEXT.multiply(
                self.config.fill_model.commission_per_contract, Decimal(quantity)
            )
        return fee

    def fills(self) -> list[EngineFill]:
        tick, pv = self.config.tick_size, self.config.point_value
        slippages: dict[tuple[int, int], Decimal] = {}
        out = []
        for j, side, quantity, price_ticks, reference_ticks, kind, decided in self.fill_columns.tolist():
            price = tick * price_ticks
            slippage = slippages.get((price_ticks - reference_ticks, quantity))
            if slippage is None:  # sim_fill's, from the fill's price and its reference price
                slippage = CONTEXT.multiply(abs(price - tick * reference_ticks), pv) * quantity
                slippages[price_ticks - reference_ticks, quantity] = slippage
            out.append(
                EngineFill(
                    _utc(int(self.ts[j])), BUY if side > 0 else SELL, quantity, price, self.fee(quantity), slippage,
                    "STOP" if kind == 1 else "MARKET", _utc(decided),
                )
            )  # fmt: skip
        return out

    def trades(self, fills: list[EngineFill]) -> list[EngineTrade]:
        """_Book._trades and _close, for a trade opened by one fill and closed whole by another (the
        kernel's domain) or marked at the last close (END)."""
        pv = self.config.point_value
        reasons = ("SIGNAL", "STOP", "END")
        out = []
        for entry_fill, exit_fill, quantity, reason, side in self.trade_columns.tolist():
            e = fills[entry_fill]
            entry_fees = e.fee / e.quantity * quantity
            entry_slip = e.slippage / e.quantity * quantity
            if exit_fill >= 0:
                x = fills[exit_fill]
                at, price = x.ts, x.price
                fee, slip = x.fee / x.quantity * quantity, x.slippage / x.quantity * quantity
            else:
                last = len(self.ts) - 1
                at, price = _utc(int(self.ts[last])), self.config.tick_size * int(self.close[last])
                fee, slip = Decimal(0), Decimal(0)
            gross = (price - e.price) * side * quantity * pv
            fees = entry_fees + fee
            out.append(
                EngineTrade(
                    side="LONG" if side > 0 else "SHORT", quantity=quantity, entry_ts=e.ts, entry_price=e.price,
                    exit_ts=at, exit_price=price, exit_reason=reasons[reason], pnl=gross - fees, fees=fees,
                    slippage=entry_slip + slip,
                )
            )  # fmt: skip
        return out

    # -- the trades' figures straight from the columns (no dataclass built) ----------------------------
    # Every figure of a kernel trade is a whole number of one decimal quantum 10^-k: prices are ticks,
    # the tick's value (tick_size × point_value) and the commission per contract are fixed decimals,
    # and a trade is opened by one fill and closed whole by one (or END), so the Python loop's
    # Decimals (trades() above) are exact multiples of 10^-k, and so are their sums. Computed as int64
    # here, they are those very values: tests/backtests/test_trade_columns.py holds them to trades().

    # Largest quantum exponent and magnitude the integer figures take: past either, money() answers
    # None and the caller builds the Decimals (as trades() does) instead.
    MAX_SCALE = 18
    MAX_MAGNITUDE = 1 << 62

    @staticmethod
    def _scaled(value: Decimal) -> tuple[int, int] | None:
        """(n, k) with value == n × 10^-k and k ≥ 0, or None for a value that is not finite."""
        if not value.is_finite():
            return None
        sign, digits, exponent = value.as_tuple()
        n = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        assert isinstance(exponent, int)
        return (n * 10**exponent, 0) if exponent >= 0 else (n, -exponent)

    def money(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray] | None:
        """(k, pnl, fees, slippage): each trade's net PnL, fees and slippage as int64 numbers of
        10^-k USD, equal to trades()'s Decimals; None when k or the magnitudes are past what int64
        holds exactly (then use trades())."""
        if self._money_done:
            return self._money
        self._money_done = True
        cfg = self.config
        parts = [self._scaled(v) for v in (cfg.tick_size, cfg.point_value, cfg.fill_model.commission_per_contract)]
        if any(p is None for p in parts):
            return None
        (tick, k_tick), (pv, k_pv), (fee, k_fee) = parts  # type: ignore[misc]
        k = max(k_tick + k_pv, k_fee)
        if k > self.MAX_SCALE:
            return None
        tick_value = tick * pv * 10 ** (k - k_tick - k_pv)  # USD per tick per contract, in 10^-k
        commission = fee * 10 ** (k - k_fee)  # USD per contract, in 10^-k
        from apps.trading import engine_kernel as kc

        f, t = self.fill_columns, self.trade_columns
        entry, exit_, quantity, side = t[:, kc.T_ENTRY_FILL], t[:, kc.T_EXIT_FILL], t[:, kc.T_QTY], t[:, kc.T_SIDE]
        closed = exit_ >= 0
        exit_row = np.where(closed, exit_, 0)
        entry_price = f[entry, kc.F_PRICE] if len(t) else np.zeros(0, dtype=np.int64)
        last_close = int(self.close[len(self.ts) - 1]) if len(self.ts) else 0
        exit_price = np.where(closed, f[exit_row, kc.F_PRICE] if len(f) else 0, last_close)
        slip_ticks = np.abs(f[:, kc.F_PRICE] - f[:, kc.F_REFERENCE]) if len(f) else np.zeros(0, dtype=np.int64)
        entry_slip = slip_ticks[entry] if len(t) else np.zeros(0, dtype=np.int64)
        exit_slip = np.where(closed, slip_ticks[exit_row] if len(f) else 0, 0)
        # The bound on every figure and on the sums of the trades, in exact integers first.
        if len(t):
            ticks = max(int(np.abs(exit_price - entry_price).max()), int((entry_slip + exit_slip).max()))
            biggest = int(np.abs(f[:, kc.F_PRICE]).max()) + int(np.abs(f[:, kc.F_REFERENCE]).max()) + abs(last_close)
            per_trade = (ticks * abs(tick_value) + 2 * abs(commission)) * int(quantity.max())
            if biggest >= self.MAX_MAGNITUDE or per_trade * len(t) >= self.MAX_MAGNITUDE:
                return None
        gross = (exit_price - entry_price) * side * quantity * tick_value
        fees = quantity * commission * (1 + closed)
        slippage = (entry_slip + exit_slip) * quantity * tick_value
        self._money = (k, (gross - fees).astype(np.int64), fees.astype(np.int64), slippage.astype(np.int64))
        return self._money

    def trade_rows(self) -> list[tuple[Any, ...]] | None:
        """Each trade as (side, quantity, entry_ts, entry_price, exit_ts, exit_price, exit_reason, pnl,
        fees, slippage), the values of trades()'s EngineTrade in that order (the same datetimes and
        the same Decimal values, PnL, fees and slippage as numbers of 10^-k), built once per distinct
        value and gathered; None when money() is."""
        money = self.money()
        if money is None:
            return None
        k, pnl, fees, slippage = money
        from apps.trading import engine_kernel as kc

        f, t = self.fill_columns, self.trade_columns
        if not len(t):
            return []
        closed = t[:, kc.T_EXIT_FILL] >= 0
        entry, exit_row = t[:, kc.T_ENTRY_FILL], np.where(closed, t[:, kc.T_EXIT_FILL], 0)
        last = len(self.ts) - 1
        entry_ts = self.ts[f[entry, kc.F_BAR]]
        exit_ts = np.where(closed, self.ts[f[exit_row, kc.F_BAR]], self.ts[last])
        entry_price = f[entry, kc.F_PRICE]
        exit_price = np.where(closed, f[exit_row, kc.F_PRICE], int(self.close[last]))
        tick = self.config.tick_size

        def gather(values: np.ndarray, make: Callable[[int], Any]) -> list[Any]:
            distinct, at = np.unique(values, return_inverse=True)
            built = np.empty(len(distinct), dtype=object)
            built[:] = [make(v) for v in distinct.tolist()]
            return built[at.reshape(-1)].tolist()

        times = gather(np.concatenate([entry_ts, exit_ts]), _utc)
        prices = gather(np.concatenate([entry_price, exit_price]), lambda p: tick * p)  # trades()'s expression
        figures = gather(np.concatenate([pnl, fees, slippage]), lambda v: Decimal(v).scaleb(-k, CONTEXT))
        n = len(t)
        sides = np.array(["SHORT", "", "LONG"], dtype=object)[t[:, kc.T_SIDE] + 1].tolist()
        reasons = np.array(["SIGNAL", "STOP", "END"], dtype=object)[t[:, kc.T_REASON]].tolist()
        return list(
            zip(
                sides, t[:, kc.T_QTY].tolist(), times[:n], prices[:n], times[n:], prices[n:], reasons,
                figures[:n], figures[n : 2 * n], figures[2 * n :], strict=True,
            )
        )  # fmt: skip
