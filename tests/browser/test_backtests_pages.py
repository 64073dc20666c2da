"""Issue 10 in a real browser: a backtest run from the Backtests page's form (the real engine over
stored bars; Celery runs eagerly, so it has finished when the page opens), its page with the
figures, the verdict, both charts drawn and the trades; a running one's progress bar and Cancel;
refreshes that keep what the operator opened. Every test also fails on a console error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from apps.backtests.models import Backtest, Status
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

pytestmark = pytest.mark.django_db(transaction=True)

FORMAT = "%Y-%m-%dT%H:%M"


@pytest.fixture
def stored_window(settings: Any) -> int:
    settings.MARKET_DATA_RECENT_HOURS = 24 * 365 * 20  # the generated bars are final, however "recent"
    return store_walk(seed=5, start=DAY_START - timedelta(hours=3), end=DAY_END)


def _fill_window(page: Any) -> None:
    page.fill("#id-bt-start", DAY_START.strftime(FORMAT))
    page.fill("#id-bt-end", DAY_END.strftime(FORMAT))


def _expect_result_page(page: Any, backtest: Backtest) -> None:
    """The finished backtest's page: every figure, the verdict and its reasons, both charts drawn
    (a canvas in each), the decisions and the first trades."""
    expect(page.locator("#backtest-metrics .metric")).to_have_count(12)
    trades = backtest.metrics["trades"]
    expect(page.locator("#metric-trades .metric-value")).to_have_text(f"{trades:,}")
    verdict = backtest.classification["verdict"]
    expect(page.locator("#backtest-verdict")).to_contain_text(f"Verdict: {verdict.capitalize()}")
    for reason in backtest.classification["reasons"]:
        expect(page.locator("#verdict-reasons")).to_contain_text(reason["message"])
    expect(page.locator("#equity-chart[data-state=drawn] canvas").first).to_be_visible()
    expect(page.locator("#price-chart[data-state=drawn] canvas").first).to_be_visible()
    assert int(page.get_attribute("#price-chart", "data-markers")) == 2 * trades
    expect(page.locator("#backtest-decisions")).to_contain_text("Traded:")
    expect(page.locator("#backtest-trades tbody tr")).to_have_count(min(trades, 50))


def test_a_backtest_from_the_form_shows_its_figures_verdict_charts_and_trades(
    page: Any, sign_in: Any, operator: Any, stored_window: int
) -> None:
    sign_in(page, operator, next_path="/backtests/")
    page.click("#new-backtest > summary")
    page.check("#id-bt-source-strategy")
    expect(page.locator("#new-backtest fieldset[data-source=bot]")).to_be_hidden()
    page.select_option("#id-bt-strategy", "trend_following")
    expect(page.locator("#new-backtest fieldset[data-strategy=trend_following]")).to_be_visible()
    expect(page.locator("#new-backtest fieldset[data-strategy=breakout]")).to_be_hidden()
    page.select_option("#id-bt-instrument", "MES")
    page.select_option("#id-bt-timeframe", "1m")
    for name, value in TREND_PARAMETERS.items():
        page.fill(f"#id-bt-trend-following-{name.replace('_', '-')}", str(value))
    _fill_window(page)

    # First a mistake: the fast average not shorter than the slow one. Said in place, kept as typed.
    page.fill("#id-bt-trend-following-fast-period", "9")
    page.click("#backtest-create-form button[type=submit]")
    expect(page.locator("#new-backtest")).to_contain_text("Fast period must be smaller than slow period.")
    assert page.input_value("#id-bt-trend-following-fast-period") == "9"
    expect(
        page.locator("#new-backtest fieldset[data-strategy=breakout]")
    ).to_be_hidden()  # the form still shows one strategy
    assert Backtest.objects.count() == 0

    page.fill("#id-bt-trend-following-fast-period", str(TREND_PARAMETERS["fast_period"]))
    page.click("#backtest-create-form button[type=submit]")
    page.wait_for_url("**/backtests/*/")
    backtest = Backtest.objects.get()
    assert backtest.status == Status.SUCCEEDED, backtest.error
    assert page.url.endswith(f"/backtests/{backtest.pk}/")
    _expect_result_page(page, backtest)


def test_run_a_backtest_from_the_bot_page_and_see_it_there(
    page: Any, sign_in: Any, operator: Any, stored_window: int
) -> None:
    bot = BotFactory(name="Trend lab", timeframe="1m", parameters=TREND_PARAMETERS)
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    expect(page.locator("#bot-backtests")).to_contain_text("No backtest of this bot yet.")
    page.click("#run-backtest")
    expect(page.locator("#new-backtest")).to_have_attribute("open", "")
    assert page.input_value("#id-bt-bot") == str(bot.pk)
    expect(page.locator("#new-backtest fieldset[data-source=strategy]")).to_be_hidden()
    _fill_window(page)
    page.click("#backtest-create-form button[type=submit]")
    page.wait_for_url("**/backtests/*/")
    backtest = Backtest.objects.get()
    assert (backtest.bot_id, backtest.config_version) == (bot.pk, bot.config_version)
    _expect_result_page(page, backtest)
    expect(page.locator("#backtest-config")).to_contain_text(f"Trend lab, config v{bot.config_version}")

    page.click(f"#backtest-config a[href='/bots/{bot.pk}/']")
    row = page.locator(f"#bot-backtest-{backtest.pk}")
    expect(row).to_contain_text(f"v{bot.config_version} current")
    expect(row).to_contain_text(backtest.classification["verdict"].capitalize())
    expect(page.locator("#backtest-evidence")).to_contain_text("Evidence for LAB → PAPER")


def test_a_running_backtest_s_progress_bar_moves_and_cancel_stops_it(page: Any, sign_in: Any, operator: Any) -> None:
    backtest = StrategyBacktestFactory(status=Status.RUNNING, progress=0.1)
    sign_in(page, operator, next_path=f"/backtests/{backtest.pk}/")
    bar = page.locator("#backtest-progress-bar")
    expect(bar).to_have_attribute("value", "10")

    Backtest.objects.filter(pk=backtest.pk).update(progress=0.6)  # the worker writes its progress
    expect(bar).to_have_attribute("value", "60", timeout=8_000)
    expect(page.locator("#backtest-progress-percent")).to_have_text("60 %")

    page.click("#backtest-cancel")
    expect(page.locator("#backtest-cancelled")).to_be_visible()
    expect(page.locator("#backtest-cancel")).to_have_count(0)
    expect(page.locator("#backtest-progress")).to_have_count(0)
    assert Backtest.objects.get(pk=backtest.pk).status == Status.CANCELLED


def test_a_backtest_that_finishes_while_watched_shows_its_result(page: Any, sign_in: Any, viewer: Any) -> None:
    backtest = StrategyBacktestFactory(status=Status.RUNNING, progress=0.9)
    sign_in(page, viewer, next_path=f"/backtests/{backtest.pk}/")
    expect(page.locator("#backtest-progress-bar")).to_have_attribute("value", "90")
    expect(page.locator("#backtest-cancel")).to_have_count(0)  # a viewer has no buttons
    done = StrategyBacktestFactory.build(finished=True)
    Backtest.objects.filter(pk=backtest.pk).update(
        status=Status.SUCCEEDED,
        progress=1.0,
        metrics=finished_metrics(),
        classification=done.classification,
        equity_curve=done.equity_curve,
        decisions=done.decisions,
    )
    expect(page.locator("#backtest-verdict")).to_contain_text("Verdict: Marginal", timeout=8_000)
    expect(page.locator("#verdict-reasons")).to_contain_text("2 trades, 30 needed")
    expect(page.locator("#equity-chart[data-state=drawn] canvas").first).to_be_visible()
    # No bars are stored for this window: the price chart says so instead of drawing nothing.
    expect(page.locator("#price-chart")).to_have_attribute("data-state", "empty")
    expect(page.locator("#price-chart")).to_contain_text("No bars are stored for this window")


def test_refreshes_keep_what_the_operator_opened(page: Any, sign_in: Any, operator: Any) -> None:
    # The list refreshes every 3 s while something runs; the form opened and half filled stays.
    StrategyBacktestFactory(status=Status.RUNNING, progress=0.2)
    finished = StrategyBacktestFactory(finished=True, metrics=finished_metrics(trades=70))
    for seq in range(1, 71):
        trade(finished, seq)
    sign_in(page, operator, next_path="/backtests/")
    page.click("#new-backtest > summary")
    page.check("#id-bt-source-strategy")
    page.fill("#id-bt-capital", "25000")
    with page.expect_response(lambda r: "/backtests/" in r.url and r.request.headers.get("hx-request") == "true"):
        pass  # the next poll
    page.wait_for_load_state("networkidle")
    assert page.locator("#new-backtest").evaluate("d => d.open")
    assert page.input_value("#id-bt-capital") == "25000"
    assert page.is_checked("#id-bt-source-strategy")

    # A backtest's page: the next trades are opened in place and a reload keeps them.
    page.goto(f"/backtests/{finished.pk}/")
    page.click("#trades-next")
    expect(page.locator("#trade-51")).to_be_visible()
    assert page.url.endswith(f"/backtests/{finished.pk}/?after=50")
    page.reload()
    expect(page.locator("#trade-51")).to_be_visible()
    expect(page.locator("#trade-1")).to_have_count(0)
