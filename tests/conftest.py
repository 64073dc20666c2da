from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.core.roles import Role
from apps.integrations import registry
from apps.integrations.registry import ProviderSpec
from tests.factories import UserFactory
from tests.stubs import STUBS


def pytest_sessionstart(session: pytest.Session) -> None:
    """The compiled engine kernel, compiled once (or loaded from var/numba) before any test runs: the
    Celery workers the tests start (tests/backtests/test_backtest_queue.py) load it from that cache
    in about a second instead of compiling it (15-40 s) inside a backtest's time limit."""
    from apps.trading import engine_kernel

    engine_kernel.warm()


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


@pytest.fixture(autouse=True)
def _no_provider_keys_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the variables they set: never a key from the developer's environment."""
    for name in registry.all_env_vars():
        if name not in registry.EMBEDDED_DEFAULTS:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def provider_stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """provider_stub("databento") → a running stub; its base URL and good credentials are set in
    the environment unless configure=False."""
    started: list[Any] = []

    def start(provider: str, *, configure: bool = True) -> Any:
        module_name, _, cls_name = STUBS[provider].partition(":")
        module = importlib.import_module(module_name)
        stub = getattr(module, cls_name)().start()
        started.append(stub)
        spec: ProviderSpec = registry.PROVIDERS[provider]
        monkeypatch.setenv(spec.base_url_var, stub.url)
        if configure:
            for name, value in stub.good_env.items():
                monkeypatch.setenv(name, value)
        return stub

    yield start
    for stub in started:
        stub.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly when the browser tests did not run, so a green run is not mistaken for them."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "tests/browser/" in str(getattr(report, "nodeid", "")).replace("\\", "/")
    ]
    if skipped:
        terminalreporter.write_line(
            f"BROWSER TESTS SKIPPED ({len(skipped)}): chromium is not installed "
            "(apt-get install chromium, or set TRADEOPS_CHROMIUM); the Observatory was not tried in a browser.",
            yellow=True,
            bold=True,
        )
