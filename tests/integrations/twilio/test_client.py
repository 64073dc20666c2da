"""The Twilio client against its loopback stub: Basic auth, the account check, the SMS form, and
each documented failure (PROVIDERS.md §6)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from apps.integrations.errors import IntegrationError
from apps.integrations.services import integration_verify
from apps.integrations.twilio.client import TwilioClient, TwilioRequestInvalid
from apps.telemetry.models import IntegrationUsageEvent
from tests.stubs.twilio import FROM_NUMBER, GOOD_SID, GOOD_TOKEN

pytestmark = pytest.mark.django_db

TO = "+15558675310"


def _client() -> TwilioClient:
    return TwilioClient.for_bot()


def _events() -> list[IntegrationUsageEvent]:
    return list(IntegrationUsageEvent.objects.filter(provider="twilio").order_by("created_at", "id"))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_verify_reads_the_account_with_basic_auth_and_reports_it_active(provider_stub: Any) -> None:
    stub = provider_stub("twilio")
    assert _client().verify() == {"status": "active", "type": "Full"}
    request = stub.last()
    assert (request.method, request.path) == ("GET", f"/2010-04-01/Accounts/{GOOD_SID}.json")
    assert request.header("authorization") == _basic(GOOD_SID, GOOD_TOKEN)


def test_verify_reports_a_trial_account(provider_stub: Any) -> None:
    stub = provider_stub("twilio")
    stub.account_type = "Trial"
    assert _client().verify() == {"status": "active", "type": "Trial"}


def test_verify_does_not_pass_on_the_auth_token_the_account_resource_contains(provider_stub: Any) -> None:
    provider_stub("twilio")
    result = integration_verify(provider="twilio")
    assert result.ok
    assert GOOD_TOKEN not in repr(result.as_dict())


@pytest.mark.parametrize("status", ["suspended", "closed"])
def test_a_suspended_or_closed_account_fails_verify_with_a_fix(provider_stub: Any, status: str) -> None:
    stub = provider_stub("twilio")
    stub.account_status = status
    with pytest.raises(IntegrationError) as caught:
        _client().verify()
    assert caught.value.error_code == "INTEGRATION_PERMISSION_DENIED"
    assert status in caught.value.message and status in caught.value.suggested_fix

    result = integration_verify(provider="twilio")
    assert (result.ok, result.error_code) == (False, "INTEGRATION_PERMISSION_DENIED")
    assert result.details == {"account_status": status}
    # The usage event records the failure, not an "ok" call.
    assert [(e.operation, e.status, e.error_code) for e in _events()] == [
        ("verify", "error", "INTEGRATION_PERMISSION_DENIED")
    ] * 2


def test_send_sms_posts_a_form_with_to_from_and_body(provider_stub: Any) -> None:
    stub = provider_stub("twilio")
    sent = _client().send_sms(TO, "ES bot paused: daily loss limit reached & flat.")
    assert sent["status"] == "queued"
    assert sent["sid"].startswith("SM") and set(sent) == {"sid", "status"}
    request = stub.last()
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{GOOD_SID}/Messages.json")
    assert request.header("content-type") == "application/x-www-form-urlencoded"
    assert request.header("authorization") == _basic(GOOD_SID, GOOD_TOKEN)
    assert request.form() == {
        "To": [TO],
        "From": [FROM_NUMBER],
        "Body": ["ES bot paused: daily loss limit reached & flat."],
    }
    [event] = _events()
    assert (event.operation, event.status, event.http_status) == ("sms.send", "ok", 201)


def test_a_messaging_service_sid_is_sent_instead_of_from(provider_stub: Any, monkeypatch: Any) -> None:
    stub = provider_stub("twilio")
    service = "MG" + "0123456789abcdef" * 2
    monkeypatch.setenv("TWILIO_FROM_NUMBER", service)
    assert _client().send_sms(TO, "hello")["status"] == "accepted"
    assert stub.last().form() == {"To": [TO], "MessagingServiceSid": [service], "Body": ["hello"]}


@pytest.mark.parametrize(
    "to",
    [
        "5558675310",
        "+1 555 867 5310",
        "+1-555-867-5310",
        "+0155586753",
        "+1",
        "+1234567890123456",
        "",
        "tel:+15558675310",
    ],
)
def test_a_number_not_in_e164_is_refused_without_any_request(provider_stub: Any, to: str) -> None:
    stub = provider_stub("twilio")
    with pytest.raises(TwilioRequestInvalid) as caught:
        _client().send_sms(to, "hello")
    assert caught.value.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert caught.value.extra["fields"].keys() == {"to"}
    assert "E.164" in caught.value.message
    assert stub.requests == []
    assert _events() == []


@pytest.mark.parametrize("body", ["", "   ", "x" * 1601])
def test_an_empty_or_overlong_body_is_refused_without_any_request(provider_stub: Any, body: str) -> None:
    stub = provider_stub("twilio")
    with pytest.raises(TwilioRequestInvalid):
        _client().send_sms(TO, body)
    assert stub.requests == []


def test_a_body_of_exactly_1600_characters_is_sent(provider_stub: Any) -> None:
    stub = provider_stub("twilio")
    _client().send_sms(TO, "x" * 1600)
    assert stub.last().form()["Body"] == ["x" * 1600]


def test_twilio_rejecting_a_number_gives_its_code_and_docs_link(provider_stub: Any) -> None:
    provider_stub("twilio")
    with pytest.raises(IntegrationError) as caught:
        _client().send_sms("+15005550001", "hello")
    error = caught.value
    assert (error.error_code, error.http_status, error.permanent) == ("INTEGRATION_REQUEST_REJECTED", 400, True)
    assert "21211" in error.message and "Invalid 'To' Phone Number" in error.message
    assert error.extra["twilio_code"] == 21211
    assert "https://www.twilio.com/docs/errors/21211" in error.suggested_fix
    [event] = _events()
    assert (event.operation, event.status, event.error_code) == ("sms.send", "error", "INTEGRATION_REQUEST_REJECTED")


def test_a_rate_limited_send_carries_retry_after(provider_stub: Any) -> None:
    stub = provider_stub("twilio")
    stub.mode = "rate_limit"
    with pytest.raises(IntegrationError) as caught:
        _client().send_sms(TO, "hello")
    error = caught.value
    assert (error.error_code, error.retry_after, error.permanent) == ("INTEGRATION_RATE_LIMITED", 1.0, False)


def test_a_wrong_token_is_an_auth_failure_on_send(provider_stub: Any, monkeypatch: Any) -> None:
    provider_stub("twilio")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tw-WrongToken-abcdef0123456789abcde")
    with pytest.raises(IntegrationError) as caught:
        _client().send_sms(TO, "hello")
    assert caught.value.error_code == "INTEGRATION_AUTH_FAILED"
    assert "Authenticate" in caught.value.message


def test_an_xml_answer_to_send_is_a_bad_response(provider_stub: Any) -> None:
    stub = provider_stub("twilio")
    stub.mode = "malformed"
    with pytest.raises(IntegrationError) as caught:
        _client().send_sms(TO, "hello")
    assert caught.value.error_code == "INTEGRATION_BAD_RESPONSE"


def test_the_auth_token_never_appears_in_usage_events_or_errors(provider_stub: Any, monkeypatch: Any) -> None:
    stub = provider_stub("twilio")
    errors: list[IntegrationError] = []
    _client().verify()
    _client().send_sms(TO, "hello")
    stub.account_status = "suspended"
    for call in (lambda: _client().verify(), lambda: _client().send_sms("+15005550001", "hello")):
        with pytest.raises(IntegrationError) as caught:
            call()
        errors.append(caught.value)
    stub.mode = "rate_limit"
    with pytest.raises(IntegrationError) as caught:
        _client().send_sms(TO, "hello")
    errors.append(caught.value)
    stub.mode = "ok"
    wrong = "tw-WrongToken-abcdef0123456789abcde"
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", wrong)
    with pytest.raises(IntegrationError) as caught:
        _client().verify()
    errors.append(caught.value)

    rows = list(IntegrationUsageEvent.objects.filter(provider="twilio").values())
    assert len(rows) == 6
    texts = [str(rows)] + [f"{e.message} {e.suggested_fix} {e.extra}" for e in errors]
    for secret in (GOOD_TOKEN, wrong):
        assert not any(secret in text for text in texts)
