from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from apps.core.audit import audit_record


@receiver(user_logged_in)
def _audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(action="auth.login", actor=user, target=user)


@receiver(user_login_failed)
def _audit_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    # credentials holds the password too; only the username is kept (audit_record also redacts).
    audit_record(
        action="auth.login_failed",
        actor_label=f"anonymous:{credentials.get('username', '')}"[:150],
        target_type="auth.user",
        target_id=str(credentials.get("username", ""))[:64],
    )
