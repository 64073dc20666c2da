"""Every /api/ error is the SPEC §2 envelope with a trace id that is also in the log."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.urls")]

ENVELOPE_KEYS = {"error_code", "message", "suggested_fix", "trace_id"}


def assert_envelope(response: Any, status: int, error_code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert body.keys() >= ENVELOPE_KEYS
    assert body["error_code"] == error_code
    assert body["trace_id"] == response["X-Trace-Id"]
    assert body["message"] and body["suggested_fix"]
    return body


def logged_trace_ids(caplog: Any) -> set[str]:
    return {getattr(r, "trace_id", None) for r in caplog.records} - {None}


def test_it_answers_validation_errors_with_fields(token_client: Any) -> None:
    response = token_client("operator").post("/api/test/echo", {"name": "x" * 20, "quantity": 0}, format="json")
    body = assert_envelope(response, 400, "VALIDATION_ERROR")
    assert set(body["fields"]) == {"name", "quantity"}


def test_it_answers_401_without_credentials(api_client: APIClient) -> None:
    response = api_client.get("/api/test/echo")
    assert_envelope(response, 401, "AUTHENTICATION_REQUIRED")
    assert response["WWW-Authenticate"] == "Token"


def test_it_answers_401_for_a_bad_token(api_client: APIClient) -> None:
    api_client.credentials(HTTP_AUTHORIZATION="Token tro_not-a-real-token")
    assert_envelope(api_client.get("/api/test/echo"), 401, "AUTHENTICATION_REQUIRED")


def test_it_answers_403_for_the_wrong_role(token_client: Any) -> None:
    response = token_client("viewer").post("/api/test/echo", {"name": "a", "quantity": 1}, format="json")
    assert_envelope(response, 403, "PERMISSION_DENIED")


def test_it_answers_404_for_a_route_that_does_not_exist(api_client: APIClient, caplog: Any) -> None:
    with caplog.at_level(logging.INFO):
        response = api_client.get("/api/no/such/thing")
    body = assert_envelope(response, 404, "NOT_FOUND")
    assert body["trace_id"] in logged_trace_ids(caplog)


def test_it_answers_404_under_debug_too(api_client: APIClient, settings: Any) -> None:
    settings.DEBUG = True
    assert_envelope(api_client.get("/api/no/such/thing"), 404, "NOT_FOUND")


def test_it_answers_405_with_allow(api_client: APIClient) -> None:
    response = api_client.delete("/api/health")
    assert_envelope(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response["Allow"]


def test_it_answers_malformed_json(token_client: Any, caplog: Any) -> None:
    with caplog.at_level(logging.INFO):
        response = token_client("operator").post(
            "/api/test/echo", data='{"name": "a", ', content_type="application/json"
        )
    body = assert_envelope(response, 400, "MALFORMED_JSON")
    assert body["trace_id"] in logged_trace_ids(caplog)


def test_it_answers_unsupported_media_type(token_client: Any) -> None:
    response = token_client("operator").post("/api/test/echo", data="name=a", content_type="text/plain")
    assert_envelope(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_it_refuses_an_oversized_body_before_reading_it(token_client: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    payload = json.dumps({"name": "a", "quantity": 1, "pad": "x" * 5000})
    response = token_client("operator").post("/api/test/echo", data=payload, content_type="application/json")
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")


def test_it_renders_domain_errors_with_their_code_and_detail(token_client: Any) -> None:
    body = assert_envelope(token_client("operator").post("/api/test/conflict"), 409, "BOT_KILLED")
    assert body["missing_env_vars"] == ["X_KEY"]
    assert body["suggested_fix"] == "Unkill it first."


@pytest.mark.parametrize("path", ["/api/test/crash", "/api/test/crash-plain"])
def test_it_hides_unhandled_errors_behind_a_generic_500(token_client: Any, caplog: Any, path: str) -> None:
    client = token_client("viewer")
    client.raise_request_exception = False
    with caplog.at_level(logging.INFO):
        response = client.get(path)
    body = assert_envelope(response, 500, "INTERNAL_ERROR")
    text = response.content.decode()
    for leak in ("secret-internal-detail", "Traceback", "SELECT", "SECRET_KEY", "/work/", ".py"):
        assert leak not in text
    # The operator can find the stack trace in the log by the trace id.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.trace_id == body["trace_id"] and r.exc_info for r in errors)


def test_a_non_api_404_stays_html(client: Any) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
    assert response["X-Trace-Id"]
