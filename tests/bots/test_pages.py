"""The Bots page, as a viewer reads it and an operator uses it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.bots.models import Bot
from apps.runners.models import Runner
from apps.trading import catalogue as strategies
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db


def _client(user: Any, htmx: bool = False) -> Client:
    client = Client(headers={"HX-Request": "true"} if htmx else {})
    client.force_login(user)
    return client


def test_a_viewer_sees_every_bot_with_its_state_and_a_link_to_it(viewer: Any) -> None:
    calm = BotFactory(name="MES trend", stage=Bot.Stage.PAPER, autonomy_tier=Bot.Tier.SIM_ONLY, config_version=3)
    killed = BotFactory(
        name="MNQ breakout", killed=True, killed_at=timezone.now(), kill_reason="runaway losses", killed_by="ops"
    )
    Runner.objects.create(bot=calm, status=Runner.Status.RUNNING, generation=1)

    response = _client(viewer).get("/bots/")
    html = response.content.decode()
    assert response.status_code == 200
    for text in ("MES trend", "MNQ breakout", "trend_following", "MES", "PAPER", "SIM_ONLY", "LAB", "LOCKED", "v3"):
        assert text in html
    assert f'href="/bots/{calm.pk}/"' in html and f'href="/bots/{killed.pk}/"' in html
    assert "RUNNING" in html and "never started" in html  # the killed bot never had a runner
    assert "killed" in html and "runaway losses" in html and "by ops" in html


def test_the_navigation_links_bots_runners_and_jobs(viewer: Any) -> None:
    html = _client(viewer).get("/bots/").content.decode()
    assert '<a href="/bots/" aria-current="page">Bots</a>' in html
    assert 'href="/runners/"' in html and 'href="/jobs/"' in html
    assert 'nav-pending" title="Arrives with the bots' not in html


def test_a_viewer_sees_no_starter_pack_button_and_may_not_post_it(viewer: Any) -> None:
    client = _client(viewer, htmx=True)
    assert "starter-pack" not in _client(viewer).get("/bots/").content.decode().replace("starter-pack-outcome", "")
    assert client.post("/bots/starter-pack").status_code == 403
    assert not Bot.objects.exists()


def test_an_operator_creates_the_starter_pack_once(operator: Any) -> None:
    client = _client(operator, htmx=True)
    assert 'hx-post="/bots/starter-pack"' in _client(operator).get("/bots/").content.decode()

    first = client.post("/bots/starter-pack")
    html = first.content.decode()
    assert first.status_code == 200 and html.lstrip().startswith('<div id="starter-pack-outcome"')
    assert f"Created {len(strategies.STARTER_PACK)} starter bot(s)" in html and first["X-Trace-Id"] in html
    assert "bots-changed" in first["HX-Trigger"]  # the table refreshes
    assert Bot.objects.count() == len(strategies.STARTER_PACK)

    second = client.post("/bots/starter-pack").content.decode()
    assert "already exists; nothing was created" in second
    assert Bot.objects.count() == len(strategies.STARTER_PACK)

    table = client.get("/bots/").content.decode()
    for spec in strategies.STARTER_PACK:
        assert spec["name"] in table


def test_a_user_without_a_role_sees_nothing(stranger: Any) -> None:
    assert _client(stranger).get("/bots/").status_code == 404
    assert _client(stranger, htmx=True).post("/bots/starter-pack").status_code == 403


def test_the_list_stops_polling_when_no_runner_is_active(viewer: Any) -> None:
    bot = BotFactory()
    Runner.objects.create(bot=bot, status=Runner.Status.STOPPED)
    response = _client(viewer, htmx=True).get("/bots/")
    html = response.content.decode()
    assert response.status_code == 286
    assert html.lstrip().startswith('<section id="bot-table"') and bot.name in html
    assert "every 10s" not in html  # the swapped-in copy does not poll again
    assert "<html" not in html


def test_the_list_keeps_polling_while_a_runner_is_active(viewer: Any) -> None:
    Runner.objects.create(bot=BotFactory(), status=Runner.Status.RUNNING, generation=1)
    response = _client(viewer, htmx=True).get("/bots/")
    assert response.status_code == 200 and 'hx-trigger="every 10s' in response.content.decode()
    assert "HX-Request" in response["Vary"]
