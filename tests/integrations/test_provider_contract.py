"""Every provider, against its stub: verify succeeds, and each documented failure gives the right
error code, a suggested fix, and a usage event with status error (issue 3, "Done means")."""

from __future__ import annotations

from typing import Any

import pytest

from apps.integrations.services import integration_verify
from apps.telemetry.models import IntegrationUsageEvent
from tests.stubs import available_stubs

pytestmark = pytest.mark.django_db

EXPECTED = {
    "bad_key": "INTEGRATION_AUTH_FAILED",
    "rate_limit": "INTEGRATION_RATE_LIMITED",
    "timeout": "INTEGRATION_TIMEOUT",
    "malformed": "INTEGRATION_BAD_RESPONSE",
}


@pytest.mark.parametrize("provider", available_stubs())
def test_verify_succeeds_against_the_stub_and_is_metered(provider: str, provider_stub: Any) -> None:
    provider_stub(provider)
    result = integration_verify(provider=provider)
    assert result.ok, result
    assert result.error_code is None and result.latency_ms is not None
    events = list(IntegrationUsageEvent.objects.filter(provider=provider))
    assert events and all(e.status == "ok" for e in events)
    assert any(e.operation == "verify" for e in events)


@pytest.mark.parametrize("mode", list(EXPECTED))
@pytest.mark.parametrize("provider", available_stubs())
def test_each_failure_is_classified_with_a_fix_and_metered(provider: str, mode: str, provider_stub: Any) -> None:
    stub = provider_stub(provider)
    stub.mode = mode
    result = integration_verify(provider=provider)
    assert not result.ok
    assert result.error_code == EXPECTED[mode], result
    assert result.suggested_fix
    errors = IntegrationUsageEvent.objects.filter(provider=provider, status="error")
    assert errors.exists()
    assert errors.latest("created_at").error_code == EXPECTED[mode]


@pytest.mark.parametrize("provider", available_stubs())
def test_missing_keys_fail_closed_without_calling(provider: str, provider_stub: Any) -> None:
    stub = provider_stub(provider, configure=False)
    result = integration_verify(provider=provider)
    assert (result.ok, result.error_code) == (False, "INTEGRATION_KEY_MISSING")
    assert result.missing_env_vars
    assert stub.requests == []
    assert not IntegrationUsageEvent.objects.filter(provider=provider).exists()


def test_a_secret_echoed_by_the_provider_is_redacted_from_the_error(provider_stub: Any) -> None:
    from tests.stubs.base import StubResponse

    stub = provider_stub("databento")
    key = stub.good_env["DATABENTO_API_KEY"]
    stub.handle = lambda request: StubResponse(401, {"detail": f"Invalid key {key} for this account"})
    result = integration_verify(provider="databento")
    assert result.error_code == "INTEGRATION_AUTH_FAILED"
    assert key not in result.message and "[redacted]" in result.message
