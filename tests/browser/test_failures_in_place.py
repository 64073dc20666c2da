"""Every htmx request either does what it says or says why, in place (static/core/tradeops.js and
apps/core/pages.py), in a real browser with DEBUG off:

- signed out in the middle of an action or a refresh: the browser goes to the sign-in page, which
  says the action was not done, and signing in comes back to the page (never a login page inside a
  card, never GET on an action's URL);
- a 409 or a 500: its code, message, fix and trace id where the control is, the controls kept;
- no answer at all: said in the same place.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.sessions.models import Session

from apps.bots.models import Bot
from apps.runners.services import runners as runner_services
from tests.bots.factories import BotFactory
from tests.browser.conftest import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.core.urls")]


def _expire_every_session() -> None:
    Session.objects.all().delete()


def _no_nested_page(page: Any) -> None:
    assert page.locator("header.topbar").count() == 1
    assert page.locator("main form[action='/login/']").count() <= 1
    assert page.locator("main main, main header").count() == 0


def test_kill_with_an_expired_session_lands_on_sign_in_and_comes_back_not_killed(
    page: Any, sign_in: Any, operator: Any
) -> None:
    bot = BotFactory()
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    page.fill("#kill-reason", "market looks wrong")
    _expire_every_session()

    page.click("#bot-actions button.danger")
    page.wait_for_url(re.compile(r"/login/\?"))
    notice = page.locator(".signed-out").inner_text()
    assert "You were signed out, so your last action (Kill) was not done. Sign in and try again." in notice
    _no_nested_page(page)
    assert Bot.objects.get(pk=bot.pk).killed is False

    page.fill("input[name=username]", operator.get_username())
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/bots/{bot.pk}/$"))
    assert page.locator("h1").first.inner_text().strip() == bot.name
    assert page.locator("#kill-reason").count() == 1  # the Kill control again: the bot is not killed
    assert Bot.objects.get(pk=bot.pk).killed is False


def test_the_overview_refresh_with_an_expired_session_goes_to_sign_in(page: Any, sign_in: Any, viewer: Any) -> None:
    sign_in(page, viewer, next_path="/")
    page.wait_for_selector("#platform-status")
    _expire_every_session()
    page.wait_for_url(re.compile(r"/login/\?next=%2F&signed_out=1$"), timeout=20_000)  # the 10 s refresh
    assert "stopped updating" in page.locator(".signed-out").inner_text()
    _no_nested_page(page)


def test_a_refused_start_shows_its_envelope_where_start_was_pressed(page: Any, sign_in: Any, operator: Any) -> None:
    bot = BotFactory()  # its data provider has no key
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    page.click("#bot-actions button:has-text('Start')")
    refusal = page.locator("#bot-actions .refusal")
    refusal.wait_for()
    text = refusal.inner_text()
    assert "INTEGRATION_KEY_MISSING" in text and "Fix:" in text
    assert re.search(r"Trace [0-9a-f]{32}", text)
    _no_nested_page(page)


def test_an_htmx_409_shows_its_envelope_in_place_and_keeps_the_control(page: Any, page_errors: Any) -> None:
    page_errors.expect(r"status of 409")  # chromium reports every 4xx answer as a failed load
    page.goto("/test/controls")
    page.click("#conflict")
    error = page.locator("#conflict-target > .tradeops-error")
    error.wait_for()
    text = error.inner_text()
    assert "409 BOT_KILLED" in text and "The bot is killed." in text and "Fix: Unkill it on its page first." in text
    assert re.search(r"Trace [0-9a-f]{32}", text)
    assert page.locator("#conflict").is_visible()  # the target was not replaced by the error
    page.click("#conflict")  # again: one error shown, not two
    page.wait_for_timeout(300)
    assert page.locator("#conflict-target > .tradeops-error").count() == 1


def test_a_500_during_kill_shows_its_envelope_in_the_action_card(
    page: Any, page_errors: Any, sign_in: Any, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    page_errors.expect(r"status of 500")

    def crash(**kwargs: Any) -> Any:
        raise RuntimeError("kill crashed secret-internal-detail")

    monkeypatch.setattr(runner_services, "bot_kill", crash)
    bot = BotFactory()
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    page.fill("#kill-reason", "typed reason")
    page.click("#bot-actions button.danger")
    error = page.locator("#bot-actions > .tradeops-error")
    error.wait_for()
    text = error.inner_text()
    assert "500 INTERNAL_ERROR" in text and "nothing was reported as done" in text and "Fix:" in text
    assert re.search(r"Trace [0-9a-f]{32}", text) and "secret-internal-detail" not in page.content()
    assert page.input_value("#kill-reason") == "typed reason"  # the card and what was typed are kept
    _no_nested_page(page)
    assert Bot.objects.get(pk=bot.pk).killed is False


def test_network_down_during_kill_says_so_in_place(page: Any, page_errors: Any, sign_in: Any, operator: Any) -> None:
    page_errors.expect(r"htmx:(sendError|afterRequest)")
    page_errors.expect(r"net::ERR_")
    bot = BotFactory()
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    page.route(re.compile(r".*/kill$"), lambda route: route.abort("connectionrefused"))
    page.fill("#kill-reason", "r")
    page.click("#bot-actions button.danger")
    error = page.locator("#bot-actions > .tradeops-error")
    error.wait_for()
    text = error.inner_text()
    assert "SERVER_UNREACHABLE" in text and "not known whether the action was done" in text
    assert "No trace id" in text
    assert Bot.objects.get(pk=bot.pk).killed is False


def test_a_whole_page_is_never_nested_in_a_part(page: Any) -> None:
    page.goto("/test/controls")
    page.click("#whole-page")
    error = page.locator("#whole-page-target > .tradeops-error")
    error.wait_for()
    assert "UNEXPECTED_PAGE" in error.inner_text()
    _no_nested_page(page)


def test_error_pages_are_tradeops_pages(page: Any, page_errors: Any, sign_in: Any, viewer: Any) -> None:
    page_errors.expect(r"status of (404|405)")
    sign_in(page, viewer)
    response = page.goto("/no/such/page")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    assert "NOT_FOUND" in page.locator(".tradeops-error").inner_text()
    assert page.locator("a", has_text="Go to the Overview").count() == 1
    response = page.goto("/bots/1/kill")
    assert response is not None and response.status == 405
    assert "METHOD_NOT_ALLOWED" in page.locator(".tradeops-error").inner_text()
