"""Pre-trade risk checks: each one passing and failing, every fail-closed case, the trading
states and the kill latch (RELIABILITY R1, R3–R7, R10, R11)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.trading import risk
from apps.trading.risk import (
    Breach,
    IntentAction,
    IntentOrigin,
    OrderIntent,
    OrderType,
    RecentIntent,
    RiskContext,
    RiskPolicy,
    Side,
    TradingState,
    check,
    should_halt,
)

D = Decimal
NOW = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
LIMITS = {"max_position_contracts": 2, "max_daily_loss": 250.0, "max_orders_per_day": 12}


def context(**changes: Any) -> RiskContext:
    base = RiskContext(
        now=NOW,
        risk_limits=dict(LIMITS),
        position=0,
        working_buy_quantity=0,
        working_sell_quantity=0,
        daily_pnl=D("-10.50"),
        trading_day_start=NOW - timedelta(hours=6),
        recent_order_times=(),
        recent_intents=(),
        reference_price=D("5000.25"),
        reference_price_at=NOW - timedelta(seconds=5),
        trading_state=TradingState.ACTIVE,
        killed=False,
        account_exposure_contracts=3,
        account_limit_contracts=10,
    )
    return replace(base, **changes)


def intent(*, position: int = 0, **changes: Any) -> OrderIntent:
    fields: dict[str, Any] = {
        "bot_id": 7,
        "account": "SIM-1",
        "instrument": "MES",
        "side": Side.BUY,
        "quantity": 1,
        "order_type": OrderType.LIMIT,
        "limit_price": D("5000.00"),
    }
    fields.update(changes)
    return OrderIntent.create(position=position, **fields)


def failures(verdict: risk.RiskVerdict) -> dict[str, str | None]:
    return {c.name: c.reason_code for c in verdict.checks if not c.passed}


def test_a_sound_intent_passes_every_check() -> None:
    verdict = check(intent(), context())
    assert verdict.allowed and verdict.reason_codes == () and verdict.breaches == ()
    assert [c.name for c in verdict.checks] == list(risk.CHECKS)
    assert all(c.passed and c.reason_code is None and c.detail for c in verdict.checks)


def test_the_verdict_is_deterministic_and_json_safe() -> None:
    a, b = check(intent(), context()), check(intent(), context())
    assert a == b
    assert json.loads(json.dumps(a.as_dict())) == a.as_dict()


# -- each check failing on its own --------------------------------------------------------------

CASES: list[tuple[str, dict[str, Any], dict[str, Any], RiskPolicy, dict[str, str]]] = [
    ("killed", {}, {"killed": True}, risk.DEFAULT_POLICY, {"kill_latch": "RISK_KILLED"}),
    ("halted", {}, {"trading_state": TradingState.HALTED}, risk.DEFAULT_POLICY, {"trading_state": "RISK_HALTED"}),
    (
        "reducing while flat",
        {},
        {"trading_state": TradingState.REDUCING},
        risk.DEFAULT_POLICY,
        {"trading_state": "RISK_REDUCING_ONLY"},
    ),
    (
        "unknown trading state",
        {},
        {"trading_state": "PAUSED"},
        risk.DEFAULT_POLICY,
        {"trading_state": "RISK_TRADING_STATE_UNKNOWN"},
    ),
    (
        "order larger than the policy's max order",
        {"quantity": 2},
        {},
        RiskPolicy(max_order_contracts=1),
        {"max_order_size": "RISK_MAX_ORDER_SIZE"},
    ),
    (
        "order larger than twice max_position (a short beyond the limit buying back past flat)",
        {"quantity": 5, "position": -3},
        {"position": -3},
        risk.DEFAULT_POLICY,
        {"max_order_size": "RISK_MAX_ORDER_SIZE"},
    ),
    (
        "long beyond the limit counting working buys",
        {"quantity": 1, "position": 1},
        {"position": 1, "working_buy_quantity": 1},
        risk.DEFAULT_POLICY,
        {"max_position": "RISK_MAX_POSITION"},
    ),
    (
        "short beyond the limit counting working sells",
        {"side": Side.SELL, "limit_price": D("5000.50"), "position": -1},
        {"position": -1, "working_sell_quantity": 1},
        risk.DEFAULT_POLICY,
        {"max_position": "RISK_MAX_POSITION"},
    ),
    ("daily loss reached", {}, {"daily_pnl": D("-250")}, risk.DEFAULT_POLICY, {"daily_loss": "RISK_MAX_DAILY_LOSS"}),
    ("daily pnl unknown", {}, {"daily_pnl": None}, risk.DEFAULT_POLICY, {"daily_loss": "RISK_DAILY_PNL_UNKNOWN"}),
    (
        "daily pnl given as a float",
        {},
        {"daily_pnl": -10.5},
        risk.DEFAULT_POLICY,
        {"daily_loss": "RISK_DAILY_PNL_UNKNOWN"},
    ),
    (
        "max orders per day used up",
        {},
        {"recent_order_times": tuple(NOW - timedelta(minutes=10 * i) for i in range(1, 13))},
        risk.DEFAULT_POLICY,
        {"order_rate": "RISK_ORDER_RATE"},
    ),
    (
        "burst limit used up",
        {},
        {"recent_order_times": tuple(NOW - timedelta(seconds=5 * i) for i in range(6))},
        risk.DEFAULT_POLICY,
        {"order_rate": "RISK_ORDER_RATE"},
    ),
    (
        "duplicate within the window",
        {},
        {
            "recent_intents": (
                RecentIntent("MES", Side.BUY, 1, OrderType.LIMIT, D("5000.00"), None, NOW - timedelta(seconds=10)),
            )
        },
        risk.DEFAULT_POLICY,
        {"duplicate_order": "RISK_DUPLICATIVE"},
    ),
    (
        "limit price outside the collar",
        {"limit_price": D("5200.00")},
        {},
        risk.DEFAULT_POLICY,
        {"price_collar": "RISK_PRICE_COLLAR"},
    ),
    (
        "no reference price",
        {},
        {"reference_price": None},
        risk.DEFAULT_POLICY,
        {"price_collar": "RISK_NO_REFERENCE_PRICE"},
    ),
    (
        "reference price without a time",
        {},
        {"reference_price_at": None},
        risk.DEFAULT_POLICY,
        {"price_collar": "RISK_NO_REFERENCE_PRICE"},
    ),
    (
        "reference price of zero",
        {},
        {"reference_price": D(0)},
        risk.DEFAULT_POLICY,
        {"price_collar": "RISK_NO_REFERENCE_PRICE"},
    ),
    (
        "stale reference price",
        {},
        {"reference_price_at": NOW - timedelta(seconds=121)},
        risk.DEFAULT_POLICY,
        {"price_collar": "RISK_NO_REFERENCE_PRICE"},
    ),
    (
        "reference price from the future",
        {},
        {"reference_price_at": NOW + timedelta(seconds=1)},
        risk.DEFAULT_POLICY,
        {"price_collar": "RISK_NO_REFERENCE_PRICE"},
    ),
    (
        "market order without a reference price",
        {"order_type": OrderType.MARKET, "limit_price": None},
        {"reference_price": None},
        risk.DEFAULT_POLICY,
        {"price_collar": "RISK_NO_REFERENCE_PRICE"},
    ),
    (
        "account aggregate over its limit",
        {},
        {"account_exposure_contracts": 10},
        risk.DEFAULT_POLICY,
        {"account_limit": "RISK_ACCOUNT_AGGREGATE"},
    ),
    (
        "account aggregate unknown",
        {},
        {"account_exposure_contracts": None},
        risk.DEFAULT_POLICY,
        {"account_limit": "RISK_ACCOUNT_EXPOSURE_UNKNOWN"},
    ),
    (
        "account limit missing",
        {},
        {"account_limit_contracts": None},
        risk.DEFAULT_POLICY,
        {"account_limit": "RISK_LIMIT_MISSING"},
    ),
    (
        "intent built against another position",
        {"side": Side.BUY, "position": 0},
        {"position": -1},
        risk.DEFAULT_POLICY,
        {"position_consistent": "RISK_POSITION_MISMATCH"},
    ),
]


@pytest.mark.parametrize(
    ("label", "intent_changes", "context_changes", "policy", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_each_check_fails_alone_with_its_code(
    label: str, intent_changes: dict, context_changes: dict, policy: RiskPolicy, expected: dict
) -> None:
    verdict = check(intent(**intent_changes), context(**context_changes), policy)
    assert not verdict.allowed
    assert failures(verdict) == expected
    assert verdict.reason_codes == tuple(expected.values())
    assert all(c.detail for c in verdict.checks)


# -- the boundaries on the passing side ----------------------------------------------------------


@pytest.mark.parametrize(
    ("intent_changes", "context_changes", "policy"),
    [
        ({"quantity": 1}, {}, RiskPolicy(max_order_contracts=1)),
        ({"quantity": 4, "position": -2}, {"position": -2}, risk.DEFAULT_POLICY),  # 2 × max_position
        ({"quantity": 1, "position": 1}, {"position": 1}, risk.DEFAULT_POLICY),  # exactly the limit
        ({}, {"daily_pnl": D("-249.99")}, risk.DEFAULT_POLICY),
        ({}, {"daily_pnl": 0}, risk.DEFAULT_POLICY),
        ({}, {"recent_order_times": tuple(NOW - timedelta(minutes=10 * i) for i in range(1, 12))}, risk.DEFAULT_POLICY),
        (  # orders before the trading day do not count
            {},
            {"recent_order_times": tuple(NOW - timedelta(hours=7, minutes=i) for i in range(40))},
            risk.DEFAULT_POLICY,
        ),
        ({}, {"recent_order_times": tuple(NOW - timedelta(seconds=5 * i) for i in range(5))}, risk.DEFAULT_POLICY),
        (  # one exactly burst_window ago has left the window
            {},
            {
                "recent_order_times": (NOW - timedelta(seconds=60),)
                + tuple(NOW - timedelta(seconds=i) for i in range(5))
            },
            risk.DEFAULT_POLICY,
        ),
        (  # the same order exactly duplicate_window ago is not a duplicate
            {},
            {
                "recent_intents": (
                    RecentIntent("MES", Side.BUY, 1, OrderType.LIMIT, D("5000.00"), None, NOW - timedelta(seconds=30)),
                )
            },
            risk.DEFAULT_POLICY,
        ),
        (  # a different price, side, quantity or instrument is not a duplicate
            {},
            {
                "recent_intents": (
                    RecentIntent("MES", Side.BUY, 1, OrderType.LIMIT, D("5000.25"), None, NOW),
                    RecentIntent("MES", Side.SELL, 1, OrderType.LIMIT, D("5000.00"), None, NOW),
                    RecentIntent("MES", Side.BUY, 2, OrderType.LIMIT, D("5000.00"), None, NOW),
                    RecentIntent("MNQ", Side.BUY, 1, OrderType.LIMIT, D("5000.00"), None, NOW),
                )
            },
            risk.DEFAULT_POLICY,
        ),
        ({"limit_price": D("5100")}, {"reference_price": D("5000")}, risk.DEFAULT_POLICY),  # exactly 200 bps
        ({"limit_price": D("4900")}, {"reference_price": D("5000")}, risk.DEFAULT_POLICY),
        ({}, {"reference_price_at": NOW - timedelta(seconds=120)}, risk.DEFAULT_POLICY),
        ({}, {"reference_price_at": NOW}, risk.DEFAULT_POLICY),
        ({"order_type": OrderType.MARKET, "limit_price": None}, {}, risk.DEFAULT_POLICY),
        # A protective stop is not collared: it sits away from the market on purpose.
        ({"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("5400")}, {}, risk.DEFAULT_POLICY),
        ({}, {"account_exposure_contracts": 9}, risk.DEFAULT_POLICY),
    ],
)
def test_at_the_limit_it_still_passes(intent_changes: dict, context_changes: dict, policy: RiskPolicy) -> None:
    verdict = check(intent(**intent_changes), context(**context_changes), policy)
    assert verdict.allowed, failures(verdict)


def test_the_collar_is_measured_in_basis_points_of_the_reference() -> None:
    inside = check(intent(limit_price=D("5100")), context(reference_price=D("5000")))
    outside = check(intent(limit_price=D("5100.25")), context(reference_price=D("5000")))
    assert inside.allowed
    assert failures(outside) == {"price_collar": "RISK_PRICE_COLLAR"}
    assert "200.50 bps" in outside.result("price_collar").detail


def test_position_limit_counts_working_orders_not_just_fills() -> None:
    """R4: max 100; filled 60, resting 30, new 20 → rejected; once the 30 is cancelled, passes."""
    limits = {**LIMITS, "max_position_contracts": 100}
    new = intent(quantity=20, position=60)
    resting = context(risk_limits=limits, position=60, working_buy_quantity=30, account_limit_contracts=1000)
    verdict = check(new, resting)
    assert failures(verdict) == {"max_position": "RISK_MAX_POSITION"}
    assert "= 110 contracts exceeds max_position_contracts 100" in verdict.result("max_position").detail
    assert check(new, replace(resting, working_buy_quantity=0)).allowed


def test_account_limit_counts_what_this_order_adds_to_the_worst_case() -> None:
    # Long 1 with a working sell of 1: worst case |1|. A buy of 1 makes it 2: +1 on the account.
    ctx = context(position=1, working_sell_quantity=1, account_exposure_contracts=9)
    assert check(intent(position=1), ctx).allowed
    assert failures(check(intent(position=1), replace(ctx, account_exposure_contracts=10))) == {
        "account_limit": "RISK_ACCOUNT_AGGREGATE"
    }
    # A reducing sell adds nothing, even with the account above its limit.
    sell = intent(side=Side.SELL, limit_price=D("5000.50"), position=2)
    assert check(sell, context(position=2, account_exposure_contracts=12)).allowed


def test_a_reducing_order_may_still_exit_after_the_daily_loss() -> None:
    sell = intent(side=Side.SELL, limit_price=D("5000.50"), position=1)
    assert check(sell, context(position=1, daily_pnl=D("-300"))).allowed
    buy = intent(position=1)
    assert failures(check(buy, context(position=1, daily_pnl=D("-300")))) == {"daily_loss": "RISK_MAX_DAILY_LOSS"}


def test_unknown_pnl_rejects_strategy_exits_too() -> None:
    sell = intent(side=Side.SELL, limit_price=D("5000.50"), position=1)
    assert failures(check(sell, context(position=1, daily_pnl=None))) == {"daily_loss": "RISK_DAILY_PNL_UNKNOWN"}


# -- fail closed: missing limits ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("max_position_contracts", {"max_order_size": "RISK_LIMIT_MISSING", "max_position": "RISK_LIMIT_MISSING"}),
        ("max_daily_loss", {"daily_loss": "RISK_LIMIT_MISSING"}),
        ("max_orders_per_day", {"order_rate": "RISK_LIMIT_MISSING"}),
    ],
)
@pytest.mark.parametrize("how", ["absent", 0, -1, True, "2", None, 1.5])
def test_a_missing_or_unusable_limit_rejects(key: str, expected: dict, how: Any) -> None:
    limits = {k: v for k, v in LIMITS.items() if k != key}
    if how != "absent":
        if how == 1.5 and key == "max_daily_loss":
            return  # a fractional loss limit is valid
        limits[key] = how
    verdict = check(intent(), context(risk_limits=limits))
    assert failures(verdict) == expected


def test_no_limits_at_all_rejects_every_limit_check() -> None:
    verdict = check(intent(), context(risk_limits={}, account_limit_contracts=None))
    assert set(verdict.reason_codes) == {"RISK_LIMIT_MISSING"}
    assert set(failures(verdict)) == {"max_order_size", "max_position", "daily_loss", "order_rate", "account_limit"}


# -- malformed intents ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"quantity": 0},
        {"quantity": -1},
        {"quantity": True},
        {"quantity": 1.0},
        {"limit_price": None},  # a LIMIT without its price
        {"limit_price": D("-1")},
        {"limit_price": 5000.0},
        {"limit_price": D("NaN")},
        {"order_type": OrderType.MARKET},  # a MARKET order carrying a limit price
        {"order_type": OrderType.STOP},  # a STOP without a stop price
        {"stop_price": D("4990")},  # a LIMIT carrying a stop price
        {"order_type": "ICEBERG"},
        {"side": "HOLD"},
    ],
)
def test_a_malformed_intent_is_rejected_and_nothing_else_is_evaluated(changes: dict) -> None:
    bad = replace(intent(), **changes)
    verdict = check(bad, context())
    assert not verdict.allowed
    assert verdict.reason_codes == ("RISK_INVALID_INTENT",)
    assert [c.name for c in verdict.checks] == list(risk.CHECKS)
    assert all(not c.passed and c.detail.startswith("not evaluated") for c in verdict.checks[1:])


def test_an_unknown_action_is_malformed() -> None:
    assert check(replace(intent(), action="MODIFY"), context()).reason_codes == ("RISK_INVALID_INTENT",)


@pytest.mark.parametrize(
    "changes",
    [
        {"now": datetime(2025, 1, 6, 15, 0)},  # noqa: DTZ001 - naive on purpose
        {"position": 1.0},
        {"working_buy_quantity": -1},
        {"recent_order_times": (datetime(2025, 1, 6, 14, 59),)},  # noqa: DTZ001
    ],
)
def test_a_malformed_context_is_a_callers_bug(changes: dict) -> None:
    with pytest.raises(ValueError):
        check(intent(), context(**changes))


# -- trading states, the kill latch and cancels ---------------------------------------------------

EVERYTHING_UNKNOWN = {
    "risk_limits": {},
    "daily_pnl": None,
    "reference_price": None,
    "reference_price_at": None,
    "account_exposure_contracts": None,
    "account_limit_contracts": None,
    "recent_order_times": tuple(NOW - timedelta(seconds=i) for i in range(50)),
}


@pytest.mark.parametrize("state", list(TradingState))
@pytest.mark.parametrize("killed", [False, True])
def test_a_cancel_is_always_allowed(state: TradingState, killed: bool) -> None:
    cancel = intent(action=IntentAction.CANCEL)
    verdict = check(cancel, context(trading_state=state, killed=killed, **EVERYTHING_UNKNOWN))
    assert verdict.allowed and verdict.reason_codes == ()
    assert [c.name for c in verdict.checks] == list(risk.CHECKS)


@pytest.mark.parametrize(
    ("side", "quantity", "position"),
    [(Side.BUY, 1, 0), (Side.SELL, 1, 0), (Side.BUY, 1, 2), (Side.SELL, 1, 2), (Side.SELL, 2, 2), (Side.BUY, 1, -1)],
)
def test_halted_denies_every_strategy_order(side: Side, quantity: int, position: int) -> None:
    new = intent(side=side, quantity=quantity, position=position, limit_price=D("5000.00"))
    verdict = check(new, context(position=position, trading_state=TradingState.HALTED))
    assert not verdict.allowed
    assert verdict.result("trading_state").reason_code == "RISK_HALTED"


@pytest.mark.parametrize(
    ("side", "quantity", "position", "working_sells", "allowed"),
    [
        (Side.BUY, 1, 2, 0, False),  # adds to a long
        (Side.SELL, 1, 2, 0, True),
        (Side.SELL, 2, 2, 0, True),  # closes it exactly
        (Side.SELL, 3, 2, 0, False),  # would flip it short
        (Side.SELL, 2, 2, 1, False),  # with the working sell, would flip it
        (Side.SELL, 1, 2, 1, True),
        (Side.SELL, 1, 0, 0, False),  # nothing to reduce
        (Side.BUY, 1, 0, 0, False),
    ],
)
def test_reducing_allows_only_orders_that_strictly_reduce(
    side: Side, quantity: int, position: int, working_sells: int, allowed: bool
) -> None:
    new = intent(side=side, quantity=quantity, position=position, limit_price=D("5000.00"))
    ctx = context(position=position, working_sell_quantity=working_sells, trading_state=TradingState.REDUCING)
    result = check(new, ctx).result("trading_state")
    assert result.passed is allowed
    assert result.reason_code == (None if allowed else "RISK_REDUCING_ONLY")


def test_reducing_short_positions_buy_back() -> None:
    new = intent(side=Side.BUY, quantity=1, position=-2)
    assert check(new, context(position=-2, trading_state=TradingState.REDUCING)).allowed


def test_killed_denies_strategy_orders_even_reducing_ones() -> None:
    sell = intent(side=Side.SELL, limit_price=D("5000.50"), position=1)
    assert failures(check(sell, context(position=1, killed=True))) == {"kill_latch": "RISK_KILLED"}


@pytest.mark.parametrize("state", [TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED])
def test_a_flatten_that_strictly_reduces_passes_the_latch_the_state_and_the_risk_bounds(state: TradingState) -> None:
    flatten = intent(
        side=Side.SELL,
        quantity=2,
        position=2,
        order_type=OrderType.MARKET,
        limit_price=None,
        origin=IntentOrigin.FLATTEN,
    )
    ctx = context(
        position=2,
        killed=True,
        trading_state=state,
        risk_limits={},
        daily_pnl=None,
        account_exposure_contracts=None,
        account_limit_contracts=None,
        recent_order_times=tuple(NOW - timedelta(seconds=i) for i in range(50)),
    )
    verdict = check(flatten, ctx)
    assert verdict.allowed, failures(verdict)


def test_a_flatten_still_needs_a_fresh_reference_and_no_duplicate() -> None:
    flatten = intent(
        side=Side.SELL, position=1, order_type=OrderType.MARKET, limit_price=None, origin=IntentOrigin.FLATTEN
    )
    stale = context(position=1, killed=True, reference_price_at=NOW - timedelta(minutes=10))
    assert failures(check(flatten, stale)) == {"price_collar": "RISK_NO_REFERENCE_PRICE"}
    repeat = RecentIntent("MES", Side.SELL, 1, OrderType.MARKET, None, None, NOW - timedelta(seconds=2))
    assert failures(check(flatten, context(position=1, killed=True, recent_intents=(repeat,)))) == {
        "duplicate_order": "RISK_DUPLICATIVE"
    }


def test_a_flatten_that_would_flip_is_an_ordinary_order() -> None:
    flip = intent(side=Side.SELL, quantity=3, position=2, origin=IntentOrigin.FLATTEN, limit_price=D("5000.50"))
    verdict = check(flip, context(position=2, killed=True, trading_state=TradingState.HALTED))
    assert failures(verdict) == {"kill_latch": "RISK_KILLED", "trading_state": "RISK_HALTED"}


def _protective_stop(position: int = 1, quantity: int = 1, **changes: Any) -> OrderIntent:
    side = Side.SELL if position > 0 else Side.BUY
    return intent(
        side=side,
        quantity=quantity,
        position=position,
        order_type=OrderType.STOP,
        limit_price=None,
        stop_price=D("4990.00") if position > 0 else D("5010.00"),
        origin=IntentOrigin.PROTECTIVE,
        **changes,
    )


def test_a_protective_stop_is_never_refused_by_the_orders_per_day_limit() -> None:
    spent = context(position=1, recent_order_times=tuple(NOW - timedelta(minutes=10 + i) for i in range(12)))
    # The day's orders are spent: an entry is refused, the stop that protects the position is not.
    assert failures(check(intent(position=1, quantity=1), spent)) == {"order_rate": "RISK_ORDER_RATE"}
    verdict = check(_protective_stop(), spent)
    assert verdict.allowed, failures(verdict)
    assert "not bounded by max_orders_per_day (12 sent today)" in verdict.result("order_rate").detail
    # Nor by a missing limit: the limit does not apply to it.
    assert check(_protective_stop(), replace(spent, risk_limits={**LIMITS, "max_orders_per_day": None})).allowed


def test_the_exemption_is_for_stops_that_protect_and_only_from_the_daily_count() -> None:
    spent = context(position=1, recent_order_times=tuple(NOW - timedelta(minutes=10 + i) for i in range(12)))
    # A "protective" stop that would flip the position is an ordinary order.
    flip = _protective_stop(quantity=3)
    assert failures(check(flip, spent))["order_rate"] == "RISK_ORDER_RATE"
    # One that would add to a working stop of the same side does not strictly reduce either.
    assert "order_rate" in failures(check(_protective_stop(), replace(spent, working_sell_quantity=1)))
    # A strategy STOP is counted like any order.
    plain = replace(_protective_stop(), origin=IntentOrigin.STRATEGY)
    assert failures(check(plain, spent)) == {"order_rate": "RISK_ORDER_RATE"}
    # The burst limit, a runaway's mark, still holds; and HALTED still refuses it.
    burst = context(position=1, recent_order_times=tuple(NOW - timedelta(seconds=i) for i in range(6)))
    assert failures(check(_protective_stop(), burst)) == {"order_rate": "RISK_ORDER_RATE"}
    halted = context(position=1, trading_state=TradingState.HALTED)
    assert failures(check(_protective_stop(), halted)) == {"trading_state": "RISK_HALTED"}


# -- breaches and the automatic halt --------------------------------------------------------------


def test_runaway_breaches_are_reported_for_the_halt_counter() -> None:
    ctx = context(
        recent_order_times=tuple(NOW - timedelta(seconds=i) for i in range(6)),
        recent_intents=(RecentIntent("MES", Side.BUY, 1, OrderType.LIMIT, D("5000.00"), None, NOW),),
        daily_pnl=None,
    )
    verdict = check(intent(), ctx)
    assert verdict.reason_codes == ("RISK_DAILY_PNL_UNKNOWN", "RISK_ORDER_RATE", "RISK_DUPLICATIVE")
    assert verdict.breaches == ("RISK_ORDER_RATE", "RISK_DUPLICATIVE")


WINDOW = timedelta(minutes=15)


def test_it_halts_after_repeated_breaches_within_the_window() -> None:
    breaches = [Breach("RISK_ORDER_RATE", NOW - timedelta(minutes=m)) for m in (1, 5, 14)]
    assert should_halt(breaches, WINDOW, now=NOW) is True
    assert should_halt(breaches[:2], WINDOW, now=NOW) is False
    assert should_halt(breaches[:2], WINDOW, now=NOW, threshold=2) is True


def test_old_and_non_runaway_breaches_do_not_count() -> None:
    breaches = [
        Breach("RISK_ORDER_RATE", NOW - timedelta(minutes=1)),
        Breach("RISK_DUPLICATIVE", NOW - timedelta(minutes=2)),
        Breach("RISK_PRICE_COLLAR", NOW - WINDOW),  # exactly a window ago: out
        Breach("RISK_NO_REFERENCE_PRICE", NOW),
        Breach("RISK_DAILY_PNL_UNKNOWN", NOW),
    ]
    assert should_halt(breaches, WINDOW, now=NOW) is False
    assert should_halt([*breaches, Breach("RISK_MAX_ORDER_SIZE", NOW)], WINDOW, now=NOW) is True


def test_the_halting_codes() -> None:
    assert {"RISK_ORDER_RATE", "RISK_DUPLICATIVE", "RISK_MAX_ORDER_SIZE", "RISK_PRICE_COLLAR"} == risk.HALTING_CODES


def test_reduces_position() -> None:
    assert risk.reduces_position(2, Side.SELL, 2) is True
    assert risk.reduces_position(2, Side.SELL, 3) is False
    assert risk.reduces_position(2, Side.BUY, 1) is False
    assert risk.reduces_position(-1, Side.BUY, 1) is True
    assert risk.reduces_position(0, Side.SELL, 1) is False
    assert intent(side=Side.SELL, position=1).reduces_position is True


# -- notional (R2), account notional, restricted list (R13) -----------------------------------------------

MES_POINT = D("5")  # USD per point: one MES at 5000.25 is 25,001.25 USD


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_an_order_over_max_order_notional_is_rejected_on_either_side(side: Side) -> None:
    limits = {**LIMITS, "max_position_contracts": 10, "max_order_notional": 50_000}
    ctx = context(risk_limits=limits, point_value=MES_POINT)
    verdict = check(intent(side=side, quantity=2, order_type=OrderType.MARKET, limit_price=None), ctx)
    assert failures(verdict) == {"max_order_notional": "RISK_MAX_NOTIONAL"}
    assert "50,002.50 USD exceeds max_order_notional 50,000.00 USD" in verdict.result("max_order_notional").detail


def test_an_order_at_ninety_percent_of_max_order_notional_passes() -> None:
    limits = {**LIMITS, "max_order_notional": float(D("25001.25") / D("0.9"))}
    verdict = check(
        intent(order_type=OrderType.MARKET, limit_price=None), context(risk_limits=limits, point_value=MES_POINT)
    )
    assert verdict.allowed, verdict.as_dict()


def test_the_notional_takes_the_higher_of_the_reference_and_the_orders_own_price() -> None:
    limits = {**LIMITS, "max_order_notional": 25_010}
    ctx = context(risk_limits=limits, point_value=MES_POINT)
    assert check(intent(limit_price=D("5001.50")), ctx).allowed  # the reference 5000.25: 25,001.25
    above = check(intent(limit_price=D("5002.50")), ctx)  # its own price is higher: 25,012.50
    assert failures(above) == {"max_order_notional": "RISK_MAX_NOTIONAL"}


@pytest.mark.parametrize(
    "changes",
    [{"reference_price": None}, {"point_value": None}, {"reference_price": D("0")}],
    ids=["no reference price", "no point value", "zero price"],
)
def test_a_notional_that_cannot_be_computed_rejects_when_a_notional_limit_is_set(changes: dict[str, Any]) -> None:
    limits = {**LIMITS, "max_order_notional": 1_000_000}
    verdict = check(intent(), context(**{"risk_limits": limits, "point_value": MES_POINT, **changes}))
    assert failures(verdict)["max_order_notional"] == "RISK_NOTIONAL_UNKNOWN"
    assert not verdict.allowed


def test_without_a_notional_limit_the_notional_checks_pass_and_say_so() -> None:
    verdict = check(intent(), context())
    assert verdict.result("max_order_notional").passed and "not set" in verdict.result("max_order_notional").detail
    assert verdict.result("account_notional").passed and "no notional cap" in verdict.result("account_notional").detail


def test_a_bad_max_order_notional_fails_closed() -> None:
    verdict = check(intent(), context(risk_limits={**LIMITS, "max_order_notional": -5}, point_value=MES_POINT))
    assert failures(verdict) == {"max_order_notional": "RISK_LIMIT_MISSING"}


def test_an_order_that_strictly_reduces_is_not_bounded_by_notional_or_the_restricted_list() -> None:
    ctx = context(
        position=1,
        risk_limits={**LIMITS, "max_order_notional": 1},
        point_value=None,  # not even computable
        account_limit_notional=D("1"),
        account_notional_usd=None,
        restricted_instruments={"MES": "compliance hold"},
    )
    stop = intent(position=1, side=Side.SELL, order_type=OrderType.STOP, limit_price=None, stop_price=D("4990"))
    assert check(stop, ctx).allowed, check(stop, ctx).as_dict()


def test_a_restricted_instrument_is_rejected_with_its_reason() -> None:
    ctx = context(restricted_instruments={"MES": "compliance hold until 2025-02-01 (set by risk-officer)"})
    verdict = check(intent(), ctx)
    assert failures(verdict) == {"restricted_instrument": "RISK_RESTRICTED"}
    assert "compliance hold until 2025-02-01" in verdict.result("restricted_instrument").detail
    assert check(intent(instrument="MNQ"), replace(ctx, restricted_instruments={"MNQ": "x"})).reason_codes == (
        "RISK_RESTRICTED",
    )
    assert check(intent(), replace(ctx, restricted_instruments={"MNQ": "another instrument"})).allowed


def test_the_account_notional_cap_counts_what_the_order_adds_to_the_accounts_worst_case() -> None:
    base = context(point_value=MES_POINT, account_limit_notional=D("100000"))
    over = check(intent(), replace(base, account_notional_usd=D("80000")))
    assert failures(over) == {"account_notional": "RISK_ACCOUNT_NOTIONAL"}
    assert "105,001.25 USD exceeds the account's notional cap 100,000.00 USD" in over.result("account_notional").detail
    assert check(intent(), replace(base, account_notional_usd=D("70000"))).allowed
    # An order that adds nothing to the account's worst case (a working sell already reaches as far) passes.
    covered = replace(base, account_notional_usd=D("99999"), working_sell_quantity=1)
    assert check(intent(), covered).allowed, check(intent(), covered).as_dict()


def test_an_unknown_account_notional_rejects_when_the_account_has_a_notional_cap() -> None:
    ctx = context(point_value=MES_POINT, account_limit_notional=D("100000"), account_notional_usd=None)
    assert failures(check(intent(), ctx)) == {"account_notional": "RISK_NOTIONAL_UNKNOWN"}
