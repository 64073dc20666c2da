"""The global kill latch (RELIABILITY K1, K2): one row in PostgreSQL, read by the risk engine and the
send path like each bot's own latch, and by every runner start.

Kill-all (apps/runners) engages it first, in its own transaction, before it kills the bots one by
one, so a bot created or started while that runs (or any time after) is refused too. Only a person
with the operator role and a reason releases it; both moves are audited. Releasing does not unkill
the bots that kill-all killed: each still needs its own unkill.

Locking: the send path reads the row FOR SHARE in the transaction that sends (apps/trading/services.py),
so an engage (an UPDATE of the row) waits for an order being sent and then sees it working, and an
order read after the engage sees the latch. No queue, no cache: a plain row, like the bot latch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core import snapshots
from apps.core.audit import audit_record
from apps.core.exceptions import ApplicationError, StateConflict
from apps.core.roles import Role, user_has_role
from apps.trading.models import KillSwitch

RELEASE_PATH = "POST /api/system/kill-all/release"


@dataclass(frozen=True)
class KillAllState:
    engaged: bool
    since: datetime | None = None
    by: str = ""
    reason: str = ""
    released_at: datetime | None = None
    released_by: str = ""
    release_reason: str = ""

    @classmethod
    def of(cls, row: KillSwitch | None) -> KillAllState:
        if row is None:  # never engaged on this database (the migration creates the row released)
            return cls(engaged=False)
        return cls(
            engaged=row.engaged,
            since=row.engaged_at if row.engaged else None,
            by=row.engaged_by if row.engaged else "",
            reason=row.reason if row.engaged else "",
            released_at=row.released_at,
            released_by=row.released_by,
            release_reason=row.release_reason,
        )

    def describe(self) -> str:
        """For reject texts and traces: the scope, who engaged it, when and why (K1)."""
        when = self.since.isoformat() if self.since else "an unknown time"
        return f"kill-all (scope: global) engaged by {self.by or 'unknown'} at {when}: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        """as_dict with times as ISO 8601 strings (for audit rows and error envelopes)."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.as_dict().items()}

    def as_dict(self) -> dict[str, Any]:
        """The `kill_all` object of GET /api/system/status and of the kill-all answers."""
        return {
            "engaged": self.engaged,
            "since": self.since,
            "by": self.by or None,
            "reason": self.reason or None,
            "released_at": self.released_at,
            "released_by": self.released_by or None,
            "release_reason": self.release_reason or None,
        }


def kill_all_state() -> KillAllState:
    """The latch as it is committed now (no lock)."""
    return KillAllState.of(KillSwitch.objects.filter(pk=KillSwitch.SINGLETON).first())


def kill_all_state_for_send() -> KillAllState:
    """The latch, holding its row FOR SHARE until the caller's transaction ends: call it inside the
    transaction that checks risk or sends an order (see the module docstring)."""
    table = KillSwitch._meta.db_table  # Django's ORM has FOR UPDATE only; FOR SHARE lets sends run side by side
    rows = list(KillSwitch.objects.raw(f"SELECT * FROM {table} WHERE id = %s FOR SHARE", [KillSwitch.SINGLETON]))
    return KillAllState.of(rows[0] if rows else None)


def _label(actor: Any, actor_label: str = "") -> str:
    if actor_label:
        return actor_label
    return actor.get_username() if getattr(actor, "is_authenticated", False) else "system"


def _require_reason(reason: str | None, what: str) -> str:
    if not reason or not reason.strip():
        raise ApplicationError(
            f"{what} needs a reason.",
            error_code="VALIDATION_ERROR",
            status_code=400,
            suggested_fix="Send a reason: it is kept in the audit trail.",
            extra={"fields": {"reason": ["This field is required."]}},
        )
    return reason.strip()


def kill_all_engage(*, actor: Any, reason: str, actor_label: str = "") -> tuple[KillAllState, bool]:
    """Engage the latch (committed here, in its own transaction). Returns the state and whether
    this call engaged it; when it was already engaged, the first engagement's time, author and
    reason are kept (the audit row of this call records the second reason)."""
    reason = _require_reason(reason, "Kill-all")
    label = _label(actor, actor_label)
    now = timezone.now()
    with transaction.atomic():
        KillSwitch.objects.get_or_create(pk=KillSwitch.SINGLETON)
        engaged = KillSwitch.objects.filter(pk=KillSwitch.SINGLETON, engaged=False).update(
            engaged=True, engaged_at=now, engaged_by=label, reason=reason, updated_at=now
        )
        state = kill_all_state()
        audit_record(
            action="system.kill_all_latch",
            actor=actor,
            actor_label=label,
            target_type="system",
            target_id="kill_all",
            reason=reason,
            before={"engaged": not engaged},
            after={"scope": "global", "engaged": True, "newly_engaged": bool(engaged), **state.as_json()},
        )
    snapshots.invalidate("system-status")
    return state, bool(engaged)


class KillAllNotEngaged(StateConflict):
    error_code = "KILL_ALL_NOT_ENGAGED"
    default_message = "Kill-all is not engaged: there is nothing to release."
    default_suggested_fix = "Nothing to do. Bots killed one by one are released with their own unkill."


class KillAllReleaseRefused(ApplicationError):
    status_code = 403
    error_code = "PERMISSION_DENIED"
    default_suggested_fix = "Ask an operator or an admin to release kill-all, with a reason."


def kill_all_release(*, actor: Any, reason: str) -> KillAllState:
    """Release the latch: a signed-in operator or admin, with a reason (a system actor never
    releases it). Conditional UPDATE; audited with the engagement it ends. Unkills no bot."""
    if not getattr(actor, "is_authenticated", False) or not user_has_role(actor, Role.OPERATOR):
        raise KillAllReleaseRefused(
            f"{_label(actor)} cannot release kill-all: it needs a person with the operator role."
        )
    reason = _require_reason(reason, "Releasing kill-all")
    label = _label(actor)
    now = timezone.now()
    with transaction.atomic():
        before = kill_all_state()
        released = KillSwitch.objects.filter(pk=KillSwitch.SINGLETON, engaged=True).update(
            engaged=False, released_at=now, released_by=label, release_reason=reason, updated_at=now
        )
        if not released:
            raise KillAllNotEngaged()
        audit_record(
            action="system.kill_all_release",
            actor=actor,
            target_type="system",
            target_id="kill_all",
            reason=reason,
            before={"scope": "global", **before.as_json()},
            after={"engaged": False, "released_at": now.isoformat(), "released_by": label},
        )
    snapshots.invalidate("system-status")
    return kill_all_state()
