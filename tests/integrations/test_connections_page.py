"""The Connections tab, the Keys Needed page and the proof-of-use popout, as an operator uses them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from apps.integrations import registry
from apps.integrations.models import StoredCredential
from apps.telemetry.services import heartbeat_record

pytestmark = pytest.mark.django_db


def _client(user: Any, htmx: bool = False) -> Client:
    client = Client(headers={"HX-Request": "true"} if htmx else {})
    client.force_login(user)
    return client


def test_connections_lists_every_provider_and_variable_with_no_keys(viewer: Any) -> None:
    html = _client(viewer).get("/connections/").content.decode()
    for spec in registry.PROVIDERS.values():
        assert f'id="card-{spec.provider}"' in html
        for name in spec.all_env_vars:
            assert name in html
    assert "not configured" in html
    # Unknown is said, not shown as a number that looks real: no call ever → "never".
    assert "Last verified</dt><dd>never" in html


def test_keys_needed_page_lists_every_variable(viewer: Any) -> None:
    html = _client(viewer).get("/connections/keys-needed/").content.decode()
    for name in registry.all_env_vars():
        assert f"<code>{name}</code>" in html
    for label in ("Market data", "Brokers", "AI", "Notifications", "Infrastructure"):
        assert label in html


def test_a_viewer_sees_no_verify_button_nor_key_form(viewer: Any) -> None:
    html = _client(viewer).get("/connections/").content.decode()
    assert "hx-post" not in html and 'type="password"' not in html


def test_an_admin_enters_a_key_verifies_and_sees_the_proof(admin_user: Any, provider_stub: Any) -> None:
    heartbeat_record(component="beat", instance="b")
    heartbeat_record(component="worker", instance="w")
    stub = provider_stub("databento", configure=False)
    client = _client(admin_user, htmx=True)

    card = client.post("/connections/databento/credentials", {"DATABENTO_API_KEY": stub.good_env["DATABENTO_API_KEY"]})
    html = card.content.decode()
    assert card.status_code == 200 and "Stored DATABENTO_API_KEY (encrypted)" in html
    assert "set (store)" in html and "configured · not connected" in html
    assert stub.good_env["DATABENTO_API_KEY"] not in html
    assert StoredCredential.objects.filter(name="DATABENTO_API_KEY").exists()

    card = client.post("/connections/databento/verify")
    html = card.content.decode()
    assert "Verify: ok" in html and "pill-ok" in html and "1 call" in html

    popout = client.get("/connections/databento/usage").content.decode()
    assert "verify" in popout and card["X-Trace-Id"] in popout

    overview = client.get("/").content.decode()
    assert "<strong>DEGRADED</strong>" in overview


def test_a_failed_verify_shows_the_code_and_fix_in_place(operator: Any, provider_stub: Any) -> None:
    stub = provider_stub("databento")
    stub.mode = "bad_key"
    html = _client(operator, htmx=True).post("/connections/databento/verify").content.decode()
    assert "INTEGRATION_AUTH_FAILED" in html and "DATABENTO_API_KEY" in html
    assert re.search(r'id="card-databento"', html)


def test_a_viewer_cannot_verify_and_an_operator_cannot_enter_keys(viewer: Any, operator: Any) -> None:
    assert _client(viewer, htmx=True).post("/connections/databento/verify").status_code == 403
    response = _client(operator, htmx=True).post("/connections/polygon/credentials", {"POLYGON_API_KEY": "x"})
    assert response.status_code == 403
    assert not StoredCredential.objects.exists()


def test_a_user_without_a_role_sees_nothing(stranger: Any) -> None:
    assert _client(stranger).get("/connections/").status_code == 404


def test_an_empty_key_form_says_so(admin_user: Any) -> None:
    html = _client(admin_user, htmx=True).post("/connections/polygon/credentials", {}).content.decode()
    assert "Enter at least one value." in html
