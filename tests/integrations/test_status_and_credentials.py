"""System status, the credential store and the integrations API, end to end against the stubs."""

from __future__ import annotations

import logging
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command

from apps.integrations import registry
from apps.integrations.models import StoredCredential
from apps.telemetry.models import AuditEvent, IntegrationUsageEvent
from apps.telemetry.services import heartbeat_record

pytestmark = pytest.mark.django_db

CANARY = "db-CANARY-7f3e9a1c5b2d4e6f8a0b1c2d"


def _scheduler_alive() -> None:
    heartbeat_record(component="beat", instance="beat@test")
    heartbeat_record(component="worker", instance="worker@test")


def test_a_fresh_boot_with_no_keys_is_blocked_with_fixes(token_client: Any) -> None:
    body = token_client("viewer").get("/api/system/status").json()
    assert body["status"] == "BLOCKED" and body["autonomy_allowed"] is False
    codes = {b["code"]: b for b in body["blockers"]}
    market = codes["INTEGRATION_KEY_MISSING"]
    assert set(market["missing_env_vars"]) == {"DATABENTO_API_KEY", "POLYGON_API_KEY"}
    assert market["suggested_fix"] and market["component"] == "market_data"
    assert "SCHEDULER_UNAVAILABLE" in codes
    assert {w["component"] for w in body["warnings"]} >= {"openai", "twilio", "tradovate"}
    assert body["trace_id"] and body["checked_at"]
    assert body["scheduler"]["queue_depth"] is not None


def test_keys_needed_lists_every_registry_variable(token_client: Any) -> None:
    body = token_client("viewer").get("/api/integrations/keys-needed").json()
    names = {v["name"] for group in body["categories"] for v in group["variables"]}
    assert names == set(registry.all_env_vars())
    databento = next(v for g in body["categories"] for v in g["variables"] if v["name"] == "DATABENTO_API_KEY")
    assert databento == {
        "name": "DATABENTO_API_KEY",
        "provider": "databento",
        "required": True,
        "present": False,
        "source": None,
        "what_it_unlocks": databento["what_it_unlocks"],
        "docs_url": databento["docs_url"],
    }
    redis = next(v for g in body["categories"] for v in g["variables"] if v["name"] == "REDIS_URL")
    assert redis["present"] is True


def test_entering_a_databento_key_and_verifying_moves_the_status_toward_ok(
    token_client: Any, provider_stub: Any
) -> None:
    _scheduler_alive()
    stub = provider_stub("databento", configure=False)
    admin, viewer = token_client("admin"), token_client("viewer", username="watcher")
    assert viewer.get("/api/system/status").json()["status"] == "BLOCKED"

    stored = admin.put(
        "/api/integrations/databento/credentials",
        {"DATABENTO_API_KEY": stub.good_env["DATABENTO_API_KEY"]},
        format="json",
    )
    assert stored.status_code == 200 and stored.json()["stored"] == ["DATABENTO_API_KEY"]
    row = next(r for r in viewer.get("/api/integrations/status").json()["integrations"] if r["provider"] == "databento")
    assert (row["configured"], row["connected"], row["error_code"]) == (True, False, "INTEGRATION_NOT_CONNECTED")

    verified = token_client("operator").post("/api/integrations/verify", {"provider": "databento"}, format="json")
    result = verified.json()["results"][0]
    assert result["ok"] is True and result["error_code"] is None and result["verified_at"]

    row = next(r for r in viewer.get("/api/integrations/status").json()["integrations"] if r["provider"] == "databento")
    assert row["configured"] and row["connected"] and row["error_code"] is None
    assert row["proof_of_use_count_24h"] == 1 and row["last_verified_at"] and row["last_used_at"]
    events = viewer.get("/api/integrations/usage-events?provider=databento").json()["results"]
    assert [(e["operation"], e["status"]) for e in events] == [("verify", "ok")]
    assert events[0]["trace_id"] == verified["X-Trace-Id"]

    status = viewer.get("/api/system/status").json()
    assert status["status"] == "DEGRADED"  # no blocker left; the supervisor is not there yet
    assert not status["blockers"]


def test_a_failing_verify_keeps_the_status_blocked_and_says_why(token_client: Any, provider_stub: Any) -> None:
    _scheduler_alive()
    stub = provider_stub("databento")
    stub.mode = "bad_key"
    token_client("operator").post("/api/integrations/verify", {"provider": "databento"}, format="json")
    status = token_client("viewer").get("/api/system/status").json()
    assert status["status"] == "BLOCKED"
    blocker = next(b for b in status["blockers"] if b["component"] == "market_data")
    assert blocker["code"] == "INTEGRATION_NOT_CONNECTED" and "INTEGRATION_AUTH_FAILED" in blocker["message"]


def test_environment_wins_over_the_store(token_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    token_client("admin").put("/api/integrations/polygon/credentials", {"POLYGON_API_KEY": "stored"}, format="json")
    monkeypatch.setenv("POLYGON_API_KEY", "from-env")
    from apps.integrations.credentials import for_provider

    resolved = for_provider("polygon")
    assert resolved.get("POLYGON_API_KEY") == "from-env" and resolved.sources["POLYGON_API_KEY"] == "env"


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_may_enter_credentials(token_client: Any, role: str) -> None:
    response = token_client(role).put("/api/integrations/polygon/credentials", {"POLYGON_API_KEY": "x"}, format="json")
    assert response.status_code == 403
    assert not StoredCredential.objects.exists()


def test_viewers_may_not_verify(token_client: Any) -> None:
    assert token_client("viewer").post("/api/integrations/verify", {}, format="json").status_code == 403


def test_credentials_are_validated_by_name(token_client: Any) -> None:
    response = token_client("admin").put(
        "/api/integrations/polygon/credentials", {"OPENAI_API_KEY": "x", "POLYGON_API_KEY": ""}, format="json"
    )
    body = response.json()
    assert response.status_code == 400 and body["error_code"] == "VALIDATION_ERROR"
    assert set(body["fields"]) == {"OPENAI_API_KEY", "POLYGON_API_KEY"}
    assert "x" not in str(body["fields"].values())
    assert token_client("admin").put("/api/integrations/nope/credentials", {"A": "b"}, format="json").status_code == 404


def test_delete_removes_stored_values_and_is_audited(token_client: Any) -> None:
    admin = token_client("admin")
    admin.put("/api/integrations/polygon/credentials", {"POLYGON_API_KEY": "k-123"}, format="json")
    response = admin.delete("/api/integrations/polygon/credentials")
    assert response.json()["removed"] == ["POLYGON_API_KEY"]
    assert not StoredCredential.objects.exists()
    actions = list(AuditEvent.objects.filter(target_id="polygon").values_list("action", flat=True))
    assert sorted(actions) == ["integration.credentials_delete", "integration.credentials_replace"]


def test_values_are_encrypted_at_rest_and_rotate(token_client: Any, settings: Any) -> None:
    token_client("admin").put(
        "/api/integrations/polygon/credentials", {"POLYGON_API_KEY": "plain-value"}, format="json"
    )
    row = StoredCredential.objects.get(name="POLYGON_API_KEY")
    assert "plain-value" not in row.ciphertext
    with pytest.raises(InvalidToken):
        Fernet(Fernet.generate_key()).decrypt(row.ciphertext.encode())

    old_key = settings.CREDENTIALS_ENCRYPTION_KEY[0]
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEY = [new_key, old_key]
    call_command("rotate_credentials_key", stdout=StringIO())
    rotated = StoredCredential.objects.get(name="POLYGON_API_KEY").ciphertext
    assert Fernet(new_key.encode()).decrypt(rotated.encode()) == b"plain-value"
    settings.CREDENTIALS_ENCRYPTION_KEY = [new_key]  # the old key is retired
    from apps.integrations.credentials import for_provider

    assert for_provider("polygon").get("POLYGON_API_KEY") == "plain-value"
    with pytest.raises(InvalidToken):
        Fernet(old_key.encode()).decrypt(rotated.encode())


def test_a_store_without_a_key_fails_closed(token_client: Any, settings: Any) -> None:
    settings.CREDENTIALS_ENCRYPTION_KEY = []
    response = token_client("admin").put(
        "/api/integrations/polygon/credentials", {"POLYGON_API_KEY": "x"}, format="json"
    )
    assert response.status_code == 409 and response.json()["error_code"] == "CREDENTIAL_STORE_UNAVAILABLE"
    assert not StoredCredential.objects.exists()


def test_the_canary_secret_never_leaves(
    token_client: Any, provider_stub: Any, caplog: Any, capsys: Any, client: Any, django_user_model: Any
) -> None:
    """Stored through the API, used for a real call, then every response, page and log line is
    searched for it."""
    _scheduler_alive()
    stub = provider_stub("databento", configure=False)
    stub.good_env = {}
    import tests.stubs.databento as stub_module

    original = stub_module.GOOD_KEY
    stub_module.GOOD_KEY = CANARY
    try:
        with caplog.at_level(logging.DEBUG):
            admin = token_client("admin")
            bodies = [
                admin.put(
                    "/api/integrations/databento/credentials", {"DATABENTO_API_KEY": CANARY}, format="json"
                ).content
            ]
            bodies.append(token_client("operator").post("/api/integrations/verify", {}, format="json").content)
            for url in (
                "/api/integrations/status",
                "/api/integrations/keys-needed",
                "/api/system/status",
                "/api/integrations/registry",
                "/api/integrations/usage-events",
            ):
                bodies.append(admin.get(url).content)
            root = django_user_model.objects.create_superuser("root", password="x" * 16)
            client.force_login(root)
            for url in (
                "/admin/integrations/storedcredential/",
                "/admin/telemetry/auditevent/",
                "/admin/telemetry/integrationusageevent/",
                "/connections/",
                "/connections/keys-needed/",
                f"/admin/integrations/storedcredential/{StoredCredential.objects.get().pk}/change/",
            ):
                response = client.get(url)
                assert response.status_code == 200, url
                bodies.append(response.content)
            out = StringIO()
            call_command("keys_needed", stdout=out)
            call_command("keys_needed", "--env-template", stdout=out)
            bodies.append(out.getvalue().encode())
    finally:
        stub_module.GOOD_KEY = original
    assert IntegrationUsageEvent.objects.filter(provider="databento", status="ok").exists(), "the key was used"
    assert stub.requests, "the provider was really called with it"
    for body in bodies:
        assert CANARY.encode() not in body
    assert CANARY not in caplog.text
    captured = capsys.readouterr()
    assert CANARY not in captured.out and CANARY not in captured.err
    assert CANARY not in str(list(AuditEvent.objects.values()))
    assert CANARY not in str(list(IntegrationUsageEvent.objects.values()))


def test_system_status_command_exit_codes(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        call_command("system_status", stdout=StringIO())
    assert exc.value.code == 2


def test_verify_integrations_command_reports_failures(provider_stub: Any) -> None:
    stub = provider_stub("databento")
    out = StringIO()
    call_command("verify_integrations", "databento", stdout=out)
    assert "✔ databento" in out.getvalue()
    stub.mode = "bad_key"
    with pytest.raises(SystemExit) as exc:
        call_command("verify_integrations", "databento", stdout=out)
    assert exc.value.code == 1 and "INTEGRATION_AUTH_FAILED" in out.getvalue()


def test_env_template_has_every_variable_and_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-appear")
    out = StringIO()
    call_command("keys_needed", "--env-template", stdout=out)
    text = out.getvalue()
    for name in registry.all_env_vars():
        assert f"\n{name}=\n" in text
    assert "sk-should-not-appear" not in text
