from __future__ import annotations

from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from apps.core.audit import REDACTED, audit_record, redact
from apps.core.context import bind
from apps.telemetry.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_it_records_actor_target_trace_and_ip(operator: Any) -> None:
    with bind(trace_id="audit-trace-1", client_ip="10.1.2.3"):
        event = audit_record(
            action="bot.kill",
            actor=operator,
            target=operator,
            before={"killed": False},
            after={"killed": True},
            reason="runaway losses",
        )
    event.refresh_from_db()
    assert (event.actor_id, event.actor_label) == (operator.pk, operator.username)
    assert (event.target_type, event.target_id) == ("auth.user", str(operator.pk))
    assert (event.trace_id, event.ip, event.reason) == ("audit-trace-1", "10.1.2.3", "runaway losses")
    assert event.before == {"killed": False} and event.after == {"killed": True}
    assert event.created_at is not None


def test_it_redacts_secrets_at_any_depth() -> None:
    event = audit_record(
        action="credentials.replace",
        actor_label="system:test",
        target_type="integration",
        target_id="tradovate",
        after={
            "TRADOVATE_PASSWORD": "hunter2-canary",
            "nested": {"api_key": "sk-canary", "note": "kept"},
            "list": [{"auth_token": "tok-canary"}],
            "username": "desk",
        },
    )
    event.refresh_from_db()
    text = str(event.after)
    assert "canary" not in text
    assert event.after["TRADOVATE_PASSWORD"] == REDACTED
    assert event.after["nested"] == {"api_key": REDACTED, "note": "kept"}
    assert event.after["username"] == "desk"


def test_redact_keeps_empty_values_visible() -> None:
    # "was it set?" matters to an operator: an empty secret is shown as empty, not as redacted.
    assert redact({"password": ""}) == {"password": ""}


def test_a_system_actor_is_named(db: Any) -> None:
    event = audit_record(action="bot.kill", actor_label="system:supervisor")
    assert event.actor is None and event.actor_label == "system:supervisor"
    assert event.trace_id  # a trace id is made when none is bound


def test_it_is_append_only_through_the_orm(db: Any) -> None:
    event = audit_record(action="x", actor_label="system:test")
    event.reason = "rewritten"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()


@pytest.mark.parametrize("sql", ["UPDATE telemetry_auditevent SET reason = 'x'", "DELETE FROM telemetry_auditevent"])
def test_it_is_append_only_in_the_database(db: Any, sql: str) -> None:
    audit_record(action="x", actor_label="system:test")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditEvent.objects.count() == 1


def test_a_queryset_update_is_refused_too(db: Any) -> None:
    audit_record(action="x", actor_label="system:test")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.update(reason="x")


def test_deleting_a_user_keeps_their_audit_trail(operator: Any) -> None:
    audit_record(action="bot.start", actor=operator)
    operator.delete()
    event = AuditEvent.objects.get(action="bot.start")
    assert event.actor_label.startswith("user")


def test_sign_in_success_and_failure_are_audited(client: Any, viewer: Any) -> None:
    client.post("/login/", {"username": viewer.username, "password": "wrong"})
    client.post("/login/", {"username": viewer.username, "password": "correct horse battery staple"})
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-2:] == ["auth.login_failed", "auth.login"]
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert "wrong" not in str(failed.after) and failed.ip == "127.0.0.1"
