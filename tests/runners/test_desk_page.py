"""The Overview's desk and the header's Kill-all, as the Django test client sees them: a card per
running or recently active bot with facts or the reason a figure is unknown (never a fake 0), the
newest fills, a fixed number of queries whatever the number of bots, and counts that agree with
the cards."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.bots.models import Bot
from apps.runners.models import Runner
from apps.runners.selectors.desk import desk_overview
from apps.telemetry.models import DecisionTrace
from apps.trading.models import Fill, Order, Position
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db


def _client(user: Any, htmx: bool = False) -> Client:
    client = Client(headers={"HX-Request": "true"} if htmx else {})
    client.force_login(user)
    return client


def _running(name: str, **fields: Any) -> Bot:
    bot = BotFactory(name=name, **fields)
    Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, generation=1, last_tick_at=timezone.now())
    return bot


def _fill(bot: Bot, n: int, *, realized: str = "0", fee: str = "1.25", price: str = "5000.25", ago: int = 5) -> Fill:
    at = timezone.now() - timedelta(minutes=ago)
    order = Order.objects.create(
        client_order_id=f"TRO-{bot.pk}-{n}", bot_id=bot.pk, generation=1, mode="SIM", venue="sim",
        instrument=bot.instrument, side="BUY", quantity=1, bar_ts=at, trace_id="t", placed_at=at,
        status=Order.Status.FILLED,
    )  # fmt: skip
    return Fill.objects.create(
        order=order, bot_id=bot.pk, instrument=bot.instrument, venue_fill_id=f"f{n}", side="BUY", quantity=1,
        price=Decimal(price), fee=Decimal(fee), slippage=Decimal(0), realized_pnl=Decimal(realized), filled_at=at,
    )  # fmt: skip


def _trace(bot: Bot, **fields: Any) -> DecisionTrace:
    now = timezone.now()
    values = {
        "bot_id": bot.pk, "runner_id": bot.runner.pk, "generation": 1, "mode": "SIM", "bar_ts": now,
        "outcome": DecisionTrace.Outcome.NO_TRADE, "config_version": 1, "latency_ms": 3.0, "trace_id": "tr",
        "created_at": now, **fields,
    }  # fmt: skip
    return DecisionTrace.objects.create(**values)


def test_a_bot_that_never_traded_says_so_instead_of_zero_pnl(viewer: Any) -> None:
    bot = _running("MES quiet")
    html = _client(viewer).get("/").content.decode()
    card = html[html.index(f'id="desk-bot-{bot.pk}"') :]
    card = card[: card.index("</article>")]
    assert "MES quiet" in card and "RUNNING" in card and "LAB · LOCKED" in card
    assert "no trades yet" in card and "0.00 USD" not in card
    assert "flat: no open position" in card and "no tick has decided yet" in card


def test_a_trading_bot_shows_position_pnl_and_its_last_decision(viewer: Any) -> None:
    bot = _running("MNQ busy", instrument="MNQ")
    _fill(bot, 1, realized="0", fee="1.00")
    _fill(bot, 2, realized="50.00", fee="1.00")
    Position.objects.create(bot_id=bot.pk, venue="sim", instrument="MNQ", quantity=2, avg_price=Decimal("20000"))
    _trace(
        bot,
        outcome=DecisionTrace.Outcome.NO_TRADE,
        reason_code="DATA_STALE",
        message="the newest bar is 40 minutes old",
    )
    html = _client(viewer).get("/").content.decode()
    card = html[html.index(f'id="desk-bot-{bot.pk}"') :]
    card = card[: card.index("</article>")]
    assert "48.00 USD" in card  # 50 realized − 2 fees, today and in total
    assert "MNQ +2 @ 20000.00" in card
    # No stored bar for MNQ: the open position cannot be marked, and the card says why.
    assert "unknown: an open position and no stored price to mark it at" in card
    assert "DATA_STALE" in card and "40 minutes old" in card
    assert 'id="desk-fills"' in html and html.count(f'href="/bots/{bot.pk}/">MNQ busy</a>') >= 2


def test_an_idle_bot_is_not_on_the_desk_and_the_desk_says_what_to_do(viewer: Any) -> None:
    BotFactory(name="never started")
    html = _client(viewer).get("/").content.decode()
    desk = html[html.index("<h2>Desk</h2>") :]
    assert "never started" not in desk
    assert "No bot is running or was active in the last 24 h" in html and "No bot has filled an order yet" in html


def test_a_bot_stopped_an_hour_ago_is_still_on_the_desk_and_one_stopped_yesterday_is_not(viewer: Any) -> None:
    recent, old = BotFactory(name="stopped recently"), BotFactory(name="stopped long ago")
    now = timezone.now()
    Runner.objects.create(bot=recent, status=Runner.Status.STOPPED, stopped_at=now - timedelta(hours=1))
    Runner.objects.create(
        bot=old, status=Runner.Status.STOPPED, stopped_at=now - timedelta(days=2), last_tick_at=now - timedelta(days=2)
    )
    names = [c.bot.name for c in desk_overview()["cards"]]
    assert names == ["stopped recently"]


def test_the_desk_reads_in_a_fixed_number_of_queries(viewer: Any) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            desk = desk_overview()
        assert desk["cards"]
        return len(ctx.captured_queries)

    first = _running("bot 0", instrument="MES")
    _fill(first, 0)
    Position.objects.create(bot_id=first.pk, venue="sim", instrument="MES", quantity=1, avg_price=Decimal("5000"))
    _trace(first)
    one = count()
    for i in range(1, 6):
        bot = _running(f"bot {i}", instrument="MNQ" if i % 2 else "MES")
        _fill(bot, i, realized="10")
        Position.objects.create(bot_id=bot.pk, venue="sim", instrument=bot.instrument, quantity=-1, avg_price=1)
        _trace(bot)
    assert count() == one  # no query per bot


def test_the_integration_counts_and_the_infrastructure_cards_come_from_the_same_rows(viewer: Any) -> None:
    from apps.integrations.selectors import system_status

    html = _client(viewer).get("/").content.decode()
    status = system_status()
    providers = status["integrations"]["providers"]
    connected = sum(p["connected"] for p in providers.values())
    assert f"{connected} of {status['integrations']['total']} connected" in html
    for name, card in (("postgres", "card-postgres-summary"), ("redis", "card-redis-summary")):
        section = html[html.index(f'id="{card}"') :]
        section = section[: section.index("</article>")]
        said = "connected" if providers[name]["connected"] else "not connected"
        assert f">{said}" in section
    infra = sum(providers[n]["connected"] for n in ("postgres", "redis"))
    assert f"Infrastructure: {infra} of 2 connected" in html
    assert "AI: 0 of 5 connected <small" in html and "(optional)" in html


def test_an_operator_kills_every_bot_from_the_header_with_a_reason_and_a_confirmation(operator: Any) -> None:
    bots = [_running("a"), _running("b"), BotFactory(name="c")]
    client = _client(operator, htmx=True)
    page = _client(operator).get("/").content.decode()
    assert 'hx-post="/runners/kill-all"' in page and 'name="confirm"' in page

    unconfirmed = client.post("/runners/kill-all", {"reason": "exchange outage"})
    html = unconfirmed.content.decode()
    assert "not confirmed; nothing was killed" in html and 'value="exchange outage"' in html
    assert not Bot.objects.filter(killed=True).exists()

    no_reason = client.post("/runners/kill-all", {"reason": " ", "confirm": "on"}).content.decode()
    assert "Kill-all needs a reason" in no_reason and not Bot.objects.filter(killed=True).exists()

    done = client.post("/runners/kill-all", {"reason": "exchange outage", "confirm": "on"})
    html = done.content.decode()
    assert "Killed 3 bots (0 already killed); 2 runners stopped" in html and done["X-Trace-Id"] in html
    assert 'value="exchange outage"' not in html  # done: the form is clear again
    for event in ("bots-changed", "bot-changed", "runners-changed"):
        assert event in done["HX-Trigger"]
    assert all(b.killed for b in Bot.objects.filter(pk__in=[b.pk for b in bots]))
    assert set(Runner.objects.values_list("status", flat=True)) == {Runner.Status.STOPPED}


def test_a_viewer_has_no_kill_all_and_may_not_post_it(viewer: Any) -> None:
    bot = _running("a")
    assert "/runners/kill-all" not in _client(viewer).get("/").content.decode()
    response = _client(viewer, htmx=True).post("/runners/kill-all", {"reason": "x", "confirm": "on"})
    assert response.status_code == 403
    bot.refresh_from_db()
    assert not bot.killed


def test_kill_all_without_htmx_answers_a_page(operator: Any) -> None:
    _running("a")
    response = _client(operator).post("/runners/kill-all", {"reason": "drill", "confirm": "on"})
    assert response.status_code == 200 and "<h1>Kill all bots</h1>" in response.content.decode()
    assert Bot.objects.get(name="a").killed
