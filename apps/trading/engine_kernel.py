"""The engine's event loop compiled (numba) over int64 arrays: the same state machine as
`apps.trading.engine._Book` and its run loop, for the runs without risk limits (engine.py says when
it is used). It visits every window bar, where the Python loop jumps from event to event; the two
agree because a bar the Python loop skips is one where nothing can happen (tests/trading/
test_engine.py holds that, and tests/trading/test_engine_kernel.py holds this kernel to the loop).

Everything is an integer: prices in ticks, times in epoch seconds, sides +1 (BUY/LONG) and −1
(SELL/SHORT). Fees and slippage are not computed here: they are a function of a fill's quantity and
of its price against its reference price, both recorded, and engine.py turns them into the same
Decimals the Python loop makes.

The kernel does not handle what a strategy of one contract never does, and answers OUT_OF_DOMAIN
instead, so that the caller runs the Python loop: adding to an open position or closing part of it
(an average entry price that is not a whole tick), more than MAX_ORDERS working orders. BAD_BAR: a
fill on a bar whose open is outside its high and low (the Python loop raises sim_fill's error).
"""

from __future__ import annotations

import os

from config.embedded import var_dir

# The compiled kernel is cached (a first compile takes seconds, a cache load a fraction of one) in
# var/numba, which the project's processes can write (the source tree may be read-only); read by
# numba at its import, so only where this module is the first to import it.
os.environ.setdefault("NUMBA_CACHE_DIR", str(var_dir() / "numba"))

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

# Status of a chunk.
DONE, FULL, OUT_OF_DOMAIN, BAD_BAR = 0, 1, 2, 3

# Action codes (apps.trading.vectorized): HOLD, BUY, SELL, FLAT.
_HOLD, _BUY, _SELL = 0, 1, 2
MARKET, STOP = 0, 1
REASON_SIGNAL, REASON_STOP, REASON_END = 0, 1, 2

MAX_ORDERS = 8
# Fills one bar can add at most: its working orders, a stop placed and filled twice, then the
# decision's order and its stops on the next bar.
FILL_MARGIN = 2 * MAX_ORDERS + 8

# The state vector.
POS, AVG, PROTECTED, ENTRY, ENTRY_DECIDED, ENTRY_STOP, STOPS_SINCE = 0, 1, 2, 3, 4, 5, 6
OPEN, OPEN_SIDE, OPEN_QTY, OPEN_FILL, SETTLED, N_FILLS, N_TRADES, N_ORDERS, CLOSED = 7, 8, 9, 10, 11, 12, 13, 14, 15
STATE_SIZE = 16

# An order's fields.
O_SIDE, O_QTY, O_TYPE, O_FROM, O_DECIDED, O_STOP, O_PROTECT, O_HAS_PROTECT = 0, 1, 2, 3, 4, 5, 6, 7
ORDER_FIELDS = 8

# A fill's fields (one row per fill, in the order they happen).
F_BAR, F_SIDE, F_QTY, F_PRICE, F_REFERENCE, F_TYPE, F_DECIDED = 0, 1, 2, 3, 4, 5, 6
FILL_FIELDS = 7

# A trade's fields: the fills that opened and closed it (−1: END, closed at the last close).
T_ENTRY_FILL, T_EXIT_FILL, T_QTY, T_REASON, T_SIDE = 0, 1, 2, 3, 4
TRADE_FIELDS = 5


def new_state(first: int) -> tuple[np.ndarray, np.ndarray]:
    state = np.zeros(STATE_SIZE, dtype=np.int64)
    state[PROTECTED] = 1
    state[SETTLED] = first - 1
    return state, np.zeros((MAX_ORDERS, ORDER_FIELDS), dtype=np.int64)


@njit(cache=True, nogil=True)
def _append_order(orders, S, side, qty, kind, working_from, decided, stop, protect, has_protect):
    k = S[N_ORDERS]
    if k >= MAX_ORDERS:
        return False
    orders[k, O_SIDE] = side
    orders[k, O_QTY] = qty
    orders[k, O_TYPE] = kind
    orders[k, O_FROM] = working_from
    orders[k, O_DECIDED] = decided
    orders[k, O_STOP] = stop
    orders[k, O_PROTECT] = protect
    orders[k, O_HAS_PROTECT] = has_protect
    S[N_ORDERS] = k + 1
    return True


@njit(cache=True, nogil=True)
def _apply(S, orders, k, j, price, reference, fills, trades, unit):
    """_Book._apply: the position (apply_fill), the fill, the trades, the entry that has a stop."""
    side = orders[k, O_SIDE]
    qty = orders[k, O_QTY]
    held = S[POS]
    signed = side * qty
    if held == 0:
        S[POS] = signed
        S[AVG] = price
    elif (held > 0) == (signed > 0):
        return OUT_OF_DOMAIN  # adding: an average price
    else:
        closed = min(abs(held), qty)
        if closed < abs(held):
            return OUT_OF_DOMAIN  # part of the position closed: fees shared pro rata
        remaining = held + signed
        S[POS] = remaining
        if remaining != 0:
            S[AVG] = price  # flipped: the rest opened at this price
    S[PROTECTED] = 0
    f = S[N_FILLS]
    fills[f, F_BAR] = j
    fills[f, F_SIDE] = side
    fills[f, F_QTY] = qty
    fills[f, F_PRICE] = price
    fills[f, F_REFERENCE] = reference
    fills[f, F_TYPE] = orders[k, O_TYPE]
    fills[f, F_DECIDED] = orders[k, O_DECIDED]
    S[N_FILLS] = f + 1
    rest = qty
    if S[OPEN] == 1 and (signed > 0) != (S[OPEN_SIDE] > 0):
        closing = min(abs(held), qty)
        t = S[N_TRADES]
        trades[t, T_ENTRY_FILL] = S[OPEN_FILL]
        trades[t, T_EXIT_FILL] = f
        trades[t, T_QTY] = closing
        trades[t, T_REASON] = REASON_STOP if orders[k, O_TYPE] == STOP else REASON_SIGNAL
        trades[t, T_SIDE] = S[OPEN_SIDE]
        S[N_TRADES] = t + 1
        S[OPEN] = 0
        rest = qty - closing
    if rest > 0:
        if S[OPEN] == 1:
            return OUT_OF_DOMAIN
        S[OPEN] = 1
        S[OPEN_SIDE] = 1 if signed > 0 else -1
        S[OPEN_QTY] = rest
        S[OPEN_FILL] = f
    after = S[POS]
    if orders[k, O_HAS_PROTECT] == 1 and after != 0 and (after > 0) == (side > 0):
        S[ENTRY] = 1
        S[ENTRY_DECIDED] = orders[k, O_DECIDED]
        S[ENTRY_STOP] = orders[k, O_PROTECT]
        S[STOPS_SINCE] = 0
    if after == 0:
        S[ENTRY] = 0
    return DONE


@njit(cache=True, nogil=True)
def _settle(S, orders, j, ts, op, hi, lo, slip, fills, trades, unit):
    """_Book.settle: the working orders bar j reaches fill, oldest first (sim_fill's prices)."""
    n_orders = S[N_ORDERS]
    if n_orders == 0:
        return DONE
    t, o, h, low = ts[j], op[j], hi[j], lo[j]
    kept = 0
    for k in range(n_orders):
        keep = True
        if orders[k, O_FROM] <= t:
            side = orders[k, O_SIDE]
            stop = orders[k, O_STOP]
            kind = orders[k, O_TYPE]
            if kind == STOP and ((side > 0 and h < stop) or (side < 0 and low > stop)):
                pass  # the bar does not reach the stop
            else:
                if not (low <= o <= h):
                    return BAD_BAR
                if kind == MARKET:
                    reference = o
                elif side > 0:
                    reference = max(o, stop)
                else:
                    reference = min(o, stop)
                price = reference + side * slip
                price = min(price, h) if side > 0 else max(price, low)
                status = _apply(S, orders, k, j, price, reference, fills, trades, unit)
                if status != DONE:
                    return status
                keep = False
        if keep:
            if kept != k:
                orders[kept, :] = orders[k, :]
            kept += 1
    S[N_ORDERS] = kept
    return DONE


@njit(cache=True, nogil=True)
def _cancel_stops(S, orders, keep_side, keep_index):
    """Drop the working stops, except those on `keep_side` (0: none) and the one at `keep_index`."""
    kept = 0
    for k in range(S[N_ORDERS]):
        drop = orders[k, O_TYPE] == STOP and k != keep_index and orders[k, O_SIDE] != keep_side
        if not drop:
            if kept != k:
                orders[kept, :] = orders[k, :]
            kept += 1
    S[N_ORDERS] = kept


@njit(cache=True, nogil=True)
def _protect(S, orders, tick_bar_close):
    """_Book.protect with stops.protection_plan (no risk check): 1 when a stop was placed, 0 when
    not, OUT_OF_DOMAIN (as −1) when the order book is full."""
    if S[PROTECTED] == 1:
        return 0
    S[PROTECTED] = 1
    held = S[POS]
    if held == 0:
        _cancel_stops(S, orders, 0, -1)
        return 0
    pside = -1 if held > 0 else 1
    in_flight = False
    for k in range(S[N_ORDERS]):
        if orders[k, O_TYPE] != STOP:
            in_flight = True
    if in_flight:  # the position is about to change: only stops on the wrong side go
        _cancel_stops(S, orders, pside, -1)
        return 0
    has_entry = S[ENTRY] == 1
    keep = -1
    for k in range(S[N_ORDERS]):
        if (
            orders[k, O_TYPE] == STOP
            and orders[k, O_SIDE] == pside
            and orders[k, O_QTY] == abs(held)
            and (not has_entry or orders[k, O_STOP] == S[ENTRY_STOP])
        ):
            keep = k
            break
    _cancel_stops(S, orders, 0, keep)
    if keep >= 0 or not has_entry:
        return 0
    sequence = S[STOPS_SINCE]
    S[STOPS_SINCE] = sequence + 1
    working_from = S[ENTRY_DECIDED] if sequence == 0 else max(S[ENTRY_DECIDED], tick_bar_close)
    if not _append_order(orders, S, pside, abs(held), STOP, working_from, working_from, S[ENTRY_STOP], 0, 0):
        return -1
    return 1


@njit(cache=True, nogil=True)
def _settle_and_protect(S, orders, j, tick_bar_close, ts, op, hi, lo, slip, fills, trades, unit):
    for _ in range(3):
        status = _settle(S, orders, j, ts, op, hi, lo, slip, fills, trades, unit)
        if status != DONE:
            return status
        placed = _protect(S, orders, tick_bar_close)
        if placed < 0:
            return OUT_OF_DOMAIN
        if placed == 0:
            break
    return DONE


@njit(cache=True, nogil=True)
def _quiet(S, orders, t, h, low):
    """True when bar (t, h, low) can change nothing: no working order reaches it and the protection
    is up to date (settle and protect would do nothing). Most bars; checked without the calls."""
    if S[PROTECTED] != 1:
        return False
    for k in range(S[N_ORDERS]):
        if orders[k, O_FROM] <= t:
            if orders[k, O_TYPE] != STOP:
                return False
            stop = orders[k, O_STOP]
            if (h >= stop) if orders[k, O_SIDE] > 0 else (low <= stop):
                return False
    return True


@njit(cache=True, nogil=True)
def run_chunk(
    i0,
    i1,
    tf,
    ts,
    op,
    hi,
    lo,
    cl,
    ok,
    acts,
    reasons,
    stops,
    slip,
    unit,
    S,
    orders,
    fills,
    trades,
    traded,
    held,
):
    """The run loop over bars i0..i1−1 (engine.run's, every bar visited). Returns (status, the bar
    to resume at). `traded` / `held`: decision counts by reason index, for TRADE / NO_TRADE."""
    n = len(ts)
    i = i0
    while i < i1:
        if S[N_FILLS] + FILL_MARGIN > fills.shape[0] or S[N_TRADES] + FILL_MARGIN > trades.shape[0]:
            return FULL, i
        bar_close = ts[i] + tf
        if not ok[i]:  # market_hours stops the tick: only the fills of that bar are settled
            S[CLOSED] += 1
            if S[SETTLED] < i and S[N_ORDERS] > 0:
                if _quiet(S, orders, ts[i], hi[i], lo[i]):
                    S[SETTLED] = i
                    i += 1
                    continue
                status = _settle_and_protect(S, orders, i, bar_close, ts, op, hi, lo, slip, fills, trades, unit)
                if status != DONE:
                    return status, i
                S[SETTLED] = i
            i += 1
            continue
        if S[SETTLED] < i:
            if not _quiet(S, orders, ts[i], hi[i], lo[i]):
                status = _settle_and_protect(S, orders, i, bar_close, ts, op, hi, lo, slip, fills, trades, unit)
                if status != DONE:
                    return status, i
            S[SETTLED] = i
        elif S[PROTECTED] != 1 and _protect(S, orders, bar_close) < 0:
            return OUT_OF_DOMAIN, i
        position = S[POS]
        side = (position > 0) - (position < 0)
        action = acts[side + 1, i]
        code = reasons[side + 1, i]
        if action == _HOLD:
            held[code] += 1
            i += 1
            continue
        target = unit if action == _BUY else (-unit if action == _SELL else 0)
        order_side = 1 if target > position else -1
        quantity = abs(target - position)
        traded[code] += 1
        if position != 0:  # the order replaces the position's stops
            _cancel_stops(S, orders, 0, -1)
        S[PROTECTED] = 0
        entry = action in (_BUY, _SELL)
        if not _append_order(
            orders,
            S,
            order_side,
            quantity,
            MARKET,
            bar_close,
            bar_close,
            0,
            stops[i] if entry else 0,
            1 if entry else 0,
        ):
            return OUT_OF_DOMAIN, i
        if i + 1 < n:  # a replay: the next bar has closed, the order fills on it in this tick
            status = _settle_and_protect(S, orders, i + 1, bar_close, ts, op, hi, lo, slip, fills, trades, unit)
            if status != DONE:
                return status, i
            S[SETTLED] = i + 1
        i += 1
    return DONE, i


def warm() -> None:
    """Compile run_chunk, or load it from the cache (var/numba), for the argument types
    engine._run_kernel passes (read-only int64 bars, a bool mask, int8 actions, int16 reasons, int64
    state and buffers), over a few empty bars: the first backtest of a process then runs at once.
    A cold compile takes 15-40 s, a cache load about 1.5 s (tests/trading/test_engine_kernel.py
    holds the types to the engine's: a run after warm() compiles nothing more)."""
    n = 4
    bars = np.zeros(n, dtype=np.int64)
    bars.flags.writeable = False
    state, orders = new_state(0)
    fills = np.zeros((FILL_MARGIN + 1, FILL_FIELDS), dtype=np.int64)
    trades = np.zeros((FILL_MARGIN + 1, TRADE_FIELDS), dtype=np.int64)
    run_chunk(
        0, n, 60, bars, bars, bars, bars, bars, np.zeros(n, dtype=np.bool_), np.zeros((3, n), dtype=np.int8),
        np.zeros((3, n), dtype=np.int16), np.zeros(n, dtype=np.int64), 0, 1, state, orders, fills, trades,
        np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64),
    )  # fmt: skip
