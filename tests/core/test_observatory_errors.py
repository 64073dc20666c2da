"""Failures outside /api/, as the server answers them (the browser's side is in
tests/browser/test_failures_in_place.py): a signed-out htmx request is sent to sign-in and back to
its page, saying the action was not done; a failed htmx request gets an error fragment (never a page);
a failed page request gets a TradeOps page (never Django's debug page), with DEBUG off and on."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from apps.bots.models import Bot
from tests.bots.factories import BotFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.urls")]

HTMX = {"HX-Request": "true"}


def _htmx(user: Any | None = None, *, current: str = "http://testserver/") -> Client:
    client = Client(headers={**HTMX, "HX-Current-URL": current}, raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_fragment(response: Any, status: int, error_code: str) -> str:
    html = response.content.decode()
    assert response.status_code == status, html
    assert response["X-TradeOps-Error"] == error_code
    assert "<html" not in html.lower() and "topbar" not in html, "a whole page in a fragment"
    assert 'class="banner banner-blocked tradeops-error"' in html
    assert f"<code>{error_code}</code>" in html and "Fix: " in html
    assert f"Trace <code>{response['X-Trace-Id']}</code>" in html
    return html


def assert_tradeops_page(response: Any, status: int, error_code: str) -> str:
    html = response.content.decode()
    assert response.status_code == status, html
    assert "<html" in html and 'class="topbar"' in html  # extends _base.html
    assert f"<code>{error_code}</code>" in html and "Fix: " in html
    assert response["X-Trace-Id"] in html
    assert 'href="/"' in html  # a way back
    for debug in ("Using the URLconf", "Traceback", "DEBUG = True", "technical"):
        assert debug not in html
    return html


# --- signed out ------------------------------------------------------------------------------------


def test_a_signed_out_kill_goes_to_sign_in_back_to_the_bot_page_and_is_not_done() -> None:
    bot = BotFactory()
    response = _htmx(current=f"http://testserver/bots/{bot.pk}/").post(f"/bots/{bot.pk}/kill", {"reason": "r"})
    assert response.status_code == 200 and response.content.decode().strip() == "Signed out: sign in again."
    target = response["HX-Redirect"]
    assert urlsplit(target).path == "/login/"
    assert _query(target) == {"next": f"/bots/{bot.pk}/", "not_done": "Kill"}
    assert Bot.objects.get(pk=bot.pk).killed is False


def test_a_signed_out_poll_goes_to_sign_in_and_back_to_its_page() -> None:
    response = _htmx(current="http://testserver/").get("/")
    assert _query(response["HX-Redirect"]) == {"next": "/", "signed_out": "1"}


def test_next_is_never_another_site() -> None:
    response = _htmx(current="https://evil.example/phish").post("/bots/1/kill")
    assert _query(response["HX-Redirect"])["next"] == "/"


def test_a_signed_out_plain_post_returns_to_the_page_that_posted_not_the_action() -> None:
    client = Client(headers={"Referer": "http://testserver/bots/7/"})
    response = client.post("/bots/7/trading-state", {"state": "HALTED"})
    assert response.status_code == 302
    assert _query(response["Location"]) == {"next": "/bots/7/", "not_done": "Trading state"}


def test_a_signed_out_page_load_keeps_django_s_redirect() -> None:
    response = Client().get("/bots/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/bots/"


def test_signing_out_is_not_mistaken_for_a_signed_out_request(viewer: Any) -> None:
    client = Client(headers=HTMX)
    client.force_login(viewer)
    response = client.post("/logout/")
    assert response.status_code == 302 and "HX-Redirect" not in response


def test_the_sign_in_page_says_the_action_was_not_done_and_returns_to_the_page(viewer: Any) -> None:
    html = Client().get("/login/?next=/bots/5/&not_done=Kill").content.decode()
    assert "You were signed out, so your last action (Kill) was not done. Sign in and try again." in html
    assert 'name="not_done" value="Kill"' in html  # kept through a mistyped password
    viewer.set_password("a long enough password 1")
    viewer.save()
    response = Client().post(
        "/login/", {"username": viewer.username, "password": "a long enough password 1", "next": "/bots/5/"}
    )
    assert response.status_code == 302 and response["Location"] == "/bots/5/"


def test_the_sign_in_notice_never_repeats_arbitrary_text() -> None:
    html = Client().get("/login/?not_done=Call+555-0100+now!").content.decode()
    assert "555" not in html and "You were signed out, so your last action was not done." in html
    assert "stopped updating" in Client().get("/login/?signed_out=1").content.decode()
    assert "signed-out" not in Client().get("/login/").content.decode()


# --- failed htmx requests: a fragment ----------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_an_htmx_404_is_a_fragment(viewer: Any, settings: Any, debug: bool) -> None:
    settings.DEBUG = debug
    assert_fragment(_htmx(viewer).get("/bots/987654/"), 404, "NOT_FOUND")
    assert_fragment(_htmx(viewer).get("/no/such/page"), 404, "NOT_FOUND")


@pytest.mark.parametrize("debug", [False, True])
def test_an_htmx_500_is_a_fragment_without_internals(viewer: Any, settings: Any, debug: bool) -> None:
    settings.DEBUG = debug
    html = assert_fragment(_htmx(viewer).post("/test/page-crash"), 500, "INTERNAL_ERROR")
    assert "secret-internal-detail" not in html and "RuntimeError" not in html


def test_an_application_error_escaping_a_page_view_keeps_its_status_code_and_fix(viewer: Any) -> None:
    html = assert_fragment(_htmx(viewer).post("/test/page-conflict"), 409, "BOT_KILLED")
    assert "The bot is killed." in html and "Unkill it on its page first." in html and "<code>X_KEY</code>" in html
    page = assert_tradeops_page(Client().post("/test/page-conflict"), 409, "BOT_KILLED")
    assert "<h1>Refused</h1>" in page


def test_a_role_refusal_is_a_fragment_naming_the_role(viewer: Any) -> None:
    bot = BotFactory()
    html = assert_fragment(_htmx(viewer).post(f"/bots/{bot.pk}/kill", {"reason": "x"}), 403, "PERMISSION_DENIED")
    assert "it needs operator" in html
    assert Bot.objects.get(pk=bot.pk).killed is False


def test_a_plain_text_refusal_of_another_view_keeps_its_words(viewer: Any) -> None:
    html = assert_fragment(_htmx(viewer).post("/connections/databento/verify"), 403, "PERMISSION_DENIED")
    assert "it needs operator" in html


def test_an_htmx_csrf_failure_is_a_fragment_saying_nothing_was_done(viewer: Any) -> None:
    client = Client(enforce_csrf_checks=True, headers=HTMX)
    client.force_login(viewer)
    html = assert_fragment(client.post("/bots/1/kill"), 403, "CSRF_FAILED")
    assert "nothing was done" in html and "Reload the page" in html


def test_an_htmx_405_is_a_fragment(viewer: Any) -> None:
    response = _htmx(viewer).get("/bots/1/kill")
    assert_fragment(response, 405, "METHOD_NOT_ALLOWED")
    assert response["Allow"] == "POST"


def test_a_refused_action_still_answers_200_with_its_refusal(operator: Any) -> None:
    bot = BotFactory()
    response = _htmx(operator).post(f"/bots/{bot.pk}/start")
    html = response.content.decode()
    assert response.status_code == 200 and "X-TradeOps-Error" not in response
    assert "Refused: <code>INTEGRATION_KEY_MISSING</code>" in html


# --- failed page requests: a TradeOps page -----------------------------------------------------------


def test_an_unknown_page_is_a_tradeops_404_page(viewer: Any) -> None:
    client = Client(headers={"Referer": "http://testserver/bots/"})
    client.force_login(viewer)
    html = assert_tradeops_page(client.get("/no/such/page"), 404, "NOT_FOUND")
    assert '<a href="/bots/">Back to the page you came from</a>' in html
    assert "aria-current" not in html or "Overview" in html  # the navigation is there, signed in
    assert assert_tradeops_page(Client().get("/no/such/page"), 404, "NOT_FOUND")


def test_a_forbidden_page_is_a_tradeops_403_page(viewer: Any) -> None:
    client = Client()
    client.force_login(viewer)
    assert "it needs operator" in assert_tradeops_page(client.post("/bots/1/kill"), 403, "PERMISSION_DENIED")


def test_a_crash_is_a_tradeops_500_page_without_internals(viewer: Any, caplog: Any) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(viewer)
    response = client.get("/test/page-crash")
    html = assert_tradeops_page(response, 500, "INTERNAL_ERROR")
    assert "secret-internal-detail" not in html
    logged = [r for r in caplog.records if r.exc_info and "secret-internal-detail" in str(r.exc_info[1])]
    assert logged and logged[0].trace_id == response["X-Trace-Id"]  # the log keeps what the page does not


def test_a_csrf_failure_is_a_tradeops_page() -> None:
    client = Client(enforce_csrf_checks=True)
    assert_tradeops_page(client.post("/login/", {"username": "x", "password": "y"}), 403, "CSRF_FAILED")


def test_a_csrf_failure_under_api_is_the_envelope() -> None:
    from django.test import RequestFactory

    from apps.core.views import csrf_failure

    response = csrf_failure(RequestFactory().post("/api/bots"), reason="CSRF cookie not set.")
    assert response.status_code == 403 and response["Content-Type"] == "application/json"
    assert b'"error_code": "CSRF_FAILED"' in response.content


def test_an_action_url_opened_as_a_page_is_a_tradeops_405_page(viewer: Any) -> None:
    client = Client()
    client.force_login(viewer)
    html = assert_tradeops_page(client.get("/bots/1/kill"), 405, "METHOD_NOT_ALLOWED")
    assert "use its button" in html


def test_with_debug_on_pages_show_django_s_debug_404_only_when_asked(settings: Any, viewer: Any) -> None:
    settings.DEBUG = True  # DJANGO_DEBUG=true: the operator asked for Django's pages
    client = Client()
    client.force_login(viewer)
    assert "Using the URLconf" in client.get("/no/such/page").content.decode()


def test_the_api_keeps_its_json_envelope(viewer: Any) -> None:
    response = _htmx(viewer).get("/api/no/such/thing")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "X-TradeOps-Error" not in response


# --- favicon -----------------------------------------------------------------------------------------


def test_favicon_ico_answers_with_the_svg_icon() -> None:
    response = Client().get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[0][0] == "/static/core/favicon.svg"
    assert response["Content-Type"].startswith("image/svg+xml")


def test_the_api_docs_page_loads_nothing_from_another_host(viewer: Any) -> None:
    import re

    client = Client()
    client.force_login(viewer)
    html = client.get("/api/docs/").content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(u.startswith("/static/") for u in urls), urls
    assert "cdn." not in html and "https://" not in html
    for url in urls:
        assert Client().get(url).status_code == 200, url
