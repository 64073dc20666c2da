"""Every page of the Observatory opens in a real browser, signed in, without a console error."""

from __future__ import annotations

from typing import Any

import pytest

from apps.bots import services as bot_services
from apps.bots.models import Bot

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_page_opens_without_a_console_error(page: Any, sign_in: Any, admin_user: Any) -> None:
    bot_services.bot_starter_pack(actor=admin_user)
    bot = Bot.objects.order_by("pk").first()
    sign_in(page, admin_user)
    pages = (
        "/",
        "/connections/",
        "/connections/keys-needed/",
        "/bots/",
        f"/bots/{bot.pk}/",
        "/runners/",
        "/jobs/",
        "/backtests/",
    )
    for path in pages:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
        assert page.locator("header.topbar").count() == 1, path
        assert "Traceback" not in page.content(), path


def test_signing_in_lands_on_the_page_asked_for(page: Any, sign_in: Any, viewer: Any) -> None:
    sign_in(page, viewer, next_path="/bots/")
    assert page.url.endswith("/bots/")
    assert page.locator("h1").first.inner_text().strip() != "Sign in"
