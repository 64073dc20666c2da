"""Pre-trade risk checks: pure functions over plain dataclasses (no database, no clock, no settings).

`check(intent, context)` runs every check and returns a RiskVerdict: `allowed` only if all pass,
plus each check's result (name, passed, reason code, detail), so a NO_TRADE trace can say which
limit stopped an order and with what numbers. Every new order that may reach a venue goes through
it; cancels are always allowed (they only take risk off, and are never throttled).

Fail closed: an input the check needs and does not have (a risk limit, today's PnL, a fresh
reference price, the account exposure) rejects with its own reason code; nothing defaults to a
value that would let an order through.

What the caller (the execution service, later) must provide and do:
- `RiskContext.position` and working quantities from the bot's order/position ledger, read in the
  same transaction that will create the order row; `daily_pnl` as realized + unrealized USD since
  `trading_day_start` (the instrument's session start, from the market app), or None if either
  part is unknown; `recent_order_times` every order the bot sent since
  min(trading_day_start, now − policy.burst_window); `recent_intents` the bot's orders within
  `policy.duplicate_window`; `reference_price`/`reference_price_at` the freshest real price of the
  instrument (last trade, or the last closed bar's close with the bar's close time), or None.
- The account aggregate: `account_exposure_contracts` is, summed over every bot trading the
  account (this one included), the bot's worst-case absolute position if all its working orders
  fill: max(position + working buys, working sells − position). Read it under
  `SELECT … FOR UPDATE` on the account's risk row and create the order row (which becomes a working
  order, i.e. the reservation) in the same transaction, so two bots cannot both pass against the
  same headroom (RELIABILITY R5). `account_limit_contracts` is that account's cap, or None.
- Persist each verdict's `breaches` with their time and call `should_halt` on them: when it says
  so, set the bot's trading state to HALTED (an audited state change).
- `now` is the caller's clock (the tick's time; a replay passes the replayed time).
- Notional (RELIABILITY R2): `point_value` is the instrument's USD per point; an order's notional is
  quantity × max(reference price, its own limit/stop price) × point_value. `account_notional_usd` is
  Σ over the account's bots and instruments of the worst-case contracts (as for the contracts cap)
  × that instrument's price × point value, or None when a price is missing; `account_limit_notional`
  the account's USD cap, or None when it has none. Both notional limits are optional (a bot's
  `max_order_notional`, an account's `max_notional`); once set, a notional that cannot be computed
  rejects (RISK_NOTIONAL_UNKNOWN), never passes.
- Restricted instruments (R13): `restricted_instruments` maps each restricted root symbol that
  applies to this bot's venue and account (global or per account) to its reason.

Trading states (NautilusTrader's, RELIABILITY R10/R11): ACTIVE allows what the limits allow;
REDUCING allows only intents that strictly reduce the position; HALTED denies every new order.
The kill latch denies every new order too (the bot's own, or kill-all's global one,
`RiskContext.global_kill`). One exception to both: an intent with origin FLATTEN
(an operator's or the kill switch's "flatten", SPEC §3 kill `flatten`) that strictly reduces the
position passes the kill latch, HALTED, and the limits that bound added risk (FIA kill-switch
guidance: "may allow risk-reducing orders while preventing risk-increasing orders"). It still
needs a well-formed intent, a fresh reference price, and must not duplicate a recent order.

A protective stop (origin PROTECTIVE, a STOP that strictly reduces the position) is never refused
by `max_orders_per_day`: it only takes risk off, and refusing it would leave the position without
its stop. Every other check holds for it (HALTED and the kill latch refuse it; the burst limit too).

Orders that strictly reduce the position (a protective stop, an exit, a flatten) are not bounded
by the notional limits or the restricted list: they only take risk off, and refusing them would
leave a position on a name the desk no longer wants without its stop or its way out.

"Strictly reduces": the intent is opposite to a non-zero position and its quantity plus every
working order on the same side does not exceed the position, so even if all of them fill the
position neither grows nor flips.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from apps.trading.indicators import CONTEXT


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"  # needs limit_price
    STOP = "STOP"  # needs stop_price (a stop-market order)


class IntentAction(StrEnum):
    NEW = "NEW"
    CANCEL = "CANCEL"


class IntentOrigin(StrEnum):
    STRATEGY = "STRATEGY"  # a tick's decision
    FLATTEN = "FLATTEN"  # an operator's or the kill switch's request to close the position
    PROTECTIVE = "PROTECTIVE"  # a STOP that protects the open position (apps/trading/stops.py)


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


# Stable reason codes. Extend, never rename.
RISK_INVALID_INTENT = "RISK_INVALID_INTENT"
RISK_POSITION_MISMATCH = "RISK_POSITION_MISMATCH"
RISK_KILLED = "RISK_KILLED"
RISK_HALTED = "RISK_HALTED"
RISK_REDUCING_ONLY = "RISK_REDUCING_ONLY"
RISK_TRADING_STATE_UNKNOWN = "RISK_TRADING_STATE_UNKNOWN"
RISK_LIMIT_MISSING = "RISK_LIMIT_MISSING"
RISK_MAX_ORDER_SIZE = "RISK_MAX_ORDER_SIZE"
RISK_MAX_POSITION = "RISK_MAX_POSITION"
RISK_MAX_DAILY_LOSS = "RISK_MAX_DAILY_LOSS"
RISK_DAILY_PNL_UNKNOWN = "RISK_DAILY_PNL_UNKNOWN"
RISK_ORDER_RATE = "RISK_ORDER_RATE"
RISK_DUPLICATIVE = "RISK_DUPLICATIVE"
RISK_PRICE_COLLAR = "RISK_PRICE_COLLAR"
RISK_NO_REFERENCE_PRICE = "RISK_NO_REFERENCE_PRICE"
RISK_ACCOUNT_AGGREGATE = "RISK_ACCOUNT_AGGREGATE"
RISK_ACCOUNT_EXPOSURE_UNKNOWN = "RISK_ACCOUNT_EXPOSURE_UNKNOWN"
RISK_RESTRICTED = "RISK_RESTRICTED"
RISK_MAX_NOTIONAL = "RISK_MAX_NOTIONAL"
RISK_ACCOUNT_NOTIONAL = "RISK_ACCOUNT_NOTIONAL"
RISK_NOTIONAL_UNKNOWN = "RISK_NOTIONAL_UNKNOWN"

# Breaches that look like a runaway bot (R6): repeated ones halt it (should_halt). A stale
# reference, an unknown PnL or a reached loss limit are conditions, not misbehaviour.
HALTING_CODES: frozenset[str] = frozenset({RISK_ORDER_RATE, RISK_DUPLICATIVE, RISK_MAX_ORDER_SIZE, RISK_PRICE_COLLAR})

# The checks, in the order they run and are reported.
CHECKS: tuple[str, ...] = (
    "intent_valid",
    "position_consistent",
    "kill_latch",
    "trading_state",
    "restricted_instrument",
    "max_order_size",
    "max_order_notional",
    "max_position",
    "daily_loss",
    "order_rate",
    "duplicate_order",
    "price_collar",
    "account_limit",
    "account_notional",
)


def reduces_position(position: int, side: Side | str, quantity: int) -> bool:
    """Whether an order of `quantity` on `side` reduces a `position` without flipping it."""
    if position > 0:
        return side == Side.SELL and quantity <= position
    if position < 0:
        return side == Side.BUY and quantity <= -position
    return False


@dataclass(frozen=True)
class OrderIntent:
    """An order a bot wants to send (NEW) or an order it wants cancelled (CANCEL).

    `reduces_position` is computed from the position the intent was built against
    (OrderIntent.create); check() recomputes it from the context and rejects a mismatch."""

    bot_id: int
    account: str
    instrument: str
    side: Side
    quantity: int
    order_type: OrderType
    reduces_position: bool
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    action: IntentAction = IntentAction.NEW
    origin: IntentOrigin = IntentOrigin.STRATEGY

    @classmethod
    def create(
        cls,
        *,
        bot_id: int,
        account: str,
        instrument: str,
        side: Side,
        quantity: int,
        order_type: OrderType,
        position: int,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        action: IntentAction = IntentAction.NEW,
        origin: IntentOrigin = IntentOrigin.STRATEGY,
    ) -> OrderIntent:
        return cls(
            bot_id=bot_id,
            account=account,
            instrument=instrument,
            side=side,
            quantity=quantity,
            order_type=order_type,
            reduces_position=reduces_position(position, side, quantity),
            limit_price=limit_price,
            stop_price=stop_price,
            action=action,
            origin=origin,
        )


@dataclass(frozen=True)
class RecentIntent:
    """An order the bot sent recently (for the duplicate window)."""

    instrument: str
    side: Side
    quantity: int
    order_type: OrderType
    limit_price: Decimal | None
    stop_price: Decimal | None
    at: datetime


@dataclass(frozen=True)
class RiskContext:
    """Everything check() reads, for one bot at one moment. See the module docstring for what the
    caller must compute and lock. None means unknown, and unknown rejects."""

    now: datetime  # tz-aware
    risk_limits: Mapping[str, Any]  # the catalogue's RISK_LIMITS keys (apps/trading/catalogue.py)
    position: int  # signed contracts
    working_buy_quantity: int  # contracts in this bot's working BUY orders on the instrument
    working_sell_quantity: int  # contracts in its working SELL orders
    daily_pnl: Decimal | None  # realized + unrealized USD since trading_day_start; None if unknown
    trading_day_start: datetime
    recent_order_times: Sequence[datetime]
    recent_intents: Sequence[RecentIntent]
    reference_price: Decimal | None
    reference_price_at: datetime | None
    trading_state: TradingState | str
    killed: bool
    account_exposure_contracts: int | None
    account_limit_contracts: int | None
    # The global kill latch (kill-all): None when released, else who engaged it, when and why.
    global_kill: str | None = None
    point_value: Decimal | None = None  # USD per 1.00 of price per contract; None if unknown
    account_notional_usd: Decimal | None = None  # worst-case USD notional across the account's bots
    account_limit_notional: Decimal | None = None  # the account's notional cap (USD); None: none set
    restricted_instruments: Mapping[str, str] = field(default_factory=dict)  # root symbol -> why


@dataclass(frozen=True)
class RiskPolicy:
    """Engine-wide settings that are not per-bot catalogue limits. The service may build one from
    settings; the defaults suit bar-driven bots that send at most a few orders per bar."""

    # Largest single order. None: twice max_position_contracts, the largest legitimate order
    # (a full reversal from the limit on one side to the limit on the other).
    max_order_contracts: int | None = None
    burst_limit: int = 6  # orders per burst_window, besides the catalogue's max_orders_per_day
    burst_window: timedelta = timedelta(seconds=60)
    # Same instrument, side, quantity, type and prices within this window is a duplicate. Keep it
    # shorter than the shortest bar, so one order per bar is never mistaken for a repeat.
    duplicate_window: timedelta = timedelta(seconds=30)
    collar_bps: Decimal = Decimal(200)  # a limit price at most 2% from the reference
    max_reference_age: timedelta = timedelta(seconds=120)
    halt_breach_threshold: int = 3  # HALTING_CODES breaches within halt_breach_window halt the bot
    halt_breach_window: timedelta = timedelta(minutes=15)


DEFAULT_POLICY = RiskPolicy()


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    reason_code: str | None  # set when it failed
    detail: str


@dataclass(frozen=True)
class RiskVerdict:
    allowed: bool
    checks: tuple[CheckResult, ...]

    @property
    def reason_codes(self) -> tuple[str, ...]:
        """Codes of the failed checks, in check order."""
        return tuple(c.reason_code for c in self.checks if not c.passed and c.reason_code)

    @property
    def breaches(self) -> tuple[str, ...]:
        """Failed codes that count towards an automatic halt (persist them; see should_halt)."""
        return tuple(code for code in self.reason_codes if code in HALTING_CODES)

    def result(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reason_codes": list(self.reason_codes),
            "checks": [
                {"name": c.name, "passed": c.passed, "reason_code": c.reason_code, "detail": c.detail}
                for c in self.checks
            ],
        }


@dataclass(frozen=True)
class Breach:
    code: str
    at: datetime


# -- helpers ------------------------------------------------------------------------------------


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, None, detail)


def _fail(name: str, code: str, detail: str) -> CheckResult:
    return CheckResult(name, False, code, detail)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _limit(limits: Mapping[str, Any], name: str, *, whole: bool) -> Decimal | None:
    """A positive risk limit as Decimal, or None when absent or not a positive number."""
    value = limits.get(name) if isinstance(limits, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite() or number <= 0 or (whole and number != number.to_integral_value()):
        return None
    return number


def _price_problem(value: Any, name: str) -> str | None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        return f"{name} must be a positive Decimal, got {value!r}"
    return None


def _strictly_reduces(intent: OrderIntent, ctx: RiskContext) -> bool:
    same_side_working = ctx.working_sell_quantity if intent.side == Side.SELL else ctx.working_buy_quantity
    return reduces_position(ctx.position, intent.side, intent.quantity + same_side_working)


def _worst_abs(position: int, working_buys: int, working_sells: int) -> int:
    """The largest absolute position reachable if every working order fills."""
    return max(position + working_buys, working_sells - position)


def _validate_context(ctx: RiskContext) -> None:
    """Programming errors, not market conditions: raise rather than return a verdict."""
    for name in ("now", "trading_day_start"):
        value = getattr(ctx, name)
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"RiskContext.{name} must be a tz-aware datetime, got {value!r}")
    for name in ("position", "working_buy_quantity", "working_sell_quantity"):
        if not _is_int(getattr(ctx, name)):
            raise ValueError(f"RiskContext.{name} must be an int")
    if ctx.working_buy_quantity < 0 or ctx.working_sell_quantity < 0:
        raise ValueError("working quantities are counts of contracts, never negative")
    if any(t.tzinfo is None for t in ctx.recent_order_times) or any(r.at.tzinfo is None for r in ctx.recent_intents):
        raise ValueError("recent order times must be tz-aware")


# -- the checks ---------------------------------------------------------------------------------


def _intent_valid(intent: OrderIntent) -> CheckResult:
    name = "intent_valid"
    problems: list[str] = []
    if intent.side not in (Side.BUY, Side.SELL):
        problems.append(f"side must be BUY or SELL, got {intent.side!r}")
    if not _is_int(intent.quantity) or intent.quantity <= 0:
        problems.append(f"quantity must be a positive int, got {intent.quantity!r}")
    if intent.origin not in tuple(IntentOrigin):
        problems.append(f"origin must be one of {', '.join(IntentOrigin)}, got {intent.origin!r}")
    if not isinstance(intent.reduces_position, bool):
        problems.append("reduces_position must be a bool")
    if intent.order_type == OrderType.MARKET:
        if intent.limit_price is not None or intent.stop_price is not None:
            problems.append("a MARKET order carries no price")
    elif intent.order_type == OrderType.LIMIT:
        problems += [p for p in [_price_problem(intent.limit_price, "limit_price")] if p]
        if intent.stop_price is not None:
            problems.append("a LIMIT order carries no stop_price")
    elif intent.order_type == OrderType.STOP:
        problems += [p for p in [_price_problem(intent.stop_price, "stop_price")] if p]
        if intent.limit_price is not None:
            problems.append("a STOP order carries no limit_price")
    else:
        problems.append(f"order_type must be MARKET, LIMIT or STOP, got {intent.order_type!r}")
    if problems:
        return _fail(name, RISK_INVALID_INTENT, "; ".join(problems))
    return _ok(name, f"{intent.side} {intent.quantity} {intent.instrument} {intent.order_type}")


def _position_consistent(intent: OrderIntent, ctx: RiskContext) -> CheckResult:
    name = "position_consistent"
    actual = reduces_position(ctx.position, intent.side, intent.quantity)
    if intent.reduces_position != actual:
        return _fail(
            name,
            RISK_POSITION_MISMATCH,
            f"intent built as {'reducing' if intent.reduces_position else 'not reducing'}, but against the "
            f"current position {ctx.position} it is {'reducing' if actual else 'not reducing'}: position changed",
        )
    return _ok(name, f"position {ctx.position}; the intent {'reduces' if actual else 'does not reduce'} it")


def _kill_latch(intent: OrderIntent, ctx: RiskContext, flatten: bool) -> CheckResult:
    name = "kill_latch"
    if not ctx.killed and ctx.global_kill is None:
        return _ok(name, "not killed; kill-all released")
    scope = f"{ctx.global_kill}" if ctx.global_kill is not None else "the bot is killed (scope: bot)"
    if flatten:
        return _ok(name, f"{scope}; a flatten that strictly reduces the position is allowed")
    return _fail(name, RISK_KILLED, f"{scope}: only cancels (and a reducing flatten) are allowed")


def _trading_state(intent: OrderIntent, ctx: RiskContext, flatten: bool, reducing: bool) -> CheckResult:
    name = "trading_state"
    try:
        state = TradingState(ctx.trading_state)
    except ValueError:
        return _fail(name, RISK_TRADING_STATE_UNKNOWN, f"unknown trading state {ctx.trading_state!r}")
    if state == TradingState.ACTIVE:
        return _ok(name, "ACTIVE")
    if state == TradingState.HALTED:
        if flatten:
            return _ok(name, "HALTED; a flatten that strictly reduces the position is allowed")
        return _fail(name, RISK_HALTED, "HALTED: every new order is denied, cancels are allowed")
    if reducing:
        return _ok(name, f"REDUCING; the intent strictly reduces position {ctx.position}")
    return _fail(
        name,
        RISK_REDUCING_ONLY,
        f"REDUCING: {intent.side} {intent.quantity} against position {ctx.position} (working buys "
        f"{ctx.working_buy_quantity}, sells {ctx.working_sell_quantity}) would not strictly reduce it",
    )


def _max_order_size(intent: OrderIntent, ctx: RiskContext, policy: RiskPolicy, flatten: bool) -> CheckResult:
    name = "max_order_size"
    if flatten:
        return _ok(name, f"flatten of {intent.quantity}: within the position it closes")
    if policy.max_order_contracts is not None:
        limit, source = policy.max_order_contracts, "policy max_order_contracts"
    else:
        max_position = _limit(ctx.risk_limits, "max_position_contracts", whole=True)
        if max_position is None:
            return _fail(name, RISK_LIMIT_MISSING, "max_position_contracts is not set (it sizes the largest order)")
        limit, source = 2 * int(max_position), "2 × max_position_contracts"
    if intent.quantity > limit:
        return _fail(name, RISK_MAX_ORDER_SIZE, f"quantity {intent.quantity} exceeds {limit} ({source})")
    return _ok(name, f"quantity {intent.quantity} <= {limit} ({source})")


def _max_position(intent: OrderIntent, ctx: RiskContext, flatten: bool) -> CheckResult:
    name = "max_position"
    if flatten:
        return _ok(name, "flatten: strictly reduces the position")
    limit = _limit(ctx.risk_limits, "max_position_contracts", whole=True)
    if limit is None:
        return _fail(name, RISK_LIMIT_MISSING, "max_position_contracts is not set")
    if intent.side == Side.BUY:
        worst = ctx.position + ctx.working_buy_quantity + intent.quantity
        how = f"position {ctx.position} + working buys {ctx.working_buy_quantity} + {intent.quantity}"
    else:
        worst = -(ctx.position - ctx.working_sell_quantity - intent.quantity)
        how = f"−(position {ctx.position} − working sells {ctx.working_sell_quantity} − {intent.quantity})"
    if worst > limit:
        return _fail(name, RISK_MAX_POSITION, f"{how} = {worst} contracts exceeds max_position_contracts {limit}")
    return _ok(name, f"{how} = {worst} <= max_position_contracts {limit}")


def _daily_loss(ctx: RiskContext, flatten: bool, reducing: bool) -> CheckResult:
    name = "daily_loss"
    if flatten:
        return _ok(name, "flatten: not bounded by the daily loss")
    limit = _limit(ctx.risk_limits, "max_daily_loss", whole=False)
    if limit is None:
        return _fail(name, RISK_LIMIT_MISSING, "max_daily_loss is not set")
    pnl = ctx.daily_pnl
    if isinstance(pnl, bool) or not isinstance(pnl, int | Decimal) or not Decimal(pnl).is_finite():
        return _fail(name, RISK_DAILY_PNL_UNKNOWN, f"today's realized + unrealized PnL is unknown ({pnl!r})")
    if pnl <= -limit:
        if reducing:
            return _ok(name, f"PnL {pnl} has reached −{limit}; a strictly reducing order is still allowed")
        return _fail(name, RISK_MAX_DAILY_LOSS, f"PnL {pnl} has reached the max daily loss −{limit}")
    return _ok(name, f"PnL {pnl} above −{limit}")


def _order_rate(
    intent: OrderIntent, ctx: RiskContext, policy: RiskPolicy, flatten: bool, reducing: bool
) -> CheckResult:
    name = "order_rate"
    if flatten:
        return _ok(name, "flatten: not throttled")
    # A protective stop only takes risk off: refusing it for the day's count would leave the position
    # bare. It still counts as an order sent, and the burst limit (a runaway's mark) still holds.
    protective = intent.origin == IntentOrigin.PROTECTIVE and intent.order_type == OrderType.STOP and reducing
    limit = _limit(ctx.risk_limits, "max_orders_per_day", whole=True)
    if limit is None and not protective:
        return _fail(name, RISK_LIMIT_MISSING, "max_orders_per_day is not set")
    # Times after `now` are counted too (clock skew must not make room for more orders).
    today = sum(1 for t in ctx.recent_order_times if t >= ctx.trading_day_start)
    burst_from = ctx.now - policy.burst_window
    seconds = int(policy.burst_window.total_seconds())
    burst = sum(1 for t in ctx.recent_order_times if t > burst_from)
    if protective:
        if burst + 1 > policy.burst_limit:
            return _fail(
                name, RISK_ORDER_RATE, f"{burst} orders in the last {seconds}s; the limit is {policy.burst_limit}"
            )
        return _ok(
            name,
            f"protective stop: not bounded by max_orders_per_day ({today} sent today); "
            f"{burst} of {policy.burst_limit} in the last {seconds}s",
        )
    assert limit is not None  # a missing limit refused everything but a protective stop above
    if today + 1 > limit:
        return _fail(name, RISK_ORDER_RATE, f"{today} orders sent today; max_orders_per_day is {limit}")
    if burst + 1 > policy.burst_limit:
        return _fail(
            name,
            RISK_ORDER_RATE,
            f"{burst} orders in the last {seconds}s; the limit is {policy.burst_limit}",
        )
    return _ok(
        name,
        f"{today} of {limit} orders today; {burst} of {policy.burst_limit} in the last {seconds}s",
    )


def _duplicate_order(intent: OrderIntent, ctx: RiskContext, policy: RiskPolicy) -> CheckResult:
    name = "duplicate_order"
    for r in ctx.recent_intents:
        same = (r.instrument, r.side, r.quantity, r.order_type, r.limit_price, r.stop_price) == (
            intent.instrument,
            intent.side,
            intent.quantity,
            intent.order_type,
            intent.limit_price,
            intent.stop_price,
        )
        # A future `at` (clock skew) counts as recent.
        if same and ctx.now - r.at < policy.duplicate_window:
            return _fail(
                name,
                RISK_DUPLICATIVE,
                f"the same {r.side} {r.quantity} {r.instrument} {r.order_type} was sent at {r.at.isoformat()}, "
                f"within {int(policy.duplicate_window.total_seconds())}s",
            )
    return _ok(name, f"no identical order within {int(policy.duplicate_window.total_seconds())}s")


def _price_collar(intent: OrderIntent, ctx: RiskContext, policy: RiskPolicy) -> CheckResult:
    """Every new order needs a fresh reference (a market order most of all: it has no price of its
    own). A LIMIT price must lie within collar_bps of it. A STOP price is not collared: a protective
    stop is placed away from the market on purpose, and refusing it would leave a position bare."""
    name = "price_collar"
    ref, at = ctx.reference_price, ctx.reference_price_at
    if (
        not isinstance(ref, Decimal)
        or _price_problem(ref, "reference_price")
        or not isinstance(at, datetime)
        or at.tzinfo is None
    ):
        return _fail(name, RISK_NO_REFERENCE_PRICE, "no reference price for the instrument: no order without one")
    age = ctx.now - at
    if age < timedelta(0):
        return _fail(name, RISK_NO_REFERENCE_PRICE, f"reference price time {at.isoformat()} is in the future")
    if age > policy.max_reference_age:
        return _fail(
            name,
            RISK_NO_REFERENCE_PRICE,
            f"reference price is {int(age.total_seconds())}s old; at most "
            f"{int(policy.max_reference_age.total_seconds())}s",
        )
    if intent.order_type != OrderType.LIMIT or intent.limit_price is None:
        return _ok(name, f"{intent.order_type}: fresh reference {ref} ({int(age.total_seconds())}s old)")
    distance_bps = CONTEXT.divide(CONTEXT.multiply(abs(intent.limit_price - ref), Decimal(10_000)), ref)
    if distance_bps > policy.collar_bps:
        return _fail(
            name,
            RISK_PRICE_COLLAR,
            f"limit {intent.limit_price} is {distance_bps.quantize(Decimal('0.01'), context=CONTEXT)} bps from "
            f"reference {ref}; the collar is {policy.collar_bps} bps",
        )
    return _ok(name, f"limit {intent.limit_price} within {policy.collar_bps} bps of reference {ref}")


def _account_limit(intent: OrderIntent, ctx: RiskContext, flatten: bool) -> CheckResult:
    name = "account_limit"
    if flatten:
        return _ok(name, "flatten: strictly reduces the account's exposure")
    limit = ctx.account_limit_contracts
    if not _is_int(limit) or limit <= 0:
        return _fail(name, RISK_LIMIT_MISSING, "the account's aggregate limit is not set")
    exposure = ctx.account_exposure_contracts
    if not _is_int(exposure) or exposure < 0:
        return _fail(name, RISK_ACCOUNT_EXPOSURE_UNKNOWN, "the account's aggregate exposure across bots is unknown")
    buys = ctx.working_buy_quantity + (intent.quantity if intent.side == Side.BUY else 0)
    sells = ctx.working_sell_quantity + (intent.quantity if intent.side == Side.SELL else 0)
    added = max(
        0,
        _worst_abs(ctx.position, buys, sells)
        - _worst_abs(ctx.position, ctx.working_buy_quantity, ctx.working_sell_quantity),
    )
    # An order that adds nothing passes even when the account is already over (it may be reducing).
    if added > 0 and exposure + added > limit:
        return _fail(
            name,
            RISK_ACCOUNT_AGGREGATE,
            f"account exposure {exposure} + {added} = {exposure + added} contracts exceeds the account limit {limit}",
        )
    return _ok(name, f"account exposure {exposure} + {added} <= {limit}")


def _notional(intent: OrderIntent, ctx: RiskContext, quantity: int) -> Decimal | None:
    """quantity × the highest of the reference and the order's own price × point value; None when
    the reference or the point value is unknown (a notional is never computed from a made-up price)."""
    ref, point_value = ctx.reference_price, ctx.point_value
    if not isinstance(ref, Decimal) or _price_problem(ref, "reference_price"):
        return None
    if not isinstance(point_value, Decimal) or not point_value.is_finite() or point_value <= 0:
        return None
    own = intent.limit_price if intent.order_type == OrderType.LIMIT else intent.stop_price
    price = max(ref, own) if isinstance(own, Decimal) else ref
    return CONTEXT.multiply(CONTEXT.multiply(Decimal(quantity), price), point_value)


def _usd(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), context=CONTEXT):,} USD"


def _restricted_instrument(intent: OrderIntent, ctx: RiskContext, reducing: bool) -> CheckResult:
    name = "restricted_instrument"
    restricted = ctx.restricted_instruments if isinstance(ctx.restricted_instruments, Mapping) else {}
    why = restricted.get(intent.instrument)
    if why is None:
        return _ok(name, f"{intent.instrument} is not on the restricted list")
    if reducing:
        return _ok(name, f"{intent.instrument} is restricted ({why}); an order that strictly reduces is allowed")
    return _fail(name, RISK_RESTRICTED, f"{intent.instrument} is on the restricted list: {why}")


def _max_order_notional(intent: OrderIntent, ctx: RiskContext, reducing: bool) -> CheckResult:
    name = "max_order_notional"
    if reducing:
        return _ok(name, "strictly reduces the position: not bounded by notional")
    limit = _limit(ctx.risk_limits, "max_order_notional", whole=False)
    if limit is None:
        if isinstance(ctx.risk_limits, Mapping) and ctx.risk_limits.get("max_order_notional") is not None:
            return _fail(name, RISK_LIMIT_MISSING, "max_order_notional is set but is not a positive number")
        return _ok(name, "max_order_notional is not set for this bot (the order size limits still apply)")
    notional = _notional(intent, ctx, intent.quantity)
    if notional is None:
        return _fail(
            name,
            RISK_NOTIONAL_UNKNOWN,
            f"the order's notional cannot be computed (reference price {ctx.reference_price!r}, point value "
            f"{ctx.point_value!r}) and max_order_notional is {_usd(limit)}",
        )
    if notional > limit:
        return _fail(name, RISK_MAX_NOTIONAL, f"notional {_usd(notional)} exceeds max_order_notional {_usd(limit)}")
    return _ok(name, f"notional {_usd(notional)} <= max_order_notional {_usd(limit)}")


def _account_notional(intent: OrderIntent, ctx: RiskContext, reducing: bool) -> CheckResult:
    name = "account_notional"
    if reducing:
        return _ok(name, "strictly reduces the position: adds no notional to the account")
    limit = ctx.account_limit_notional
    if limit is None:
        return _ok(name, "the account has no notional cap (its contracts cap still applies)")
    if not isinstance(limit, Decimal) or not limit.is_finite() or limit <= 0:
        return _fail(name, RISK_LIMIT_MISSING, f"the account's notional cap is not a positive amount ({limit!r})")
    buys = ctx.working_buy_quantity + (intent.quantity if intent.side == Side.BUY else 0)
    sells = ctx.working_sell_quantity + (intent.quantity if intent.side == Side.SELL else 0)
    added = max(
        0,
        _worst_abs(ctx.position, buys, sells)
        - _worst_abs(ctx.position, ctx.working_buy_quantity, ctx.working_sell_quantity),
    )
    if added == 0:
        return _ok(name, "the order adds no contracts to the account's worst case")
    exposure = ctx.account_notional_usd
    added_notional = _notional(intent, ctx, added)
    if not isinstance(exposure, Decimal) or not exposure.is_finite() or exposure < 0 or added_notional is None:
        return _fail(
            name,
            RISK_NOTIONAL_UNKNOWN,
            "the account's notional exposure across bots cannot be computed (a position or working order in an "
            f"instrument without a price, or no reference price); its cap is {_usd(limit)}",
        )
    total = exposure + added_notional
    if total > limit:
        return _fail(
            name,
            RISK_ACCOUNT_NOTIONAL,
            f"account notional {_usd(exposure)} + {_usd(added_notional)} = {_usd(total)} exceeds the account's "
            f"notional cap {_usd(limit)}",
        )
    return _ok(name, f"account notional {_usd(exposure)} + {_usd(added_notional)} <= {_usd(limit)}")


# -- the entry points ---------------------------------------------------------------------------


def check(intent: OrderIntent, context: RiskContext, policy: RiskPolicy = DEFAULT_POLICY) -> RiskVerdict:
    """Every check's result for `intent` against `context`; allowed only if all pass.

    A CANCEL passes every check. A malformed intent fails `intent_valid` and the other checks are
    reported as not evaluated. Raises ValueError for a malformed context (a caller's bug)."""
    _validate_context(context)
    if intent.action == IntentAction.CANCEL:
        return RiskVerdict(True, tuple(_ok(n, "cancel: always allowed, never throttled") for n in CHECKS))
    if intent.action != IntentAction.NEW:
        results = [_fail("intent_valid", RISK_INVALID_INTENT, f"action must be NEW or CANCEL, got {intent.action!r}")]
    else:
        results = [_intent_valid(intent)]
    if not results[0].passed:
        skipped = tuple(CheckResult(n, False, None, "not evaluated: the intent is malformed") for n in CHECKS[1:])
        return RiskVerdict(False, (results[0], *skipped))

    reducing = _strictly_reduces(intent, context)
    flatten = intent.origin == IntentOrigin.FLATTEN and reducing
    results += [
        _position_consistent(intent, context),
        _kill_latch(intent, context, flatten),
        _trading_state(intent, context, flatten, reducing),
        _restricted_instrument(intent, context, reducing),
        _max_order_size(intent, context, policy, flatten),
        _max_order_notional(intent, context, reducing),
        _max_position(intent, context, flatten),
        _daily_loss(context, flatten, reducing),
        _order_rate(intent, context, policy, flatten, reducing),
        _duplicate_order(intent, context, policy),
        _price_collar(intent, context, policy),
        _account_limit(intent, context, flatten),
        _account_notional(intent, context, reducing),
    ]
    return RiskVerdict(all(r.passed for r in results), tuple(results))


def should_halt(
    breaches: Iterable[Breach],
    window: timedelta = DEFAULT_POLICY.halt_breach_window,
    *,
    now: datetime,
    threshold: int = DEFAULT_POLICY.halt_breach_threshold,
) -> bool:
    """Whether the bot should be HALTED: at least `threshold` breaches with a code in
    HALTING_CODES at a time after now − window (later times count: clock skew never excuses).
    The caller persists breaches (RiskVerdict.breaches with the check's time) and, on True, moves
    the bot to HALTED with an audit row; getting out of HALTED is a person's decision."""
    since = now - window
    return sum(1 for b in breaches if b.code in HALTING_CODES and b.at > since) >= threshold
