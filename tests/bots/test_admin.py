"""The bots admin shows bots and their config history, and changes none of it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.bots import services
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_it_lists_bots_and_shows_the_config_history_read_only(operator: Any) -> None:
    bot = services.bot_create(actor=operator, name="MES trend", strategy_key="trend_following", instrument="MES")
    services.bot_update(bot=bot, actor=operator, parameters={"fast_period": 12}, reason="tune")
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    listing = client.get("/admin/bots/bot/?stage__exact=LAB&killed__exact=0")
    assert listing.status_code == 200 and b"MES trend" in listing.content
    page = client.get(f"/admin/bots/bot/{bot.pk}/change/")
    assert page.status_code == 200 and b"tune" in page.content
    assert b'name="_save"' not in page.content  # no save button: edits go through the API's services
    assert client.get("/admin/bots/bot/add/").status_code == 403
