from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_it_reports_database_and_redis_without_auth(client: Any) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["redis"]["ok"] is True
    assert body["database"]["latency_ms"] >= 0


def test_it_says_which_dependency_is_down(client: Any, settings: Any, tmp_path: Any) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/nothing-here.sock"
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["redis"] == {"ok": False, "latency_ms": None, "error": "ConnectionError"}
    assert body["database"]["ok"] is True


def test_a_redis_password_never_leaks(client: Any, settings: Any) -> None:
    settings.REDIS_URL = "redis://:canary-password@127.0.0.1:1/0"
    assert "canary-password" not in client.get("/api/health").content.decode()


def test_the_schema_and_docs_are_served(token_client: Any) -> None:
    client = token_client("viewer")
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/health" in schema.json()["paths"]
    assert client.get("/api/docs/").status_code == 200
