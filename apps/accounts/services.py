from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.core.audit import audit_record
from apps.core.roles import ROLE_NAMES, Role

TOKEN_PREFIX = "tro_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def user_set_role(*, user: AbstractUser, role: Role, actor_label: str = "system") -> AbstractUser:
    """Make `role` the user's only role group (roles are ordered; one group says it all)."""
    before = sorted(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
    group, _ = Group.objects.get_or_create(name=role.group_name)
    user.groups.remove(*Group.objects.filter(name__in=ROLE_NAMES).exclude(pk=group.pk))
    user.groups.add(group)
    if before != [role.group_name]:
        audit_record(
            action="user.role_set",
            actor_label=actor_label,
            target=user,
            before={"roles": before},
            after={"roles": [role.group_name]},
        )
    return user


@transaction.atomic
def api_token_create(
    *, username: str, role: Role, name: str = "", actor_label: str = "system:cli"
) -> tuple[ApiToken, str]:
    """Create the user if needed (no password: token only), give it `role`, and issue a token.
    Returns the row and the token; the token is not recoverable afterwards."""
    User = get_user_model()
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        audit_record(action="user.create", actor_label=actor_label, target=user, after={"username": username})
    user_set_role(user=user, role=role, actor_label=actor_label)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, name=name, prefix=token[:10], key_hash=token_hash(token))
    audit_record(
        action="api_token.create",
        actor_label=actor_label,
        target=row,
        after={"user": username, "role": role.group_name, "prefix": row.prefix, "name": name},
    )
    return row, token


def api_token_authenticate(token: str) -> ApiToken | None:
    row = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=token_hash(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if row is not None:
        now = timezone.now()
        # Coarse last-used stamp: one write a minute at most, not one per request.
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    return row


@transaction.atomic
def api_token_revoke(*, token_row: ApiToken, actor_label: str = "system") -> ApiToken:
    updated = ApiToken.objects.filter(pk=token_row.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    if updated:
        audit_record(
            action="api_token.revoke",
            actor_label=actor_label,
            target=token_row,
            after={"prefix": token_row.prefix},
        )
    token_row.refresh_from_db()
    return token_row
