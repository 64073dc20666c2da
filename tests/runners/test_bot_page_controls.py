"""The bot pages' controls and words (issue 9, items 3, 4, 7, 8): what a refused action keeps,
what a killed bot's Start says, RETIRED only on purpose, the trading state as it is, create and
edit with field errors in place, PnL that says "no trades yet", and fixes with real links."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.bots.models import Bot, BotConfigVersion
from apps.trading.models import TradingState
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

API_WORDS = ("later issue", "not built", "{id}", "passed=false", "Arrives with", "/api/bots/")


def _client(user: Any, htmx: bool = True) -> Client:
    client = Client(headers={"HX-Request": "true"} if htmx else {})
    client.force_login(user)
    return client


def _no_api_words(html: str) -> None:
    for words in API_WORDS:
        assert words not in html, words


def test_a_refused_promotion_keeps_the_typed_reason_and_links_its_fix(operator: Any) -> None:
    bot = BotFactory()  # LAB: the backtest gate fails closed
    html = _client(operator).post(f"/bots/{bot.pk}/promote", {"to_stage": "PAPER", "reason": "looks good"}).content
    html = html.decode()
    assert "PROMOTION_GATE_FAILED" in html
    assert re.search(r'id="promote-reason"[^>]*value="looks good"', html)
    assert 'id="demote-reason" name="reason" maxlength="1000" required value=""' in html  # only the sent form
    assert "Fix: Resolve every failed gate in the table above" in html
    # The gate's way to get evidence links the New backtest form, with this bot chosen.
    assert (
        f'current config (v1) has succeeded. Run one from the <a href="/backtests/?run_bot={bot.pk}#new-backtest">'
        "Backtests page</a> over at least"
    ) in html
    assert "/api/backtests" not in html
    _no_api_words(html)


def test_a_killed_bots_start_is_off_with_the_reason_and_a_link_to_unkill(operator: Any) -> None:
    bot = BotFactory(killed=True, killed_at=timezone.now(), kill_reason="runaway", killed_by="ops")
    html = _client(operator, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    assert '<button type="button" disabled aria-describedby="start-disabled-why">Start</button>' in html
    assert f'hx-post="/bots/{bot.pk}/start"' not in html
    assert "Start is off: this bot is killed." in html and 'href="#kill-switch"' in html and 'id="kill-switch"' in html

    # A start that reaches the server anyway (the API text names the unkill endpoint) links the page's Unkill.
    refused = _client(operator).post(f"/bots/{bot.pk}/start").content.decode()
    assert "BOT_KILLED" in refused
    assert f'with a reason (<a href="/bots/{bot.pk}/#kill-switch">Unkill</a> on the bot\'s page) before' in refused
    _no_api_words(refused)


def test_retired_is_never_preselected_and_needs_a_confirmation(operator: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    page = _client(operator, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    select = page[page.index('<select id="demote-to"') : page.index("</select>", page.index('<select id="demote-to"'))]
    assert select.index('<option value="">choose a stage</option>') < select.index('value="RETIRED"')
    assert " selected" not in select and "RETIRED — final, cannot be undone" in select

    client = _client(operator)
    refused = client.post(f"/bots/{bot.pk}/demote", {"to_stage": "RETIRED", "reason": "done with it"}).content.decode()
    assert "retiring a bot is final and was not confirmed" in refused
    assert re.search(r'id="demote-reason"[^>]*value="done with it"', refused)
    assert '<option value="RETIRED" selected>' in refused  # the refused choice comes back as sent
    assert Bot.objects.get(pk=bot.pk).stage == Bot.Stage.PAPER

    none = client.post(f"/bots/{bot.pk}/demote", {"to_stage": "", "reason": "x"}).content.decode()
    assert "no stage was chosen" in none and Bot.objects.get(pk=bot.pk).stage == Bot.Stage.PAPER

    done = client.post(
        f"/bots/{bot.pk}/demote", {"to_stage": "RETIRED", "reason": "done with it", "confirm_retire": "on"}
    ).content.decode()
    assert "Demoted PAPER → RETIRED" in done and Bot.objects.get(pk=bot.pk).stage == Bot.Stage.RETIRED


def test_the_trading_state_select_shows_the_current_state(operator: Any) -> None:
    bot = BotFactory()
    page = _client(operator, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    assert "<option selected>ACTIVE</option>" in page
    TradingState.objects.create(bot_id=bot.pk, state="HALTED", reason="manual")
    page = _client(operator, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    assert "<option selected>HALTED</option>" in page and "<option selected>ACTIVE</option>" not in page

    answer = _client(operator).post(f"/bots/{bot.pk}/trading-state", {"state": "REDUCING", "reason": "calm"})
    assert "<option selected>REDUCING</option>" in answer.content.decode()


def test_the_actions_panel_refreshes_alone_when_bots_change_elsewhere(operator: Any) -> None:
    bot = BotFactory()
    html = _client(operator).get(f"/bots/{bot.pk}/?part=actions").content.decode()
    assert html.lstrip().startswith('<section id="bot-actions"') and "<html" not in html
    assert 'hx-trigger="bots-changed from:body"' in html


def test_pnl_of_a_bot_that_never_traded_says_so(viewer: Any) -> None:
    bot = BotFactory()
    html = _client(viewer, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    pnl = html[html.index('id="bot-pnl"') : html.index("</dl>", html.index('id="bot-pnl"'))]
    assert "no trades yet" in pnl and "USD" not in pnl and "flat: no open position" in pnl


def test_an_operator_creates_a_bot_from_the_bots_page_with_field_errors_in_place(operator: Any) -> None:
    page = _client(operator, htmx=False).get("/bots/").content.decode()
    assert 'id="new-bot"' in page and 'hx-post="/bots/new"' in page
    client = _client(operator)
    bad = {
        "name": "My MES bot", "strategy_key": "trend_following", "instrument": "MES", "timeframe": "15m",
        "data_provider": "databento", "venue": "sim", "broker_account": "",
        "risk_limits.max_position_contracts": "2", "risk_limits.max_daily_loss": "-5",
        "risk_limits.max_orders_per_day": "",
    }  # fmt: skip
    refused = client.post("/bots/new", bad).content.decode()
    assert refused.lstrip().startswith('<details class="card" id="new-bot"')
    assert '<p class="field-error">Max daily loss must be a positive number.</p>' in refused
    assert 'value="My MES bot"' in refused and 'value="-5"' in refused
    assert '<option value="trend_following" title' in refused and "selected>Trend following" in refused
    assert not Bot.objects.exists()

    taken = BotFactory(name="Taken")
    dup = client.post("/bots/new", {**bad, "name": taken.name, "risk_limits.max_daily_loss": "500"}).content.decode()
    assert "a bot named &#x27;Taken&#x27; already exists." in dup

    response = client.post("/bots/new", {**bad, "risk_limits.max_daily_loss": "500"})
    created = Bot.objects.get(name="My MES bot")
    html = response.content.decode()
    assert f'Created <a href="/bots/{created.pk}/">My MES bot</a>' in html and "bots-changed" in response["HX-Trigger"]
    assert created.stage == Bot.Stage.LAB and created.timeframe == "15m"
    assert created.risk_limits == {"max_position_contracts": 2, "max_daily_loss": 500.0}
    assert created.parameters["fast_period"] == 20  # the strategy's defaults
    assert 'value="My MES bot"' not in html  # done: the form is clear for the next one


def test_an_operator_edits_parameters_and_risk_limits_with_errors_in_place(operator: Any, viewer: Any) -> None:
    bot = BotFactory(risk_limits={"max_position_contracts": 1, "max_daily_loss": 200.0, "max_orders_per_day": 20})
    page = _client(operator, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    assert f'hx-post="/bots/{bot.pk}/edit"' in page and 'name="parameters.fast_period" value="20"' in page
    read_only = _client(viewer, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    assert f'hx-post="/bots/{bot.pk}/edit"' not in read_only

    form = {
        "parameters.fast_period": "60", "parameters.slow_period": "50", "parameters.atr_period": "14",
        "parameters.stop_atr_multiple": "2.0", "risk_limits.max_position_contracts": "1",
        "risk_limits.max_daily_loss": "200", "risk_limits.max_orders_per_day": "20", "reason": "faster",
    }  # fmt: skip
    client = _client(operator)
    refused = client.post(f"/bots/{bot.pk}/edit", form).content.decode()
    assert '<p class="field-error">Fast period must be smaller than slow_period.</p>' in refused
    assert 'name="parameters.fast_period" value="60"' in refused and 'value="faster"' in refused
    bot.refresh_from_db()
    assert bot.config_version == 1 and bot.parameters["fast_period"] == 20

    response = client.post(
        f"/bots/{bot.pk}/edit", {**form, "parameters.fast_period": "10", "risk_limits.max_orders_per_day": "40"}
    )
    html = response.content.decode()
    bot.refresh_from_db()
    assert bot.config_version == 2 and bot.parameters["fast_period"] == 10
    assert bot.risk_limits["max_orders_per_day"] == 40
    assert "Saved as config v2." in html and "bot-changed" in response["HX-Trigger"]
    assert BotConfigVersion.objects.get(bot=bot, version=2).reason == "faster"

    emptied = client.post(
        f"/bots/{bot.pk}/edit", {**form, "parameters.fast_period": "", "risk_limits.max_orders_per_day": ""}
    ).content.decode()
    bot.refresh_from_db()
    assert bot.parameters["fast_period"] == 20 and "max_orders_per_day" not in bot.risk_limits
    assert "Saved as config v3." in emptied

    assert client.post(f"/bots/{bot.pk}/edit", form).status_code == 200
    assert _client(viewer).post(f"/bots/{bot.pk}/edit", form).status_code == 403


def test_pages_speak_to_operators_not_to_api_clients(operator: Any) -> None:
    from apps.bots import services as bot_services

    bot_services.bot_starter_pack(actor=operator)
    bot = Bot.objects.order_by("pk").first()
    client = _client(operator, htmx=False)
    for path in ("/", "/connections/", "/connections/keys-needed/", "/bots/", f"/bots/{bot.pk}/", "/runners/"):
        html = client.get(path).content.decode()
        for words in (
            "later issue",
            "not built yet",
            "Arrives with",
            "{id}",
            "passed=false",
            "on the Connections page",
        ):
            assert words not in html, (path, words)


def test_keys_needed_leads_with_the_minimum_and_marks_optional_providers(viewer: Any) -> None:
    html = _client(viewer, htmx=False).get("/connections/keys-needed/").content.decode()
    minimum = html.index("The minimum that unblocks TradeOps")
    assert minimum < html.index('id="keys-market_data"') < html.index('id="keys-ai"')
    assert "One market-data provider, configured and verified" in html
    assert 'href="/connections/#card-databento"' in html and 'href="/connections/#card-polygon"' in html
    ai = html[html.index('id="keys-ai"') : html.index("</section>", html.index('id="keys-ai"'))]
    assert '<span class="pill pill-muted">optional</span>' in ai and "none is needed to trade" in ai
    assert 'class="bad" aria-label="missing"' not in ai  # an optional key is not a red cross
    assert "required variable" not in html
