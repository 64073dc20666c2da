from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.core.roles import Role
from tests.factories import UserFactory


@pytest.fixture
def user(db: Any) -> Any:
    return UserFactory()


def _with_role(role: Role) -> Any:
    from apps.accounts.services import user_set_role

    user = UserFactory()
    user_set_role(user=user, role=role)
    return user


@pytest.fixture
def viewer(db: Any) -> Any:
    return _with_role(Role.VIEWER)


@pytest.fixture
def operator(db: Any) -> Any:
    return _with_role(Role.OPERATOR)


@pytest.fixture
def admin_user(db: Any) -> Any:
    return _with_role(Role.ADMIN)


@pytest.fixture
def stranger(db: Any) -> Any:
    """Signed in, but holds no role."""
    return UserFactory()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def token_client(db: Any) -> Any:
    """token_client("operator") -> an APIClient authenticated with a fresh token of that role."""

    def make(role: str, username: str | None = None) -> APIClient:
        _, token = api_token_create(username=username or f"{role}-bot", role=Role.from_name(role))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client

    return make


@pytest.fixture
def htmx_client(viewer: Any) -> Client:
    client = Client(headers={"HX-Request": "true"})
    client.force_login(viewer)
    return client


@pytest.fixture
def real_celery(settings: Any) -> Iterator[Any]:
    """Tasks go through the real broker (Redis) instead of running inline."""
    from config.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    try:
        yield app
    finally:
        app.conf.task_always_eager = True
