"""DRF permission classes for the three roles. The default for every API view is IsViewer;
write endpoints name IsOperator or IsAdmin explicitly."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.core.roles import Role, user_has_role


class _HasRole(BasePermission):
    role: Role
    message = "Your role does not allow this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        # Unauthenticated → False here, which DRF turns into 401 (NotAuthenticated), not 403.
        return bool(request.user and request.user.is_authenticated) and user_has_role(request.user, self.role)


class IsViewer(_HasRole):
    role = Role.VIEWER


class IsOperator(_HasRole):
    role = Role.OPERATOR


class IsAdmin(_HasRole):
    role = Role.ADMIN
