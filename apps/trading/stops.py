"""Protective stops as plain values: what stop a position needs, which working stops stay, which go,
and whether one must be placed. No database, no clock: `apps.trading.services.protection_sync`
does what `protection_plan` decides for a runner, and a backtest can run the same planning bar by
bar (SPEC §9: "protective stops ... exactly as SIM").

The rules:
- Flat: no stop. Every working stop is cancelled (a stop with no position to protect would open one).
- In a position, while an order that changes it is open (an entry, a reversal or an exit that is
  not filled yet, or UNKNOWN): the position is about to change, so its stop stays as it is and no
  new stop is placed (a stop sized for the old position could add to the new one). Stops on the
  wrong side (they would add to the position) are cancelled even then.
- In a position, otherwise: exactly one working STOP on the other side for the whole position, at
  the stop of the entry that opened it. One that fits is kept; the others are cancelled; none
  fitting → one is placed. Without an entry stop to use, the position is reported unprotected.
- A position keeps its stop until the order that replaces it is accepted: an entry that reverses
  or exits names the stops it replaces (OrderPlan.replaces); risk counts them as cancelled, and they
  are cancelled only once the venue has accepted that order. A refused order leaves them working.

When a stop works from (SIM fills it on bars from then on; `stop_working_from`):
- the first stop of an entry works from the entry's own decision time, like a bracket: on the bar
  the entry filled it is tried against that bar's range (SPEC §9), so an on-time tick, a late tick
  and a backtest make the same trades (LIVE on a venue with brackets, it is the bracket: sent with
  the entry under this same id, apps/trading/services.py);
- a stop placed again later for the same entry (the first was refused, or cancelled and the
  position is still open) works from the tick that placed it: the bars in between it was not working
  on, and filling it there would invent a protection the position did not have.

Identity: a stop's client order id is derived from (bot, its working-from time, "stop:<entry id>:
<quantity>:<sequence>"), the sequence counting the stops already placed since that entry. The same
tick run twice finds its row; a stop placed again after a cancel gets a fresh id (a cancelled row
never swallows the new stop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

BUY, SELL = "BUY", "SELL"


@dataclass(frozen=True, slots=True)
class WorkingStop:
    ref: str  # the order's client_order_id
    side: str
    open_quantity: int
    stop_price: Decimal | None


@dataclass(frozen=True, slots=True)
class StopWanted:
    side: str
    quantity: int
    stop_price: Decimal


@dataclass(frozen=True, slots=True)
class ProtectionPlan:
    keep: str | None = None  # the working stop that protects the position
    cancel: tuple[str, ...] = ()
    place: StopWanted | None = None
    waiting_for: tuple[str, ...] = field(default=())  # open orders about to change the position
    unprotected: str = ""  # why an open position has no stop and none is placed ("" otherwise)


def protective_side(position: int) -> str:
    """The side of the stop that closes `position` (non-zero)."""
    return SELL if position > 0 else BUY


def protection_plan(
    *, position: int, stop_price: Decimal | None, stops: Sequence[WorkingStop], in_flight: Sequence[str] = ()
) -> ProtectionPlan:
    """What to do so that `position` has exactly the protection the rules above ask for.
    `stop_price`: the stop of the entry that opened the position (None: none known).
    `stops`: the working stops, oldest first. `in_flight`: open non-stop orders (their ids)."""
    if position == 0:
        return ProtectionPlan(cancel=tuple(s.ref for s in stops))
    side = protective_side(position)
    wrong_side = tuple(s.ref for s in stops if s.side != side)
    if in_flight:
        keep = next((s.ref for s in stops if s.side == side), None)
        return ProtectionPlan(keep=keep, cancel=wrong_side, waiting_for=tuple(in_flight))
    fitting = [
        s
        for s in stops
        if s.side == side
        and s.open_quantity == abs(position)
        and (stop_price is None or s.stop_price is None or s.stop_price == stop_price)
    ]
    keep = fitting[0].ref if fitting else None
    cancel = tuple(s.ref for s in stops if s.ref != keep)
    if keep is not None:
        return ProtectionPlan(keep=keep, cancel=cancel)
    if stop_price is None:
        return ProtectionPlan(cancel=cancel, unprotected="no entry with a stop opened this position")
    return ProtectionPlan(cancel=cancel, place=StopWanted(side, abs(position), stop_price))


def stop_working_from(*, entry_bar_ts: datetime, tick_bar_ts: datetime, sequence: int) -> datetime:
    """When a stop starts working (see the module docstring): the entry's decision time for its
    first stop, the placing tick's bar for any later one."""
    return entry_bar_ts if sequence == 0 else max(entry_bar_ts, tick_bar_ts)


def stop_leg(*, entry_id: int, quantity: int, sequence: int) -> str:
    return f"stop:{entry_id}:{quantity}:{sequence}"
