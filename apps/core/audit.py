"""The audit service every app calls for each lifecycle mutation.

The AuditEvent model lives in telemetry (ARCHITECTURE.md); core reaches it by its label so that
every app, including accounts, can record without importing upward.
"""

from __future__ import annotations

import re
from typing import Any

from django.apps import apps
from django.db import models

from apps.core.context import ensure_trace_id, get_client_ip

REDACTED = "***redacted***"
# Any key that names a secret, in any nesting: api_key, TRADOVATE_PASSWORD, auth_token, secret, ...
_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|private[_-]?key|credential|auth)", re.I)


def redact(value: Any) -> Any:
    """A copy of value with every secret-named key's value replaced by REDACTED."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def audit_record(
    *,
    action: str,
    actor: Any = None,
    actor_label: str = "",
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    ip: str | None = None,
) -> Any:
    """Append one audit row. `actor` is a user (or None for the system, then name it in
    actor_label, e.g. "system:supervisor"). Secrets in before/after are redacted here, so callers
    cannot forget. The trace id and client IP come from the bound request or task."""
    AuditEvent = apps.get_model("telemetry", "AuditEvent")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    user = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=user,
        actor_label=actor_label or (user.get_username() if user else "system"),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=redact(before) if before is not None else None,
        after=redact(after) if after is not None else None,
        reason=reason,
        trace_id=ensure_trace_id(),
        ip=ip or get_client_ip(),
    )
