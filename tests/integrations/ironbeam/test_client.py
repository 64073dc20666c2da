"""The Ironbeam client against its loopback stub (PROVIDERS.md §2): one sign-in reused, a new one
after a 401, `status` other than OK in a 200 treated as a failure, rate limits, and no credential in
any usage event or error."""

from __future__ import annotations

from typing import Any

import pytest

from apps.integrations.credentials import Credentials
from apps.integrations.errors import IntegrationError
from apps.integrations.ironbeam import client as ironbeam
from apps.integrations.ironbeam.client import IronbeamClient
from apps.telemetry.models import IntegrationUsageEvent
from tests.integrations.helpers import failure, usage_events
from tests.stubs import ironbeam as stubs

pytestmark = pytest.mark.django_db

AUTH = "/auth"
TRADER = "/info/trader"
POSITIONS = f"/account/{stubs.USERNAME}/positions"


def client() -> IronbeamClient:
    return IronbeamClient.for_bot()


def events() -> list[IntegrationUsageEvent]:
    return usage_events("ironbeam")


def paths(stub: stubs.IronbeamStub) -> list[str]:
    return [r.path for r in stub.requests]


# -- sign-in --------------------------------------------------------------------------------------


def test_it_signs_in_once_and_reuses_the_token_across_verifies(stub: stubs.IronbeamStub) -> None:
    first = client().verify()
    second = client().verify()

    assert first == second == {"accounts": 2, "env": "demo", "is_live": False}
    assert paths(stub) == [AUTH, TRADER, TRADER]
    assert [r.header("authorization") for r in stub.calls(TRADER)] == [f"Bearer {stub.tokens[0]}"] * 2


def test_it_signs_in_with_username_password_and_api_key(stub: stubs.IronbeamStub) -> None:
    client().verify()

    sign_in = stub.calls(AUTH)[0]
    assert (sign_in.method, sign_in.header("authorization")) == ("POST", "")
    assert sign_in.json() == {"username": stubs.USERNAME, "password": stubs.PASSWORD, "apiKey": stubs.API_KEY}


def test_the_sign_in_body_is_configurable(stub: stubs.IronbeamStub, settings: Any) -> None:
    # A retail user: the API key doubles as the password, with the lower-case key of the schema.
    settings.IRONBEAM_AUTH_FIELDS = {"username": "IRONBEAM_USERNAME", "password": "IRONBEAM_API_KEY"}
    stub.expected_auth = {"username": stubs.USERNAME, "password": stubs.API_KEY}

    assert client().verify()["accounts"] == 2
    assert stub.calls(AUTH)[0].json() == {"username": stubs.USERNAME, "password": stubs.API_KEY}


def test_it_signs_in_again_once_when_the_token_expired(stub: stubs.IronbeamStub) -> None:
    client().verify()
    stub.expire_tokens()

    assert client().verify()["accounts"] == 2

    assert paths(stub) == [AUTH, TRADER, TRADER, AUTH, TRADER]
    assert stub.calls(TRADER)[-1].header("authorization") == f"Bearer {stub.tokens[1]}"
    assert [(e.operation, e.status, e.http_status) for e in events()][2:] == [
        ("verify", "error", 401),
        ("auth.token", "ok", 200),
        ("verify", "ok", 200),
    ]


def test_a_rejected_sign_in_after_a_401_is_final_and_does_not_loop(stub: stubs.IronbeamStub) -> None:
    client().verify()
    stub.mode = "bad_key"

    error = failure(client().verify)

    assert error.error_code == "INTEGRATION_AUTH_FAILED"
    assert paths(stub) == [AUTH, TRADER, TRADER, AUTH]


def test_a_wrong_key_is_a_401_and_an_auth_failure(stub: stubs.IronbeamStub) -> None:
    stub.mode = "bad_key"

    error = failure(client().verify)

    assert (error.error_code, error.http_status) == ("INTEGRATION_AUTH_FAILED", 401)
    assert "Invalid username, password or api key" in error.message
    assert "IRONBEAM_API_KEY" in error.suggested_fix
    assert [(e.operation, e.error_code) for e in events()] == [("auth.token", "INTEGRATION_AUTH_FAILED")]


def test_a_sign_in_with_status_error_in_a_200_is_an_auth_failure(stub: stubs.IronbeamStub) -> None:
    stub.mode = "auth_status_error"

    error = failure(client().verify)

    assert (error.error_code, error.http_status) == ("INTEGRATION_AUTH_FAILED", 200)
    assert "Trader is disabled" in error.message
    assert paths(stub) == [AUTH]
    assert ironbeam._tokens == {}


def test_a_sign_in_without_a_token_is_a_bad_response(stub: stubs.IronbeamStub) -> None:
    stub.mode = "no_token"
    error = failure(client().verify)
    assert error.error_code == "INTEGRATION_BAD_RESPONSE"
    assert paths(stub) == [AUTH]


def test_a_data_call_with_status_error_in_a_200_is_a_rejected_request(stub: stubs.IronbeamStub) -> None:
    client().verify()
    stub.mode = "status_error"

    error = failure(client().list_accounts)

    assert (error.error_code, error.http_status) == ("INTEGRATION_REQUEST_REJECTED", 200)
    assert "Trader information unavailable" in error.message
    assert len(stub.calls(AUTH)) == 1  # a rejection does not throw the token away


def test_a_429_is_a_rate_limit(stub: stubs.IronbeamStub) -> None:
    stub.mode = "rate_limit"

    error = failure(client().verify)

    assert (error.error_code, error.http_status) == ("INTEGRATION_RATE_LIMITED", 429)
    assert not error.permanent
    assert [(e.operation, e.error_code, e.http_status) for e in events()] == [
        ("auth.token", "INTEGRATION_RATE_LIMITED", 429)
    ]


def test_a_trader_answer_that_is_not_json_is_a_bad_response(stub: stubs.IronbeamStub) -> None:
    stub.mode = "malformed"
    error = failure(client().verify)
    assert error.error_code == "INTEGRATION_BAD_RESPONSE"
    assert [(e.operation, e.status) for e in events()] == [("auth.token", "ok"), ("verify", "error")]


# -- calls and metering ---------------------------------------------------------------------------


def test_it_lists_accounts_and_positions(stub: stubs.IronbeamStub) -> None:
    accounts = client().list_accounts()
    positions = client().list_positions(accounts[0])

    assert accounts == stubs.ACCOUNTS
    assert [(p["exchSym"], p["side"], p["quantity"]) for p in positions] == [("XCME:MES.Z25", "SHORT", 2)]
    assert stub.calls(POSITIONS)[0].header("authorization") == f"Bearer {stub.tokens[0]}"


@pytest.mark.parametrize("account_id", ["1234", "51395669/../../auth", "51395669\n", "abcdefg"])
def test_a_malformed_account_id_is_refused_before_any_call(stub: stubs.IronbeamStub, account_id: str) -> None:
    error = failure(lambda: client().list_positions(account_id))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert stub.requests == []


def test_every_operation_is_metered_under_its_name(stub: stubs.IronbeamStub) -> None:
    client().verify()
    client().list_accounts()
    client().list_positions(stubs.USERNAME)

    assert [(e.operation, e.status) for e in events()] == [
        ("auth.token", "ok"),
        ("verify", "ok"),
        ("account.list", "ok"),
        ("position.list", "ok"),
    ]
    assert all(e.latency_ms is not None and e.http_status == 200 and e.trace_id for e in events())


def test_no_credential_reaches_a_usage_event_or_an_error(stub: stubs.IronbeamStub) -> None:
    secrets = (stubs.PASSWORD, stubs.API_KEY)
    errors: list[IntegrationError] = []
    for mode in ("ok", "bad_key", "auth_status_error", "no_token", "status_error", "rate_limit", "malformed"):
        ironbeam.clear_token_cache()
        stub.mode = mode
        try:
            client().verify()
        except IntegrationError as exc:
            errors.append(exc)

    assert len(errors) == 6
    for error in errors:
        shown = f"{error} {error.message} {error.suggested_fix} {error.extra!r} {error!r}"
        assert not any(s in shown for s in secrets), error.error_code
    rows = list(IntegrationUsageEvent.objects.filter(provider="ironbeam").values())
    assert len(rows) >= 8
    assert not any(s in repr(rows) for s in secrets)
    assert not any(stubs.USERNAME in key or stubs.PASSWORD in key for key in ironbeam._tokens)


# -- hosts ----------------------------------------------------------------------------------------


def _offline_client(**values: str) -> IronbeamClient:
    values = {**stubs.IronbeamStub.good_env, **values}
    return IronbeamClient(Credentials(provider="ironbeam", values=values, sources={}, missing=[]))


@pytest.mark.parametrize(
    ("env", "host"),
    [
        ("", "https://demo.ironbeamapi.com/v2"),
        ("demo", "https://demo.ironbeamapi.com/v2"),
        ("Live", "https://live.ironbeamapi.com/v2"),
    ],
)
def test_ironbeam_env_picks_the_documented_host(env: str, host: str) -> None:
    assert _offline_client(IRONBEAM_ENV=env).base_url == host


def test_an_unknown_env_fails_closed_without_guessing_a_host() -> None:
    error = failure(lambda: _offline_client(IRONBEAM_ENV="sim").base_url)
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert "demo or live" in error.suggested_fix
