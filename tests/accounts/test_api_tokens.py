from __future__ import annotations

import hashlib
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_revoke
from apps.core.roles import Role, user_role
from apps.telemetry.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.urls")]


def _create_token(username: str, role: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", username, "--role", role, stdout=out, stderr=err)
    return out.getvalue().strip()


def test_create_api_token_makes_the_user_and_prints_a_working_token() -> None:
    token = _create_token("desk-client", "operator")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.get("/api/test/echo")
    assert response.status_code == 200
    assert response.json() == {"user": "desk-client"}


def test_the_token_is_stored_hashed_never_in_clear() -> None:
    token = _create_token("hashed", "viewer")
    row = ApiToken.objects.get(user__username="hashed")
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(v) for v in ApiToken.objects.values_list().get(pk=row.pk))
    assert token not in stored
    assert token.startswith(row.prefix)


def test_the_token_is_not_in_the_audit_trail() -> None:
    token = _create_token("audited", "admin")
    event = AuditEvent.objects.get(action="api_token.create")
    assert token not in str(event.after) and token not in str(event.before)
    assert event.after["role"] == "admin"


def test_it_sets_exactly_the_requested_role() -> None:
    _create_token("promoted", "admin")
    _create_token("promoted", "viewer")
    row = ApiToken.objects.filter(user__username="promoted").first()
    assert user_role(type(row.user).objects.get(pk=row.user_id)) == Role.VIEWER


def test_it_rejects_an_unknown_role() -> None:
    with pytest.raises(CommandError):
        call_command("create_api_token", "x", "--role", "superhero", stdout=StringIO(), stderr=StringIO())


def test_a_revoked_token_is_refused(token_client: Any) -> None:
    client = token_client("operator", username="revokee")
    assert client.get("/api/test/echo").status_code == 200
    api_token_revoke(token_row=ApiToken.objects.get(user__username="revokee"))
    assert client.get("/api/test/echo").status_code == 401


def test_an_inactive_user_token_is_refused(token_client: Any) -> None:
    client = token_client("operator", username="leaver")
    type(ApiToken.objects.get(user__username="leaver").user).objects.filter(username="leaver").update(is_active=False)
    assert client.get("/api/test/echo").status_code == 401


@pytest.mark.parametrize(
    ("role", "get_status", "post_status"),
    [("viewer", 200, 403), ("operator", 200, 200), ("admin", 200, 200)],
)
def test_roles_are_ordered(token_client: Any, role: str, get_status: int, post_status: int) -> None:
    client = token_client(role)
    assert client.get("/api/test/echo").status_code == get_status
    assert client.post("/api/test/echo", {"name": "a", "quantity": 1}, format="json").status_code == post_status


def test_a_signed_in_user_without_a_role_may_do_nothing(stranger: Any) -> None:
    client = APIClient()
    client.force_login(stranger)
    assert client.get("/api/test/echo").status_code == 403


def test_session_auth_needs_the_csrf_token_for_writes(operator: Any) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post("/api/test/echo", {"name": "a", "quantity": 1}, format="json")
    assert response.status_code == 403
    assert response.json()["error_code"] == "PERMISSION_DENIED"


def test_a_superuser_counts_as_admin(django_user_model: Any) -> None:
    root = django_user_model.objects.create_superuser("root", password="x" * 16)
    assert user_role(root) == Role.ADMIN
