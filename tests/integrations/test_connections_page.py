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


@pytest.mark.django_db(transaction=True)
def test_after_verify_the_whole_card_and_the_summary_are_current(
    operator: Any, provider_stub: Any, settings: Any
) -> None:
    """The card re-rendered by Verify reads the durable state, with the usage writer in its
    production (background) mode: no "ok" beside "not connected · never · 0 calls"."""
    settings.INTEGRATIONS_USAGE_WRITES = "background"
    provider_stub("databento")
    client = _client(operator, htmx=True)
    page = client.get("/connections/").content.decode()
    total = len(registry.PROVIDERS)
    assert f"<strong>2 of {total}</strong> connected" in page  # PostgreSQL and Redis answer their probes
    before = page[page.index('id="card-databento"') :]
    assert "configured · not connected" in before[: before.index("</article>")]

    card = client.post("/connections/databento/verify").content.decode()
    own = card[: card.index("</article>")]
    assert "Verify: ok in" in own and "pill-ok" in own and ">connected<" in own
    assert "not connected" not in own and "INTEGRATION_NOT_CONNECTED" not in own
    assert "Last verified</dt><dd>0" in own and "never" not in own.split("Last used")[0]
    assert ">1 call<" in own  # the verify it reports is counted
    # The page's summary comes along, out of band, from the same rows.
    oob = card[card.index('id="connections-summary"') :]
    assert 'hx-swap-oob="true"' in oob[:80] and f"<strong>3 of {total}</strong> connected" in oob


def test_infrastructure_cards_have_no_key_form_and_show_their_probes(admin_user: Any) -> None:
    html = _client(admin_user).get("/connections/").content.decode()
    for provider in ("redis", "postgres"):
        card = html[html.index(f'id="card-{provider}"') :]
        card = card[: card.index("</article>")]
        assert "Enter keys" not in card and 'type="password"' not in card
        assert ">connected<" in card and "Last checked</dt><dd>0" in card and ">0 calls<" not in card
    # Other providers still offer the form to an admin.
    polygon = html[html.index('id="card-polygon"') :]
    assert "Enter keys" in polygon[: polygon.index("</article>")]
