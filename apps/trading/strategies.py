"""The strategies: pure functions of (bars, parameters, position, tick size) → Decision.

The same call serves a runner tick, a replayed tick and a backtest (SPEC §1.5). Nothing here reads
a clock, a setting, the database or a random source, and all arithmetic is Decimal in one fixed
context (apps/trading/indicators.py), so the same input gives the same Decision, digit for digit.

Inputs, common to every strategy:
- `bars`: closed bars, oldest first, strictly increasing `ts`, each with `ts, open, high, low,
  close, volume` and Decimal prices (apps.integrations.bars.ProviderBar has this shape; so will the
  market app's stored bars). The last bar is the one just closed: the decision is "as of" its close.
- `parameters`: exactly the strategy's catalogue parameters (apps/trading/catalogue.py), no more, no
  fewer; the catalogue validates ranges when a bot is saved, this module re-checks what it relies on.
- `position`: the bot's current signed quantity in contracts (0 flat, > 0 long, < 0 short).
- `tick_size`: the instrument's tick (e.g. Decimal("0.25") for MES), from the instrument's contract
  specification, passed by the caller: breakout buffers are counted in ticks and stop prices are
  put on the tick grid.

Each strategy looks only at the last `required_bars(key, parameters)` bars; older bars are ignored,
so a tick that loads exactly that many bars and a backtest holding years of them decide alike.
Fewer bars than that is a HOLD with reason INSUFFICIENT_BARS (and the count needed), never a guess.

Position sizing is not a strategy's job: a strategy wants long one contract (target +1), short one
(target −1) or flat (0). Being on the wanted side already, with any size, is a HOLD (IN_POSITION);
risk limits and execution own the size. Exits by stop are not decided here either: an entry carries
`stop_price` (close ∓ stop_atr_multiple × ATR, widened to the tick grid) and execution works it as a
stop order; with no entry, `stop_price` is None.

Malformed input (unknown strategy, a parameter set that is not the catalogue's, bars that are not
Decimal or not in order, a tick size that is not a positive Decimal) raises StrategyInputError
with a stable `code`: it is a caller's bug, and the tick records it as the strategy stage's failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any, Protocol

from apps.trading import catalogue, fills, indicators
from apps.trading.indicators import in_context

# How many ATR periods of bars the Wilder ATR is computed over: one period to seed it, one more
# of smoothing. A fixed window keeps the value independent of how much history the caller holds.
ATR_WARMUP_PERIODS = 2

# The size a strategy wants on its side; sizing beyond it belongs to risk limits and execution.
UNIT = 1


class Bar(fills.Bar, Protocol):
    """A closed bar as a strategy reads it: the fill model's price range, its close and volume."""

    @property
    def close(self) -> Decimal: ...
    @property
    def volume(self) -> int: ...


class Action(StrEnum):
    BUY = "BUY"  # go to target +1 (open long, or reverse a short)
    SELL = "SELL"  # go to target −1 (open short, or reverse a long)
    FLAT = "FLAT"  # go to 0 (close the position)
    HOLD = "HOLD"  # no order: target = current position


# Stable reason codes. Extend, never rename: traces and dashboards key on them.
INSUFFICIENT_BARS = "INSUFFICIENT_BARS"
NO_SIGNAL = "NO_SIGNAL"
IN_POSITION = "IN_POSITION"
ZERO_ATR = "ZERO_ATR"
ZERO_VOLATILITY = "ZERO_VOLATILITY"
TREND_UP = "TREND_UP"
TREND_DOWN = "TREND_DOWN"
BREAKOUT_UP = "BREAKOUT_UP"
BREAKOUT_DOWN = "BREAKOUT_DOWN"
ZSCORE_ABOVE_ENTRY = "ZSCORE_ABOVE_ENTRY"
ZSCORE_BELOW_ENTRY = "ZSCORE_BELOW_ENTRY"
ZSCORE_REVERTED = "ZSCORE_REVERTED"

REASON_CODES: frozenset[str] = frozenset(
    {
        INSUFFICIENT_BARS,
        NO_SIGNAL,
        IN_POSITION,
        ZERO_ATR,
        ZERO_VOLATILITY,
        TREND_UP,
        TREND_DOWN,
        BREAKOUT_UP,
        BREAKOUT_DOWN,
        ZSCORE_ABOVE_ENTRY,
        ZSCORE_BELOW_ENTRY,
        ZSCORE_REVERTED,
    }
)

Feature = Decimal | int


@dataclass(frozen=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True)
class Decision:
    """What a strategy wants after the last bar, and why.

    `reasons[0]` explains the action (for a HOLD, why no order); any further reasons add the
    signal behind it. `features` are the named values the decision was computed from, exact."""

    strategy_key: str
    action: Action
    position: int  # the signed position the decision was made against
    target_position: int  # the signed position wanted; == position for a HOLD
    reasons: tuple[Reason, ...]
    features: dict[str, Feature]
    bars_required: int
    as_of: datetime | None  # ts of the last bar used; None when there were no bars
    stop_price: Decimal | None = None  # protective stop for an entry (BUY/SELL), on the tick grid

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    @property
    def order_quantity(self) -> int:
        """Contracts to trade to reach the target (2 for a reversal from ±1); 0 for a HOLD."""
        return abs(self.target_position - self.position)

    @property
    def side(self) -> str | None:
        """BUY or SELL for the order that reaches the target; None when there is none."""
        if self.target_position == self.position:
            return None
        return "BUY" if self.target_position > self.position else "SELL"

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe and canonical (Decimals as strings), for traces and comparisons."""
        return {
            "strategy_key": self.strategy_key,
            "action": str(self.action),
            "position": self.position,
            "target_position": self.target_position,
            "order_quantity": self.order_quantity,
            "side": self.side,
            "stop_price": None if self.stop_price is None else str(self.stop_price),
            "reasons": [{"code": r.code, "text": r.text} for r in self.reasons],
            "features": {k: str(v) if isinstance(v, Decimal) else v for k, v in self.features.items()},
            "bars_required": self.bars_required,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
        }


class StrategyInputError(ValueError):
    """A caller's bug, not a market condition. `code`: UNKNOWN_STRATEGY, INVALID_PARAMETERS,
    INVALID_BARS, INVALID_POSITION or INVALID_TICK_SIZE."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# The catalogue's parameter names, per strategy, and which are whole numbers: read from the
# catalogue itself (apps/trading/catalogue.py), the one place they are written.
PARAMETERS: dict[str, tuple[str, ...]] = {
    key: tuple(p.name for p in spec.parameters) for key, spec in catalogue.STRATEGIES.items()
}

_INT_PARAMETERS = frozenset(p.name for spec in catalogue.STRATEGIES.values() for p in spec.parameters if p.kind is int)


# -- input checks -------------------------------------------------------------------------------


def _parameters(key: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as ints and Decimals, or StrategyInputError. Floats become Decimal through
    their shortest repr (Decimal(str(2.5)) == Decimal("2.5")), which is exact and deterministic."""
    expected = PARAMETERS[key]
    if not isinstance(parameters, Mapping) or set(parameters) != set(expected):
        given = sorted(parameters) if isinstance(parameters, Mapping) else parameters
        raise StrategyInputError("INVALID_PARAMETERS", f"{key} takes exactly {list(expected)}, got {given!r}")
    clean: dict[str, Any] = {}
    for name in expected:
        value = parameters[name]
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise StrategyInputError("INVALID_PARAMETERS", f"{name} must be a number, got {value!r}")
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        if not number.is_finite():
            raise StrategyInputError("INVALID_PARAMETERS", f"{name} must be finite, got {value!r}")
        if name in _INT_PARAMETERS:
            if number != number.to_integral_value():
                raise StrategyInputError("INVALID_PARAMETERS", f"{name} must be a whole number, got {value!r}")
            clean[name] = int(number)
            if clean[name] < (0 if name == "breakout_buffer_ticks" else 1):
                raise StrategyInputError("INVALID_PARAMETERS", f"{name} is out of range: {value!r}")
        else:
            if number < 0 or (name != "exit_zscore" and number == 0):
                raise StrategyInputError("INVALID_PARAMETERS", f"{name} is out of range: {value!r}")
            clean[name] = number
    if key == "trend_following" and not clean["fast_period"] < clean["slow_period"]:
        raise StrategyInputError("INVALID_PARAMETERS", "fast_period must be smaller than slow_period")
    if key == "mean_reversion" and not clean["exit_zscore"] < clean["entry_zscore"]:
        raise StrategyInputError("INVALID_PARAMETERS", "exit_zscore must be smaller than entry_zscore")
    return clean


def _position(position: Any) -> int:
    if isinstance(position, bool) or not isinstance(position, int):
        raise StrategyInputError("INVALID_POSITION", f"position must be an int, got {position!r}")
    return position


def _tick_size(tick_size: Any) -> Decimal:
    if not isinstance(tick_size, Decimal) or not tick_size.is_finite() or tick_size <= 0:
        raise StrategyInputError("INVALID_TICK_SIZE", f"tick_size must be a positive Decimal, got {tick_size!r}")
    return tick_size


def _window(bars: Sequence[Bar], needed: int) -> Sequence[Bar]:
    """The last `needed` bars, checked: Decimal prices, strictly increasing ts."""
    window = bars[-needed:]
    previous: datetime | None = None
    for bar in window:
        for name in ("open", "high", "low", "close"):
            value = getattr(bar, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise StrategyInputError("INVALID_BARS", f"bar {bar.ts} {name} must be a finite Decimal, got {value!r}")
        if previous is not None and not bar.ts > previous:
            raise StrategyInputError(
                "INVALID_BARS", f"bars must be oldest first, one per ts: {bar.ts} after {previous}"
            )
        previous = bar.ts
    return window


# -- shared helpers -----------------------------------------------------------------------------


def atr_window(atr_period: int) -> int:
    """Bars the ATR is computed over: ATR_WARMUP_PERIODS × atr_period true ranges, +1 bar for the
    first true range's previous close."""
    return ATR_WARMUP_PERIODS * atr_period + 1


def required_bars(strategy_key: str, parameters: Mapping[str, Any]) -> int:
    """How many closed bars `decide` needs (and looks at) for these parameters."""
    if strategy_key not in PARAMETERS:
        raise StrategyInputError("UNKNOWN_STRATEGY", f"unknown strategy {strategy_key!r}")
    p = _parameters(strategy_key, parameters)
    atr_bars = atr_window(p["atr_period"])
    if strategy_key == "trend_following":
        return max(p["slow_period"], atr_bars)
    if strategy_key == "breakout":
        return max(p["lookback_bars"] + 1, atr_bars)
    return max(p["lookback_bars"], atr_bars)


def _fmt(value: Decimal) -> str:
    """A value for the human text: at most 4 decimals (features keep every digit)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        value = value.quantize(Decimal("0.0001"), context=indicators.CONTEXT)
    return str(value)


def _atr(window: Sequence[Bar], atr_period: int) -> Decimal:
    bars = window[-atr_window(atr_period) :]
    return indicators.atr([b.high for b in bars], [b.low for b in bars], [b.close for b in bars], atr_period)


@in_context
def _stop(side: int, close: Decimal, atr: Decimal, multiple: Decimal, tick_size: Decimal) -> Decimal:
    """close − multiple × ATR for a long (rounded down to the tick grid), close + multiple × ATR
    for a short (rounded up): rounding widens the stop, never tightens it past the ATR distance."""
    distance = multiple * atr
    raw = close - distance if side > 0 else close + distance
    ticks = (raw / tick_size).to_integral_value(rounding=ROUND_FLOOR if side > 0 else ROUND_CEILING)
    return ticks * tick_size


def _describe(position: int) -> str:
    if position > 0:
        return f"long {position}"
    if position < 0:
        return f"short {-position}"
    return "flat"


def _insufficient(key: str, bars: Sequence[Bar], needed: int, position: int) -> Decision:
    return Decision(
        strategy_key=key,
        action=Action.HOLD,
        position=position,
        target_position=position,
        reasons=(
            Reason(INSUFFICIENT_BARS, f"{needed} closed bars needed, {len(bars)} available: no decision without them"),
        ),
        features={"bars_required": needed, "bars_available": len(bars)},
        bars_required=needed,
        as_of=bars[-1].ts if bars else None,
    )


@dataclass(frozen=True)
class _Frame:
    """What a strategy decides from: its complete parameters, the position, the tick size, the bars
    it reads (the last `needed`, validated) and their ATR."""

    key: str
    p: dict[str, Any]
    position: int
    tick_size: Decimal
    needed: int
    window: Sequence[Bar]
    atr: Decimal


def _frame(
    key: str, bars: Sequence[Bar], parameters: Mapping[str, Any], position: Any, tick_size: Any
) -> _Frame | Decision:
    """The frame of a strategy's decision, or the HOLD INSUFFICIENT_BARS decision when it has too few bars."""
    p = _parameters(key, parameters)
    position, tick_size = _position(position), _tick_size(tick_size)
    needed = required_bars(key, p)
    if len(bars) < needed:
        return _insufficient(key, bars, needed, position)
    window = _window(bars, needed)
    return _Frame(key, p, position, tick_size, needed, window, _atr(window, p["atr_period"]))


def _toward(f: _Frame, want: int, signal: Reason, features: dict[str, Feature]) -> Decision:
    """The Decision for a signal that wants side `want` (+1 long, −1 short): HOLD when already on
    that side, HOLD with ZERO_ATR when the stop would sit at the entry, else BUY/SELL to ±UNIT."""
    key, position, needed, as_of = f.key, f.position, f.needed, f.window[-1].ts
    if (want > 0 and position > 0) or (want < 0 and position < 0):
        reasons = (Reason(IN_POSITION, f"already {_describe(position)}, on the signal's side"), signal)
        return Decision(key, Action.HOLD, position, position, reasons, features, needed, as_of)
    if f.atr == 0:
        reasons = (Reason(ZERO_ATR, "ATR is 0: the stop would sit at the entry, so no entry"), signal)
        return Decision(key, Action.HOLD, position, position, reasons, features, needed, as_of)
    stop = _stop(want, f.window[-1].close, f.atr, f.p["stop_atr_multiple"], f.tick_size)
    features = {**features, "stop_price": stop}
    action = Action.BUY if want > 0 else Action.SELL
    return Decision(key, action, position, want * UNIT, (signal,), features, needed, as_of, stop_price=stop)


def _hold(f: _Frame, reason: Reason, features: dict[str, Feature]) -> Decision:
    return Decision(f.key, Action.HOLD, f.position, f.position, (reason,), features, f.needed, f.window[-1].ts)


# -- the strategies -----------------------------------------------------------------------------


@in_context
def trend_following(
    bars: Sequence[Bar], parameters: Mapping[str, Any], position: int, *, tick_size: Decimal
) -> Decision:
    """State-based moving-average trend, always in the market once a trend shows (stop and reverse).

    - fast = SMA of the last `fast_period` closes, slow = SMA of the last `slow_period` closes
      (both include the last bar).
    - fast > slow → wants long 1: BUY to +1 from flat or short (TREND_UP); HOLD IN_POSITION if long.
    - fast < slow → wants short 1: SELL to −1 from flat or long (TREND_DOWN); HOLD if short.
    - fast == slow → HOLD NO_SIGNAL, whatever the position.
    State-based, not crossover-based: a bot started mid-trend, or stopped out while the trend
    holds, enters on the next bar; a missed tick never loses a signal.
    Stop on entry: close ∓ stop_atr_multiple × ATR(atr_period) (Wilder, over atr_window bars).
    Needs max(slow_period, 2 × atr_period + 1) bars.
    Features: close, fast_sma, slow_sma, atr (+ stop_price on an entry).
    """
    key = "trend_following"
    f = _frame(key, bars, parameters, position, tick_size)
    if isinstance(f, Decision):
        return f
    p, position, window, atr = f.p, f.position, f.window, f.atr
    closes = [b.close for b in window]
    fast = indicators.sma(closes, p["fast_period"])
    slow = indicators.sma(closes, p["slow_period"])
    features: dict[str, Feature] = {"close": closes[-1], "fast_sma": fast, "slow_sma": slow, "atr": atr}
    fast_label, slow_label = f"fast SMA({p['fast_period']})", f"slow SMA({p['slow_period']})"
    if fast == slow:
        text = f"{fast_label} {_fmt(fast)} equals {slow_label} {_fmt(slow)}: no trend; stays {_describe(position)}"
        return _hold(f, Reason(NO_SIGNAL, text), features)
    want = 1 if fast > slow else -1
    signal = (
        Reason(TREND_UP, f"{fast_label} {_fmt(fast)} above {slow_label} {_fmt(slow)}: trend up, wants long")
        if want > 0
        else Reason(TREND_DOWN, f"{fast_label} {_fmt(fast)} below {slow_label} {_fmt(slow)}: trend down, wants short")
    )
    return _toward(f, want, signal, features)


@in_context
def breakout(bars: Sequence[Bar], parameters: Mapping[str, Any], position: int, *, tick_size: Decimal) -> Decision:
    """Close beyond the range of the previous `lookback_bars` bars, plus a buffer.

    - range: highest high and lowest low of the `lookback_bars` bars before the last one (the last
      bar is not part of its own range); buffer = breakout_buffer_ticks × tick_size.
    - close > highest_high + buffer (strictly) → wants long 1: BUY to +1 (BREAKOUT_UP), HOLD if long.
    - close < lowest_low − buffer (strictly) → wants short 1: SELL to −1 (BREAKOUT_DOWN), HOLD if short.
    - otherwise HOLD NO_SIGNAL (the close is inside the triggers), whatever the position: a
      breakout position is left to its stop or to a breakout the other way (which reverses it).
    Stop on entry: close ∓ stop_atr_multiple × ATR(atr_period).
    Needs max(lookback_bars + 1, 2 × atr_period + 1) bars.
    Features: close, highest_high, lowest_low, buffer, upper_trigger, lower_trigger, atr (+ stop_price).
    """
    key = "breakout"
    f = _frame(key, bars, parameters, position, tick_size)
    if isinstance(f, Decision):
        return f
    p, position, window, atr = f.p, f.position, f.window, f.atr
    lookback = p["lookback_bars"]
    previous = window[-lookback - 1 : -1]
    highest = indicators.highest([b.high for b in previous], lookback)
    lowest = indicators.lowest([b.low for b in previous], lookback)
    buffer = p["breakout_buffer_ticks"] * f.tick_size
    upper, lower = highest + buffer, lowest - buffer
    close = window[-1].close
    features: dict[str, Feature] = {
        "close": close,
        "highest_high": highest,
        "lowest_low": lowest,
        "buffer": buffer,
        "upper_trigger": upper,
        "lower_trigger": lower,
        "atr": atr,
    }
    if lower <= close <= upper:
        text = (
            f"close {_fmt(close)} inside the triggers {_fmt(lower)}..{_fmt(upper)} "
            f"(range of the previous {lookback} bars ± {p['breakout_buffer_ticks']} ticks); stays {_describe(position)}"
        )
        return _hold(f, Reason(NO_SIGNAL, text), features)
    want = 1 if close > upper else -1
    signal = (
        Reason(BREAKOUT_UP, f"close {_fmt(close)} above {_fmt(upper)} (highest high {_fmt(highest)} + buffer)")
        if want > 0
        else Reason(BREAKOUT_DOWN, f"close {_fmt(close)} below {_fmt(lower)} (lowest low {_fmt(lowest)} − buffer)")
    )
    return _toward(f, want, signal, features)


@in_context
def mean_reversion(
    bars: Sequence[Bar], parameters: Mapping[str, Any], position: int, *, tick_size: Decimal
) -> Decision:
    """Fade a close that is far from its mean; leave once it has come back.

    - z = (close − mean) / stdev over the last `lookback_bars` closes (the last bar included;
      population stdev). stdev == 0 → HOLD ZERO_VOLATILITY (z is undefined), whatever the position.
    - Flat: z > entry_zscore → SELL to −1 (ZSCORE_ABOVE_ENTRY); z < −entry_zscore → BUY to +1
      (ZSCORE_BELOW_ENTRY); otherwise HOLD NO_SIGNAL.
    - Long: z > entry_zscore → SELL to −1 (reverse); else z ≥ −exit_zscore → FLAT (ZSCORE_REVERTED:
      back within exit of the mean, or past it); else HOLD IN_POSITION (not reverted yet).
    - Short, mirrored: z < −entry_zscore → BUY to +1; else z ≤ exit_zscore → FLAT; else HOLD.
    Entry thresholds are strict ("beyond"), exit thresholds inclusive ("back within").
    Stop on entry: close ∓ stop_atr_multiple × ATR(atr_period).
    Needs max(lookback_bars, 2 × atr_period + 1) bars.
    Features: close, mean, stdev, zscore (absent when stdev is 0), atr (+ stop_price).
    """
    key = "mean_reversion"
    f = _frame(key, bars, parameters, position, tick_size)
    if isinstance(f, Decision):
        return f
    p, position, window, atr = f.p, f.position, f.window, f.atr
    closes = [b.close for b in window]
    lookback, entry, exit_ = p["lookback_bars"], p["entry_zscore"], p["exit_zscore"]
    mean, stdev = indicators.mean_and_stdev(closes, lookback)
    close = closes[-1]
    features: dict[str, Feature] = {"close": close, "mean": mean, "stdev": stdev}
    if stdev == 0:
        features["atr"] = atr
        text = f"the last {lookback} closes are all {_fmt(close)}: z-score undefined; stays {_describe(position)}"
        return _hold(f, Reason(ZERO_VOLATILITY, text), features)
    z = (close - mean) / stdev
    features["zscore"] = z
    features["atr"] = atr
    zs = f"z-score {_fmt(z)} (close {_fmt(close)}, mean {_fmt(mean)}, stdev {_fmt(stdev)})"
    above = Reason(ZSCORE_ABOVE_ENTRY, f"{zs} above +{_fmt(entry)}: fade the rise, wants short")
    below = Reason(ZSCORE_BELOW_ENTRY, f"{zs} below −{_fmt(entry)}: fade the fall, wants long")
    if z > entry:
        return _toward(f, -1, above, features)
    if z < -entry:
        return _toward(f, 1, below, features)
    reverted = (position > 0 and z >= -exit_) or (position < 0 and z <= exit_)
    if reverted:
        side = "−" if position > 0 else "+"
        text = f"{zs} back within {side}{_fmt(exit_)} of the mean: close the {_describe(position)}"
        return Decision(
            key, Action.FLAT, position, 0, (Reason(ZSCORE_REVERTED, text),), features, f.needed, window[-1].ts
        )
    if position != 0:
        bound = f"−{_fmt(exit_)}" if position > 0 else f"+{_fmt(exit_)}"
        text = f"{zs} not yet back to {bound}: stays {_describe(position)}"
        return _hold(f, Reason(IN_POSITION, text), features)
    text = f"{zs} within ±{_fmt(entry)}: nothing to fade; stays flat"
    return _hold(f, Reason(NO_SIGNAL, text), features)


StrategyFn = Callable[..., Decision]

STRATEGIES: dict[str, StrategyFn] = {
    "trend_following": trend_following,
    "breakout": breakout,
    "mean_reversion": mean_reversion,
}


def decide(
    strategy_key: str, bars: Sequence[Bar], parameters: Mapping[str, Any], position: int, *, tick_size: Decimal
) -> Decision:
    """The registry: the Decision of strategy `strategy_key` (see each function's docstring)."""
    fn = STRATEGIES.get(strategy_key) if isinstance(strategy_key, str) else None
    if fn is None:
        raise StrategyInputError("UNKNOWN_STRATEGY", f"unknown strategy {strategy_key!r}; known: {sorted(STRATEGIES)}")
    return fn(bars, parameters, position, tick_size=tick_size)
