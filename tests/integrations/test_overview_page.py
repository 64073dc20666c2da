from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.telemetry.services import heartbeat_record, heartbeat_stop

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_visitors_to_sign_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_sign_in_page_renders_with_csrf(client: Client) -> None:
    response = client.get("/login/")
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content


def test_sign_in_lands_on_the_overview(viewer: Any) -> None:
    client = Client()
    response = client.post(
        "/login/", {"username": viewer.username, "password": "correct horse battery staple"}, follow=True
    )
    assert response.status_code == 200
    assert b"<h1>Overview</h1>" in response.content


def test_the_layout_has_the_navigation_and_vendored_htmx(viewer: Any) -> None:
    client = Client()
    client.force_login(viewer)
    html = client.get("/").content.decode()
    for item in ("Overview", "Connections", "Bots", "Runners", "Jobs"):
        assert item in html
    assert "Arrives with" not in html  # no nav item for a page that does not exist
    assert "/static/django_htmx/htmx" in html
    assert "unpkg.com" not in html and "cdn" not in html.lower()
    assert '"X-CSRFToken"' in html  # hx-headers on <body>


def test_without_heartbeats_it_says_blocked_by_the_scheduler(viewer: Any) -> None:
    client = Client()
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert "<strong>BLOCKED</strong>" in html and "SCHEDULER_UNAVAILABLE" in html
    assert "never seen" in html and "none ever seen" in html


def test_a_fresh_boot_names_the_missing_keys_and_the_fix(viewer: Any) -> None:
    heartbeat_record(component="beat", instance="beat@h")
    heartbeat_record(component="worker", instance="worker@h")
    client = Client()
    client.force_login(viewer)
    response = client.get("/")
    html = response.content.decode()
    assert "<strong>BLOCKED</strong>" in html and "worker@h" in html
    assert "DATABENTO_API_KEY" in html and "POLYGON_API_KEY" in html and "Fix:" in html
    assert response["X-Trace-Id"] in html


def test_a_stopped_worker_is_shown_stopped(viewer: Any) -> None:
    heartbeat_record(component="beat", instance="beat@h")
    heartbeat_record(component="worker", instance="worker@h")
    heartbeat_stop(component="worker", instance="worker@h")
    client = Client()
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert "stopped" in html and "SCHEDULER_UNAVAILABLE" in html


def test_htmx_polling_gets_only_the_partial(htmx_client: Client) -> None:
    response = htmx_client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="platform-status"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_when_redis_is_down_it_says_blocked(viewer: Any, settings: Any, tmp_path: Any) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/none.sock"
    client = Client()
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert "<strong>BLOCKED</strong>" in html and "BROKER_UNAVAILABLE" in html


def test_an_htmx_post_without_the_csrf_token_is_refused(viewer: Any) -> None:
    client = Client(enforce_csrf_checks=True, headers={"HX-Request": "true"})
    client.force_login(viewer)
    assert client.post("/logout/").status_code == 403
    token = "a" * 32
    client.cookies["csrftoken"] = token
    assert client.post("/logout/", headers={"X-CSRFToken": token}).status_code == 302


def test_admin_is_usable_for_users_and_audit(django_user_model: Any) -> None:
    from apps.core.audit import audit_record

    root = django_user_model.objects.create_superuser("root", password="x" * 16)
    audit_record(action="bot.kill", actor=root, reason="test")
    client = Client()
    client.force_login(root)
    for url in (
        "/admin/",
        "/admin/auth/user/",
        "/admin/telemetry/auditevent/",
        "/admin/accounts/apitoken/",
        "/admin/django_celery_beat/periodictask/",
        "/admin/telemetry/componentheartbeat/",
    ):
        assert client.get(url).status_code == 200, url
    event_url = "/admin/telemetry/auditevent/"
    assert b"bot.kill" in client.get(event_url).content
    assert client.get(event_url + "add/").status_code == 403
