"""The Tradovate client against its loopback stub (PROVIDERS.md §1): tokens requested once and
renewed before they expire, penalty tickets, failures reported in HTTP 200, rate limits, and no
credential in any usage event or error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from apps.integrations.credentials import Credentials
from apps.integrations.errors import IntegrationError
from apps.integrations.tradovate import client as tradovate
from apps.integrations.tradovate.client import TradovateClient
from apps.telemetry.models import IntegrationUsageEvent
from tests.integrations.helpers import failure, usage_events
from tests.stubs import tradovate as stubs

pytestmark = pytest.mark.django_db

TOKEN = "/auth/accesstokenrequest"
RENEW = "/auth/renewaccesstoken"
ACCOUNTS = "/account/list"


def client() -> TradovateClient:
    return TradovateClient.for_bot()


def events() -> list[IntegrationUsageEvent]:
    return usage_events("tradovate")


def routes(stub: stubs.TradovateStub) -> list[str]:
    return [stub._route(r.path) for r in stub.requests]


# -- tokens ---------------------------------------------------------------------------------------


def test_it_requests_a_token_once_and_reuses_it_across_verifies(stub: stubs.TradovateStub) -> None:
    first = client().verify()
    second = client().verify()

    assert first == second == {"accounts": 2, "env": "demo"}
    assert routes(stub) == [TOKEN, ACCOUNTS, ACCOUNTS]
    assert [r.header("authorization") for r in stub.calls(ACCOUNTS)] == [f"Bearer {stub.tokens[0]}"] * 2


def test_it_signs_in_with_the_documented_body_and_a_numeric_cid(stub: stubs.TradovateStub) -> None:
    client().verify()

    sign_in = stub.calls(TOKEN)[0]
    assert sign_in.method == "POST"
    assert sign_in.header("authorization") == ""
    assert sign_in.header("content-type").startswith("application/json")
    body = sign_in.json()
    assert set(body) == {"name", "password", "appId", "appVersion", "cid", "sec", "deviceId"}
    assert body["cid"] == 1234 and isinstance(body["cid"], int)
    assert (body["name"], body["appId"], body["appVersion"]) == (stubs.USERNAME, stubs.APP_ID, "1.0")
    assert body["deviceId"] and body["deviceId"] == client().device_id  # stable across clients


def test_it_sends_the_configured_device_id_and_app_version(
    stub: stubs.TradovateStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADOVATE_DEVICE_ID", "a10692ee-0000-4000-8000-000000000001")
    monkeypatch.setenv("TRADOVATE_APP_VERSION", "2.3")
    client().verify()
    body = stub.calls(TOKEN)[0].json()
    assert (body["deviceId"], body["appVersion"]) == ("a10692ee-0000-4000-8000-000000000001", "2.3")


def test_it_renews_the_token_before_it_expires(stub: stubs.TradovateStub) -> None:
    stub.mode = "expiring_token"  # sign-ins give 5 minutes; renewals the full 80

    client().verify()
    client().verify()  # less than 15 minutes left: renew, not a new sign-in
    client().verify()  # the renewed token has 80 minutes: nothing to do

    assert routes(stub) == [TOKEN, ACCOUNTS, RENEW, ACCOUNTS, ACCOUNTS]
    assert stub.calls(RENEW)[0].header("authorization") == f"Bearer {stub.tokens[0]}"
    renewed = f"Bearer {stub.tokens[1]}"
    assert [r.header("authorization") for r in stub.calls(ACCOUNTS)[1:]] == [renewed, renewed]
    assert [e.operation for e in events()] == ["auth.token", "verify", "auth.renew", "verify", "verify"]


@pytest.mark.parametrize(("minutes_left", "renews"), [(16, False), (14, True)])
def test_it_renews_only_when_less_than_15_minutes_remain(
    stub: stubs.TradovateStub, minutes_left: int, renews: bool
) -> None:
    stub.mode = "expiring_token"
    stub.short_lifetime = timedelta(minutes=minutes_left)
    client().verify()
    client().verify()
    assert bool(stub.calls(RENEW)) is renews
    assert len(stub.calls(TOKEN)) == 1


@pytest.mark.parametrize("renew_answer", ["unauthorized", "error_text"])
def test_it_signs_in_again_when_renewal_is_refused(stub: stubs.TradovateStub, renew_answer: str) -> None:
    stub.mode = "expiring_token"
    client().verify()
    stub.renew_answer = renew_answer

    assert client().verify() == {"accounts": 2, "env": "demo"}

    assert routes(stub) == [TOKEN, ACCOUNTS, RENEW, TOKEN, ACCOUNTS]
    assert stub.calls(ACCOUNTS)[1].header("authorization") == f"Bearer {stub.tokens[1]}"
    renew = next(e for e in events() if e.operation == "auth.renew")
    assert (renew.status, renew.error_code) == ("error", "INTEGRATION_AUTH_FAILED")


def test_it_keeps_a_still_valid_token_when_renewal_is_rate_limited(stub: stubs.TradovateStub) -> None:
    stub.mode = "expiring_token"
    client().verify()
    stub.renew_answer = "rate_limit"

    client().verify()

    assert routes(stub) == [TOKEN, ACCOUNTS, RENEW, ACCOUNTS]  # no new sign-in on top of a rate limit
    assert stub.calls(ACCOUNTS)[1].header("authorization") == f"Bearer {stub.tokens[0]}"


def test_it_signs_in_again_once_when_the_session_was_ended(stub: stubs.TradovateStub) -> None:
    client().verify()
    stub.revoke_tokens()  # e.g. another sign-in with these credentials replaced the session

    assert client().verify()["accounts"] == 2

    assert routes(stub) == [TOKEN, ACCOUNTS, ACCOUNTS, TOKEN, ACCOUNTS]
    assert [(e.operation, e.status, e.http_status) for e in events()][2:] == [
        ("verify", "error", 401),
        ("auth.token", "ok", 200),
        ("verify", "ok", 200),
    ]


def test_a_rejected_sign_in_after_a_401_is_final_and_does_not_loop(stub: stubs.TradovateStub) -> None:
    client().verify()
    stub.mode = "bad_key"  # the password was changed: the session ends and sign-in fails

    error = failure(client().verify)

    assert error.error_code == "INTEGRATION_AUTH_FAILED"
    assert routes(stub) == [TOKEN, ACCOUNTS, ACCOUNTS, TOKEN]


def test_a_token_answer_without_an_access_token_is_a_bad_response(stub: stubs.TradovateStub) -> None:
    stub.mode = "malformed_token"
    error = failure(client().verify)
    assert error.error_code == "INTEGRATION_BAD_RESPONSE"
    assert "accessToken" in error.message
    assert routes(stub) == [TOKEN]


def test_tokens_are_cached_under_a_hash_not_the_credentials(stub: stubs.TradovateStub) -> None:
    client().verify()
    assert len(tradovate._tokens) == 1
    (key,) = tradovate._tokens
    for value in (stubs.USERNAME, stubs.PASSWORD, stubs.SECRET):
        assert value not in key
    assert len(key) == 64


# -- penalty tickets ------------------------------------------------------------------------------


def test_a_p_ticket_is_waited_out_and_the_identical_body_resent_with_the_ticket(
    stub: stubs.TradovateStub, waits: list[float]
) -> None:
    stub.mode = "p_ticket"
    stub.p_time = 7

    assert client().verify()["accounts"] == 2

    assert waits == [7]
    first, second = (r.json() for r in stub.calls(TOKEN))
    assert "p-ticket" not in first
    assert second == {**first, "p-ticket": stub.tickets[0]}
    assert [(e.operation, e.status) for e in events()] == [("auth.token", "ok"), ("auth.token", "ok"), ("verify", "ok")]


def test_a_p_ticket_longer_than_the_cap_fails_without_waiting(
    stub: stubs.TradovateStub, waits: list[float], settings: Any
) -> None:
    settings.TRADOVATE_P_TICKET_MAX_WAIT_SECONDS = 5
    stub.mode = "p_ticket"
    stub.p_time = 7

    error = failure(client().verify)

    assert (error.error_code, error.retry_after) == ("INTEGRATION_RATE_LIMITED", 7)
    assert waits == []
    assert routes(stub) == [TOKEN]


def test_it_gives_up_when_every_resend_earns_another_p_ticket(stub: stubs.TradovateStub, waits: list[float]) -> None:
    stub.mode = "p_ticket_forever"

    error = failure(client().verify)

    assert error.error_code == "INTEGRATION_RATE_LIMITED"
    assert waits == [3] * tradovate.P_TICKET_MAX_RESENDS
    bodies = [r.json() for r in stub.calls(TOKEN)]
    assert len(bodies) == tradovate.P_TICKET_MAX_RESENDS + 1
    assert [b.get("p-ticket") for b in bodies[1:]] == stub.tickets[:-1]  # always the latest ticket


def test_a_p_captcha_fails_closed_without_a_resend(stub: stubs.TradovateStub, waits: list[float]) -> None:
    stub.mode = "p_captcha"

    error = failure(client().verify)

    assert error.error_code == "INTEGRATION_RATE_LIMITED"
    assert error.retry_after == 3600
    assert "hour" in error.suggested_fix
    assert waits == []
    assert routes(stub) == [TOKEN]
    assert [(e.operation, e.error_code, e.http_status) for e in events()] == [
        ("auth.token", "INTEGRATION_RATE_LIMITED", 200)
    ]


def test_a_p_ticket_on_a_get_is_a_rate_limit_without_a_resend(stub: stubs.TradovateStub, waits: list[float]) -> None:
    stub.mode = "p_ticket_data"  # a GET has no body to carry the ticket back: wait, do not resend
    stub.p_time = 12

    error = failure(client().verify)

    assert (error.error_code, error.retry_after) == ("INTEGRATION_RATE_LIMITED", 12)
    assert waits == []
    assert routes(stub) == [TOKEN, ACCOUNTS]


# -- rate limits and failures in a 200 ------------------------------------------------------------


def test_a_429_is_a_rate_limit_with_an_hour_to_wait(stub: stubs.TradovateStub) -> None:
    stub.mode = "rate_limit"

    error = failure(client().verify)

    assert (error.error_code, error.http_status, error.retry_after) == ("INTEGRATION_RATE_LIMITED", 429, 3600)
    assert "hour" in error.suggested_fix
    assert not error.permanent
    assert [(e.operation, e.error_code, e.http_status) for e in events()] == [
        ("auth.token", "INTEGRATION_RATE_LIMITED", 429)
    ]


def test_a_423_is_a_rate_limit_that_backs_off_hard(stub: stubs.TradovateStub) -> None:
    client().verify()
    stub.mode = "locked_423"

    error = failure(client().list_accounts)

    assert (error.error_code, error.http_status) == ("INTEGRATION_RATE_LIMITED", 423)
    assert error.retry_after == tradovate.LOCKED_BACKOFF_SECONDS
    assert routes(stub)[-1] == ACCOUNTS and len(stub.calls(TOKEN)) == 1  # no sign-in on top of a 423
    assert (events()[-1].operation, events()[-1].error_code) == ("account.list", "INTEGRATION_RATE_LIMITED")


def test_a_failed_sign_in_is_a_200_with_error_text_and_an_auth_failure(stub: stubs.TradovateStub) -> None:
    stub.mode = "bad_key"

    error = failure(client().verify)

    assert (error.error_code, error.http_status) == ("INTEGRATION_AUTH_FAILED", 200)
    assert stubs.LOGIN_ERROR[:60] in error.message
    assert "TRADOVATE_PASSWORD" in error.suggested_fix
    assert [(e.operation, e.status, e.error_code, e.http_status) for e in events()] == [
        ("auth.token", "error", "INTEGRATION_AUTH_FAILED", 200)
    ]


def test_error_text_on_a_data_call_is_a_rejected_request_not_an_auth_failure(stub: stubs.TradovateStub) -> None:
    client().verify()
    stub.mode = "error_text"

    error = failure(client().list_accounts)

    assert (error.error_code, error.http_status) == ("INTEGRATION_REQUEST_REJECTED", 200)
    assert "Access is denied" in error.message
    assert len(stub.calls(TOKEN)) == 1  # a business error does not throw the token away


def test_an_account_list_that_is_not_an_array_is_a_bad_response(stub: stubs.TradovateStub) -> None:
    stub.mode = "malformed"
    error = failure(client().list_accounts)
    assert error.error_code == "INTEGRATION_BAD_RESPONSE"
    assert events()[-1].error_code == "INTEGRATION_BAD_RESPONSE"


# -- calls and metering ---------------------------------------------------------------------------


def test_it_lists_accounts_and_positions(stub: stubs.TradovateStub) -> None:
    accounts = client().list_accounts()
    positions = client().list_positions()

    assert [a["name"] for a in accounts] == ["DEMO123456", "DEMO123457"]
    assert [(p["accountId"], p["contractId"], p["netPos"]) for p in positions] == [(123456, 2424242, -2)]


def test_every_operation_is_metered_under_its_name(stub: stubs.TradovateStub) -> None:
    stub.mode = "expiring_token"
    client().verify()
    client().list_accounts()  # renews first
    client().list_positions()

    assert [(e.operation, e.status) for e in events()] == [
        ("auth.token", "ok"),
        ("verify", "ok"),
        ("auth.renew", "ok"),
        ("account.list", "ok"),
        ("position.list", "ok"),
    ]
    assert all(e.latency_ms is not None and e.http_status == 200 and e.trace_id for e in events())


def test_no_credential_reaches_a_usage_event_or_an_error(stub: stubs.TradovateStub) -> None:
    secrets = (stubs.PASSWORD, stubs.SECRET)
    errors: list[IntegrationError] = []
    stub.login_error_text = f"Password {stubs.PASSWORD} is wrong for secret {stubs.SECRET}"  # a provider echoing
    for mode in ("ok", "p_ticket", "p_captcha", "rate_limit", "locked_423", "error_text", "malformed", "bad_key"):
        tradovate.clear_token_cache()
        stub.mode = mode
        try:
            client().verify()
        except IntegrationError as exc:
            errors.append(exc)

    assert len(errors) == 6
    assert any("[redacted]" in e.message for e in errors)  # the echoing sign-in failure
    for error in errors:
        shown = f"{error} {error.message} {error.suggested_fix} {error.extra!r} {error!r}"
        assert not any(s in shown for s in secrets), error.error_code
    rows = list(IntegrationUsageEvent.objects.filter(provider="tradovate").values())
    assert len(rows) >= 10
    assert not any(s in repr(rows) for s in secrets)


# -- hosts ----------------------------------------------------------------------------------------


def _offline_client(**values: str) -> TradovateClient:
    values = {**stubs.TradovateStub.good_env, **values}
    return TradovateClient(Credentials(provider="tradovate", values=values, sources={}, missing=[]))


@pytest.mark.parametrize(
    ("env", "host"),
    [
        ("", "https://demo.tradovateapi.com/v1"),
        ("demo", "https://demo.tradovateapi.com/v1"),
        ("LIVE", "https://live.tradovateapi.com/v1"),
    ],
)
def test_tradovate_env_picks_the_documented_host(env: str, host: str) -> None:
    assert _offline_client(TRADOVATE_ENV=env).base_url == host


def test_the_base_url_override_wins_over_the_env() -> None:
    client = _offline_client(TRADOVATE_ENV="live", TRADOVATE_BASE_URL="http://127.0.0.1:9/v1/")
    assert client.base_url == "http://127.0.0.1:9/v1"


def test_an_unknown_env_fails_closed_without_guessing_a_host() -> None:
    error = failure(lambda: _offline_client(TRADOVATE_ENV="paper").base_url)
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert "paper" not in error.message
    assert "demo or live" in error.suggested_fix
