"""Roles are Django groups, ordered: each role includes the ones below it.

viewer   — read everything
operator — verify, start/stop/restart, tick, kill, promote to PAPER, run backtests and lab
admin    — promote to LIVE, credentials, users
A superuser counts as admin. A user in no role group can authenticate but may do nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def group_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; choose one of {', '.join(ROLE_NAMES)}") from None


ROLE_NAMES = tuple(r.group_name for r in Role)


def user_role(user: AbstractBaseUser | AnonymousUser | None) -> Role | None:
    """The highest role the user holds, or None. Cached on the user object for the request."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    cached = getattr(user, "_tradeops_role", False)
    if cached is not False:
        return cached
    names = user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True)  # type: ignore[attr-defined]
    role = role_from_groups(names)
    user._tradeops_role = role  # type: ignore[union-attr]
    return role


def role_from_groups(names: Iterable[str]) -> Role | None:
    held = set(names)
    return max((r for r in Role if r.group_name in held), default=None)


def user_has_role(user: AbstractBaseUser | AnonymousUser | None, role: Role) -> bool:
    held = user_role(user)
    return held is not None and held >= role
