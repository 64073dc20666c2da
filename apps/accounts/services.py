from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.core.audit import audit_record
from apps.core.db import fetch_prepared, instance_from_values
from apps.core.roles import ROLE_NAMES, Role, role_from_groups

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


# One prepared query per authenticated API request: the token, its user and the user's role.
_TOKEN_AUTH_SQL = """
SELECT t.id, t.last_used_at, u.id, u.username, u.is_superuser, u.is_staff,
       (SELECT array_agg(g.name) FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
         WHERE ug.user_id = u.id AND g.name = ANY(%(roles)s))
  FROM accounts_apitoken t JOIN auth_user u ON u.id = t.user_id
 WHERE t.key_hash = %(hash)s AND t.revoked_at IS NULL AND u.is_active
"""


def api_token_authenticate(token: str) -> tuple[AbstractUser, ApiToken] | None:
    """The active user and token row for `token`, or None. The user's role is resolved in the same
    query and cached on the user (apps.core.roles.user_role reads it)."""
    rows = fetch_prepared(_TOKEN_AUTH_SQL, {"hash": token_hash(token), "roles": list(ROLE_NAMES)})
    if not rows:
        return None
    token_id, last_used_at, user_id, username, is_superuser, is_staff, groups = rows[0]
    User = get_user_model()
    user = instance_from_values(
        User,
        {"id": user_id, "username": username, "is_superuser": is_superuser, "is_staff": is_staff, "is_active": True},
    )
    user._tradeops_role = role_from_groups(groups or [])  # type: ignore[attr-defined]
    row = instance_from_values(ApiToken, {"id": token_id, "user_id": user_id, "last_used_at": last_used_at})
    now = timezone.now()
    # Coarse last-used stamp: one write a minute at most, not one per request.
    if last_used_at is None or (now - last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
    return user, row


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
