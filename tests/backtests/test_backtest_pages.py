"""The Backtests pages of the Observatory (list, New backtest, a backtest's page, its price data)
and the bot page's Backtests section, through Django's client against the real database. The
backtests that run here run the real engine over stored bars (Celery runs eagerly in tests)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from apps.backtests.models import Backtest, Status
from apps.core.errors import error_body
from tests.backtests.factories import (
    DAY_END,
    DAY_START,
    TREND_PARAMETERS,
    StrategyBacktestFactory,
    finished_metrics,
    store_walk,
    trade,
)
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

LIST = "/backtests/"
NEW = "/backtests/new"


def _client(user: Any, *, htmx: bool = False) -> Client:
    client = Client(headers={"HX-Request": "true"}) if htmx else Client()
    client.force_login(user)
    return client


def _form(**overrides: Any) -> dict[str, Any]:
    """The New backtest form as a browser posts it, for a strategy backtest over the stored window."""
    data = {
        "source": "strategy",
        "strategy_key": "trend_following",
        "instrument": "MES",
        "timeframe": "1m",
        "start": DAY_START.strftime("%Y-%m-%dT%H:%M"),
        "end": DAY_END.strftime("%Y-%m-%dT%H:%M"),
        "fill_model.slippage_ticks": "",
        "fill_model.commission_per_contract": "",
        "initial_capital": "",
    }
    data.update({f"parameters.trend_following.{k}": str(v) for k, v in TREND_PARAMETERS.items()})
    data.update(overrides)
    return data


def _text(html: str) -> str:
    """The page's words without tags, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _section(html: str, element_id: str) -> str:
    """The text of the element with this id (up to its closing tag of the same name)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"', html)
    assert match, f"no element #{element_id}"
    tag, begin = match.group(1), match.start()
    end = html.index(f"</{tag}>", begin)
    return _text(html[begin:end])


@pytest.fixture
def stored_window(settings: Any) -> int:
    settings.MARKET_DATA_RECENT_HOURS = 24 * 365 * 20  # the generated bars are final, however "recent"
    return store_walk(seed=11, start=DAY_START - timedelta(hours=3), end=DAY_END)


# --- roles -----------------------------------------------------------------------------------------


def test_it_shows_a_viewer_the_list_without_forms_or_buttons(viewer: Any) -> None:
    backtest = StrategyBacktestFactory(finished=True)
    running = StrategyBacktestFactory(status=Status.RUNNING, progress=0.4)
    html = _client(viewer).get(LIST).content.decode()
    assert f'id="backtest-{backtest.pk}"' in html and "Marginal" in html
    assert 'id="new-backtest"' not in html and "Run backtest" not in html
    page = _client(viewer).get(f"/backtests/{running.pk}/").content.decode()
    assert 'id="backtest-progress"' in page
    assert "Cancel backtest" not in page


def test_it_gives_an_operator_the_new_backtest_form(operator: Any) -> None:
    html = _client(operator).get(LIST).content.decode()
    assert 'id="new-backtest"' in html and "Run backtest" in html
    # Every strategy's parameters are there, labelled in words, with their defaults shown.
    assert 'name="parameters.mean_reversion.entry_zscore"' in html
    assert "Stop ATR multiple" in html


def test_it_answers_404_to_a_user_without_a_role(stranger: Any) -> None:
    backtest = StrategyBacktestFactory()
    client = _client(stranger)
    assert client.get(LIST).status_code == 404
    assert client.get(f"/backtests/{backtest.pk}/").status_code == 404
    assert client.get(f"/backtests/{backtest.pk}/prices.json").status_code == 404


def test_it_answers_404_for_a_backtest_that_does_not_exist(viewer: Any) -> None:
    assert _client(viewer).get("/backtests/999999/").status_code == 404


def test_it_sends_a_signed_out_visitor_to_sign_in() -> None:
    response = Client().get(LIST)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_a_viewer_can_neither_create_nor_cancel(viewer: Any) -> None:
    running = StrategyBacktestFactory(status=Status.RUNNING)
    client = _client(viewer)
    assert client.post(NEW, _form()).status_code == 403
    assert client.post(f"/backtests/{running.pk}/cancel").status_code == 403
    assert Backtest.objects.count() == 1
    assert Backtest.objects.get(pk=running.pk).status == Status.RUNNING


# --- the New backtest form -------------------------------------------------------------------------


def test_the_form_names_every_bad_field_in_place_and_keeps_what_was_typed(operator: Any) -> None:
    data = _form(
        start="",
        **{
            "parameters.trend_following.fast_period": "60",  # not below the slow period (8)
            "fill_model.slippage_ticks": "-1",
            "initial_capital": "0",
        },
    )
    response = _client(operator, htmx=True).post(NEW, data)
    assert response.status_code == 200  # htmx swaps only a 2xx: the form comes back with its errors
    html = response.content.decode()
    text = _text(html)
    assert "Nothing was started" in text
    assert "Start choose a date and time (UTC)." in text
    assert "Fast period must be smaller than slow period." in text  # the service's rule, in words
    assert "Slippage must be a whole number of ticks from 0 to 1000." in text
    assert "Initial capital must be a positive amount of USD" in text
    assert 'value="60"' in html and 'value="-1"' in html  # what was typed stays
    assert "slow_period" not in text  # no field names
    assert Backtest.objects.count() == 0


def test_the_form_without_htmx_answers_400_with_the_page(operator: Any) -> None:
    response = _client(operator).post(NEW, _form(end=DAY_START.strftime("%Y-%m-%dT%H:%M")))
    assert response.status_code == 400
    text = _text(response.content.decode())
    assert "End must be after start." in text and "<h1>" not in text
    assert Backtest.objects.count() == 0


def test_the_form_asks_for_a_bot_when_none_was_chosen(operator: Any) -> None:
    response = _client(operator, htmx=True).post(NEW, _form(source="bot", bot_id=""))
    assert "Bot choose the bot to backtest." in _text(response.content.decode())
    assert Backtest.objects.count() == 0


def test_a_window_the_market_does_not_trade_in_is_refused_in_words(operator: Any) -> None:
    saturday = datetime(2025, 12, 13, 12, 0, tzinfo=UTC)
    data = _form(
        start=saturday.strftime("%Y-%m-%dT%H:%M"), end=(saturday + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
    )
    text = _text(_client(operator, htmx=True).post(NEW, data).content.decode())
    assert "End MES does not trade between start and end" in text


def test_a_strategy_backtest_from_the_form_runs_and_its_page_shows_the_result(
    operator: Any, stored_window: int, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # the job is published on commit, run eagerly
        response = _client(operator, htmx=True).post(NEW, _form())
    backtest = Backtest.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/backtests/{backtest.pk}/"
    assert backtest.status == Status.SUCCEEDED, backtest.error
    assert backtest.parameters == TREND_PARAMETERS and backtest.config_version is None
    assert backtest.created_by == operator

    html = _client(operator).get(f"/backtests/{backtest.pk}/").content.decode()
    metrics = backtest.metrics
    assert metrics["trades"] > 0
    assert _section(html, "metric-trades").split()[1] == str(metrics["trades"])
    net = Decimal(metrics["net_pnl"])
    shown = f"{'−' if net < 0 else ''}{abs(net):,.2f} USD"
    assert shown in _section(html, "metric-net_pnl")
    verdict = backtest.classification["verdict"]
    assert f"Verdict: {verdict.capitalize()}" in _section(html, "backtest-verdict")
    for reason in backtest.classification["reasons"]:
        assert reason["message"] in _text(html)
    # Both charts have their places and data; the trade table lists the first trades.
    assert 'id="equity-chart"' in html and 'id="backtest-equity-data"' in html
    assert f'data-url="/backtests/{backtest.pk}/prices.json"' in html
    assert html.count('id="trade-') == min(metrics["trades"], 50)
    assert "Traded:" in _text(html) and "Did not trade:" in _text(html)
    assert "none: no risk checks" in _text(html)


def test_a_bot_backtest_uses_its_current_config_and_shows_on_the_bot_page(
    operator: Any, stored_window: int, django_capture_on_commit_callbacks: Any
) -> None:
    bot = BotFactory(timeframe="1m", parameters=TREND_PARAMETERS, name="Trend lab")
    with django_capture_on_commit_callbacks(execute=True):
        response = _client(operator).post(NEW, _form(source="bot", bot_id=str(bot.pk), strategy_key=""))
    backtest = Backtest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/backtests/{backtest.pk}/"
    assert (backtest.bot_id, backtest.config_version) == (bot.pk, bot.config_version)
    assert backtest.risk_limits == bot.risk_limits
    assert backtest.status == Status.SUCCEEDED, backtest.error

    html = _client(operator).get(f"/bots/{bot.pk}/").content.decode()
    section = _section(html, "bot-backtests")
    assert f"#{backtest.pk}" in section and f"v{bot.config_version} current" in section
    # The evidence the LAB→PAPER gate reads, as the gate table says it, and the way to make more.
    assert 'id="backtest-evidence"' in html and "Evidence for LAB → PAPER" in section
    assert f'href="/backtests/?run_bot={bot.pk}#new-backtest"' in html


def test_run_a_backtest_opens_the_form_with_the_bot_chosen(operator: Any, viewer: Any) -> None:
    bot = BotFactory(name="Chosen bot")
    html = _client(operator).get(f"/backtests/?run_bot={bot.pk}").content.decode()
    assert re.search(r'<details class="card" id="new-backtest"[^>]* open>', html)
    assert re.search(rf'<option value="{bot.pk}" selected>Chosen bot', html)
    assert 'id="run-backtest"' not in _client(viewer).get(f"/bots/{bot.pk}/").content.decode()


# --- a backtest's page -----------------------------------------------------------------------------


def test_a_figure_that_cannot_be_computed_shows_a_dash_and_its_reason_never_zero(viewer: Any) -> None:
    reasons = {
        "win_rate": "no trades in the window",
        "profit_factor": "no trades in the window",
        "expectancy": "no trades in the window",
        "sharpe": "1 trading day, at least 2 are needed for daily returns to vary",
        "sortino": "1 trading day, at least 2 are needed for daily returns to vary",
    }
    metrics = finished_metrics(
        net_pnl="0.00",
        gross_pnl="0.00",
        fees="0.00",
        slippage="0.00",
        trades=0,
        unknown=reasons,
        **dict.fromkeys(reasons),
    )
    backtest = StrategyBacktestFactory(finished=True, metrics=metrics)
    html = _client(viewer).get(f"/backtests/{backtest.pk}/").content.decode()
    for key, reason in reasons.items():
        card = _section(html, f"metric-{key}")
        assert "—" in card and reason.capitalize() in card, card
        assert not re.search(r"\b0(\.0+)?\b", card.replace(reason.capitalize(), "")), card
    assert "This backtest made no trade." in _text(html)


def test_a_failed_backtest_shows_its_error_what_to_do_and_the_trace_id(viewer: Any) -> None:
    envelope = error_body(
        status=409,
        error_code="DATA_UNAVAILABLE",
        message="MES 1m: 30 bar(s) the market traded in are missing from the store and could not be fetched.",
        suggested_fix="Load the missing history with `manage.py import_bars` (or check the data provider on the "
        "Connections page), then run the backtest again.",
        gaps=[{"start": "2025-12-15T15:00:00+00:00", "end": "2025-12-15T15:30:00+00:00", "slots": 30}],
        gaps_total=1,
    )
    backtest = StrategyBacktestFactory(status=Status.FAILED, error=envelope)
    html = _client(viewer).get(f"/backtests/{backtest.pk}/").content.decode()
    error = _section(html, "backtest-error")
    assert "DATA_UNAVAILABLE" in error and envelope["message"] in error
    assert "What to do: Load the missing history with manage.py import_bars" in error
    assert f"Trace {envelope['trace_id']}" in error
    assert "2025-12-15 15:00 UTC to 2025-12-15 15:30 UTC — 30 bars" in error
    assert 'href="/connections/"' in html  # the fix links the page that does it
    assert 'id="backtest-metrics"' not in html
    # The list says why it has no verdict.
    assert envelope["message"][:60] in _text(_client(viewer).get(LIST).content.decode())


def test_a_running_backtest_shows_its_progress_and_an_operator_can_cancel_it(operator: Any) -> None:
    backtest = StrategyBacktestFactory(status=Status.RUNNING, progress=0.42)
    html = _client(operator).get(f"/backtests/{backtest.pk}/").content.decode()
    assert 'id="backtest-progress-bar"' in html and 'value="42"' in html
    assert 'hx-trigger="every 2s' in html and "Cancel backtest" in html

    # The poll answers the progress as it moves.
    Backtest.objects.filter(pk=backtest.pk).update(progress=0.77)
    poll = _client(operator, htmx=True).get(f"/backtests/{backtest.pk}/?part=progress")
    assert poll.status_code == 200 and 'value="77"' in poll.content.decode()

    answer = _client(operator, htmx=True).post(f"/backtests/{backtest.pk}/cancel")
    assert answer["HX-Refresh"] == "true"
    assert Backtest.objects.get(pk=backtest.pk).status == Status.CANCELLED
    page = _client(operator).get(f"/backtests/{backtest.pk}/").content.decode()
    assert 'id="backtest-cancelled"' in page and "Cancel backtest" not in page
    assert 'id="backtest-progress"' not in page


def test_the_progress_poll_reloads_the_page_once_the_backtest_has_finished(viewer: Any) -> None:
    backtest = StrategyBacktestFactory(finished=True)
    poll = _client(viewer, htmx=True).get(f"/backtests/{backtest.pk}/?part=progress")
    assert poll["HX-Refresh"] == "true"


def test_cancelling_a_finished_backtest_is_refused_in_place(operator: Any) -> None:
    backtest = StrategyBacktestFactory(finished=True)
    answer = _client(operator, htmx=True).post(f"/backtests/{backtest.pk}/cancel")
    assert answer.status_code == 200
    text = _text(answer.content.decode())
    assert "BACKTEST_NOT_CANCELLABLE" in text and "Show this backtest as it is now" in text
    assert _client(operator).post(f"/backtests/{backtest.pk}/cancel").status_code == 409
    assert Backtest.objects.get(pk=backtest.pk).status == Status.SUCCEEDED


def test_the_trade_table_pages_through_every_trade(viewer: Any) -> None:
    backtest = StrategyBacktestFactory(finished=True, metrics=finished_metrics(trades=60))
    for seq in range(1, 61):
        trade(backtest, seq, side="SHORT" if seq % 2 else "LONG", pnl=Decimal("-12.5") if seq == 3 else Decimal("7"))
    html = _client(viewer).get(f"/backtests/{backtest.pk}/").content.decode()
    assert html.count('id="trade-') == 50 and 'id="trade-50"' in html and 'id="trade-51"' not in html
    assert f'href="/backtests/{backtest.pk}/?after=50#trades"' in html
    assert "−12.50 USD" in _section(html, "trade-3")
    second = _client(viewer, htmx=True).get(f"/backtests/{backtest.pk}/?part=trades&after=50").content.decode()
    assert second.count('id="trade-') == 10 and 'id="trade-51"' in second and 'id="trades-next"' not in second
    # The same page without htmx (a reload of the pushed URL) shows the same trades.
    reloaded = _client(viewer).get(f"/backtests/{backtest.pk}/?after=50").content.decode()
    assert 'id="trade-51"' in reloaded and 'id="trade-1"' not in reloaded


def test_the_config_links_the_bot_and_says_when_it_has_moved_on(viewer: Any) -> None:
    bot = BotFactory(name="Moved on")
    backtest = StrategyBacktestFactory(finished=True, bot=bot, config_version=bot.config_version)
    html = _client(viewer).get(f"/backtests/{backtest.pk}/").content.decode()
    config = _section(html, "backtest-config")
    assert f"Moved on , config v{bot.config_version}" in config and "not evidence" not in config
    assert "Fast period" in config and "bars in the fast moving average" in config
    type(bot).objects.filter(pk=bot.pk).update(config_version=bot.config_version + 1)
    config = _section(_client(viewer).get(f"/backtests/{backtest.pk}/").content.decode(), "backtest-config")
    assert "not evidence for its current configuration" in config


# --- the list ----------------------------------------------------------------------------------------


def test_the_list_polls_only_while_a_backtest_is_queued_or_running(viewer: Any) -> None:
    backtest = StrategyBacktestFactory(finished=True)
    client = _client(viewer, htmx=True)
    quiet = client.get(LIST)
    assert quiet.status_code == 286 and "every 3s" not in quiet.content.decode()
    Backtest.objects.filter(pk=backtest.pk).update(status=Status.RUNNING, progress=0.25)
    busy = client.get(LIST)
    assert busy.status_code == 200
    body = busy.content.decode()
    assert "every 3s" in body and 'value="25"' in body and "<h1>" not in body


def test_the_list_filters_by_bot_and_status(viewer: Any) -> None:
    bot = BotFactory(name="Filtered")
    mine = StrategyBacktestFactory(finished=True, bot=bot, config_version=1)
    other = StrategyBacktestFactory(status=Status.FAILED, error=error_body(status=500))
    client = _client(viewer)
    by_bot = client.get(f"{LIST}?bot={bot.pk}").content.decode()
    assert f'id="backtest-{mine.pk}"' in by_bot and f'id="backtest-{other.pk}"' not in by_bot
    by_status = client.get(f"{LIST}?status=FAILED").content.decode()
    assert f'id="backtest-{other.pk}"' in by_status and f'id="backtest-{mine.pk}"' not in by_status
    ignored = client.get(f"{LIST}?status=NOPE").content.decode()
    assert "Ignored" in ignored and f'id="backtest-{mine.pk}"' in ignored


# --- the price chart's data --------------------------------------------------------------------------


def test_the_price_data_is_the_window_s_bars_with_each_trade_marked(viewer: Any, stored_window: int) -> None:
    backtest = StrategyBacktestFactory(finished=True)
    trade(backtest, 1, entry_ts=DAY_START + timedelta(minutes=5), exit_ts=DAY_START + timedelta(minutes=9))
    trade(
        backtest,
        2,
        side="SHORT",
        exit_reason="STOP",
        entry_ts=DAY_START + timedelta(minutes=20),
        exit_ts=DAY_START + timedelta(minutes=21),
    )
    response = _client(viewer).get(f"/backtests/{backtest.pk}/prices.json")
    assert response.status_code == 200
    data = response.json()
    window_bars = stored_window - 180  # the three hours before the window are warm-up, not drawn
    assert data["bars"] == window_bars and data["bars_per_candle"] == 1 and len(data["candles"]) == window_bars
    assert data["candles"][0]["time"] == int(DAY_START.timestamp())
    assert [(m["time"] - int(DAY_START.timestamp()), m["text"]) for m in data["markers"]] == [
        (300, "Long"),
        (540, "Exit"),
        (1200, "Short"),
        (1260, "Stop"),
    ]
    assert data["more_trades"] is False


def test_the_price_data_of_an_unfinished_backtest_says_why_there_is_none(viewer: Any) -> None:
    backtest = StrategyBacktestFactory(status=Status.RUNNING)
    response = _client(viewer).get(f"/backtests/{backtest.pk}/prices.json")
    assert response.status_code == 409 and response.json()["error_code"] == "BACKTEST_NOT_FINISHED"


def test_page_words_turn_the_backtest_endpoint_into_the_form_that_does_it() -> None:
    from apps.core.templatetags.observatory import page_fix

    gate = 'Run one from the Backtests page, or POST /api/backtests with {"bot_id": 7, "start", "end"} over 20 days.'
    assert str(page_fix(gate, 7)) == (
        'Run one from the <a href="/backtests/?run_bot=7#new-backtest">Backtests page</a> over 20 days.'
    )
    assert str(page_fix("See the Backtests page (POST /api/backtests).", 7)) == (
        'See the <a href="/backtests/">Backtests page</a> '
        '(<a href="/backtests/?run_bot=7#new-backtest">New backtest on the Backtests page</a>).'
    )
    assert str(page_fix("the newest backtest of config v2, backtest 41 (REJECTED)")) == (
        'the newest backtest of config v2, backtest <a href="/backtests/41/">41</a> (REJECTED)'
    )
    # Not an endpoint below it (GET /api/backtests/{id} stays as written).
    assert "<a" not in str(page_fix("GET /api/backtests/12/trades lists them."))


def test_a_missing_key_failure_links_connections_where_the_key_is_entered(viewer: Any) -> None:
    """The provider's own fix ("… on the databento card in Connections (admin) …") links that page."""
    envelope = error_body(
        status=409,
        error_code="DATA_UNAVAILABLE",
        message="MES 1m: 5569 bar(s) the market traded in are missing from the store and could not be fetched.",
        suggested_fix="Enter DATABENTO_API_KEY with “Enter keys” on the databento card in Connections (admin), "
        "or set them in the environment, then Verify.",
        missing_env_vars=["DATABENTO_API_KEY"],
    )
    backtest = StrategyBacktestFactory(status=Status.FAILED, error=envelope)
    html = _client(viewer).get(f"/backtests/{backtest.pk}/").content.decode()
    assert 'databento card in <a href="/connections/">Connections</a> (admin)' in html
