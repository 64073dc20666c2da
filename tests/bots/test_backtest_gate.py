"""The LAB→PAPER gate reads the backtests: it passes without an override on a SUCCEEDED, PROMOTABLE
backtest of the bot's current config that covers enough trading days and is recent, naming it; it
fails naming the backtest and what keeps it from counting (its verdict and reasons, too short, too
old, another config), or saying none exists, and what the operator can do. A new config version
needs new evidence."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.backtests.models import Backtest
from apps.bots.models import Bot
from tests.backtests.conftest import END, START, run_job, strategy_body
from tests.backtests.factories import BacktestFactory
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _gate_settings(settings: Any) -> None:
    settings.BACKTEST_GATE_MIN_TRADING_DAYS = 20
    settings.BACKTEST_GATE_MAX_AGE_DAYS = 30


def _promote(client: Any, bot: Bot) -> Any:
    return client.post(f"/api/bots/{bot.pk}/promote", {"to_stage": "PAPER", "reason": "evidence"}, format="json")


def _gate(client: Any, bot: Bot) -> dict[str, Any]:
    response = _promote(client, bot)
    body = response.json()
    assert response.status_code == 409 and body["error_code"] == "PROMOTION_GATE_FAILED", body
    gates = {g["name"]: g for g in body["gates"]}
    assert gates["backtest_promotable"]["passed"] is False
    assert [name for name, g in gates.items() if not g["passed"]] == ["backtest_promotable"]
    return gates["backtest_promotable"]


def _stage(bot: Bot) -> str:
    return Bot.objects.values_list("stage", flat=True).get(pk=bot.pk)


def test_a_promotable_backtest_of_the_current_config_promotes_without_override(token_client: Any) -> None:
    bot = BotFactory()
    backtest = BacktestFactory(bot=bot)
    response = _promote(token_client("operator"), bot)
    body = response.json()
    assert response.status_code == 200, body
    assert body["override"] is False and body["bot"]["stage"] == "PAPER" and _stage(bot) == "PAPER"
    gate = {g["name"]: g for g in body["gates"]}["backtest_promotable"]
    assert gate["passed"] is True
    assert gate["detail"].startswith(
        f"backtest {backtest.pk} of config v1 is PROMOTABLE: trend_following on MES 5m from "
        "2025-09-01 00:00 UTC to 2025-10-27 00:00 UTC, 40 trading days, 64 trades, expectancy 12.40 USD, "
        "profit factor 1.3500, finished "
    )


def test_a_rejected_backtest_fails_the_gate_naming_it_and_its_reasons(token_client: Any) -> None:
    bot = BotFactory()
    reason = {"code": "PROFIT_FACTOR_TOO_LOW", "message": "profit factor 0.8100, at least 1.2 needed"}
    backtest = BacktestFactory(bot=bot, verdict="REJECTED", reasons=[reason])
    detail = _gate(token_client("operator"), bot)["detail"]
    assert detail.startswith(
        f"the newest backtest of config v1, backtest {backtest.pk} (2025-09-01 00:00 UTC to 2025-10-27 00:00 UTC, "
        "finished "
    )
    assert "does not qualify: it is REJECTED (profit factor 0.8100, at least 1.2 needed)." in detail
    assert "Run one from the Backtests page" in detail
    assert _stage(bot) == "LAB"


def test_a_marginal_backtest_fails_the_gate(token_client: Any) -> None:
    bot = BotFactory()
    BacktestFactory(
        bot=bot, verdict="MARGINAL", reasons=[{"code": "TOO_FEW_TRADES", "message": "12 trades, 30 needed"}]
    )
    assert "it is MARGINAL (12 trades, 30 needed)" in _gate(token_client("operator"), bot)["detail"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"trading_days": 12}, "it covers 12 trading days, 20 needed"),
        ({"trading_days": None}, "the trading days it covers are not recorded (20 needed)"),
        ({"finished_at": timezone.now() - timedelta(days=31)}, "more than 30 days ago"),
    ],
)
def test_a_promotable_backtest_too_short_or_too_old_fails_the_gate(
    token_client: Any, overrides: dict[str, Any], words: str
) -> None:
    bot = BotFactory()
    backtest = BacktestFactory(bot=bot, **overrides)
    detail = _gate(token_client("operator"), bot)["detail"]
    assert f"backtest {backtest.pk}" in detail and words in detail and "it is " not in detail


def test_the_days_and_the_age_are_settings(token_client: Any, settings: Any) -> None:
    bot = BotFactory()
    BacktestFactory(bot=bot, trading_days=12, finished_at=timezone.now() - timedelta(days=40))
    settings.BACKTEST_GATE_MIN_TRADING_DAYS = 10
    settings.BACKTEST_GATE_MAX_AGE_DAYS = 45
    assert _promote(token_client("operator"), bot).status_code == 200


def test_an_older_promotable_backtest_still_counts_and_a_newer_failing_one_is_named(token_client: Any) -> None:
    bot = BotFactory()
    good = BacktestFactory(bot=bot, finished_at=timezone.now() - timedelta(days=3))
    newer = BacktestFactory(bot=bot, verdict="REJECTED", trading_days=5)
    response = _promote(token_client("operator"), bot)
    assert response.status_code == 200
    detail = {g["name"]: g for g in response.json()["gates"]}["backtest_promotable"]["detail"]
    assert detail.startswith(f"backtest {good.pk} of config v1 is PROMOTABLE")
    assert detail.endswith(f"Newer backtests of this config that do not qualify: {newer.pk} (REJECTED).")


def test_a_new_config_version_needs_new_evidence(token_client: Any) -> None:
    client = token_client("operator")
    bot = BotFactory()
    old = BacktestFactory(bot=bot)
    patched = client.patch(f"/api/bots/{bot.pk}", {"parameters": {"fast_period": 8}}, format="json")
    assert patched.status_code == 200, patched.json()
    bot.refresh_from_db()
    assert bot.config_version == 2
    detail = _gate(client, bot)["detail"]
    assert detail.startswith(f"no backtest of {bot.name}'s current config (v2) has succeeded.")
    assert (
        f"Backtest {old.pk} is of config v1; the parameters or risk limits have changed since (now v2), "
        "so it is not evidence for this config." in detail
    )
    BacktestFactory(bot=bot)  # of v2
    assert _promote(client, bot).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"parameters": {"fast_period": 8}}, "it ran other parameters (fast_period)"),
        ({"instrument": "MNQ"}, "it ran trend_following on MNQ 5m; the bot now trades trend_following on MES 5m"),
        ({"risk_limits": None}, "it ran with no risk checks"),
        ({"risk_limits": {"max_position_contracts": 3}}, "it ran with other risk limits"),
        (
            {"fill_model": {"slippage_ticks": 0, "commission_per_contract": "0.85"}},
            "it assumed lower costs (0 tick(s) of slippage, 0.85 USD commission) than the SIM fill model (1, 0.85)",
        ),
        ({"fill_model": {"slippage_ticks": 1, "commission_per_contract": "0.10"}}, "it assumed lower costs"),
    ],
)
def test_a_backtest_of_the_version_but_not_of_the_bot_as_it_is_is_no_evidence(
    token_client: Any, overrides: dict[str, Any], words: str
) -> None:
    bot = BotFactory()
    bot_params = dict(bot.parameters)
    if "parameters" in overrides:
        overrides = {**overrides, "parameters": {**bot_params, **overrides["parameters"]}}
    backtest = BacktestFactory(bot=bot, **overrides)
    detail = _gate(token_client("operator"), bot)["detail"]
    assert (
        f"Backtest {backtest.pk} is of this config version but is not evidence for the bot as it is: {words}" in detail
    )


def test_higher_costs_than_sim_are_still_evidence(token_client: Any) -> None:
    bot = BotFactory()
    BacktestFactory(bot=bot, fill_model={"slippage_ticks": 2, "commission_per_contract": "1.20"})
    assert _promote(token_client("operator"), bot).status_code == 200


def test_the_instrument_changed_without_a_new_version_is_caught(token_client: Any) -> None:
    client = token_client("operator")
    bot = BotFactory()
    BacktestFactory(bot=bot)
    assert client.patch(f"/api/bots/{bot.pk}", {"instrument": "MNQ"}, format="json").status_code == 200
    bot.refresh_from_db()
    assert bot.config_version == 1  # an instrument change is not a config version
    assert "the bot now trades trend_following on MNQ 5m" in _gate(client, bot)["detail"]


@pytest.mark.parametrize("status", [Backtest.Status.QUEUED, Backtest.Status.RUNNING])
def test_a_backtest_still_running_is_named_as_pending(token_client: Any, status: str) -> None:
    bot = BotFactory()
    pending = BacktestFactory(bot=bot, status=status, progress=0.42, finished_at=None, trading_days=None)
    detail = _gate(token_client("operator"), bot)["detail"]
    assert f"Backtest {pending.pk} (2025-09-01 00:00 UTC to 2025-10-27 00:00 UTC) is {status} (42%)" in detail
    assert "the gate reads it once it has succeeded" in detail


def test_a_failed_attempt_is_named_with_its_error(token_client: Any) -> None:
    bot = BotFactory()
    failed = BacktestFactory(
        bot=bot,
        status=Backtest.Status.FAILED,
        error={"error_code": "DATA_UNAVAILABLE", "message": "MES 5m: 12 bar(s) are missing"},
    )
    detail = _gate(token_client("operator"), bot)["detail"]
    assert (
        f"The newest attempt, backtest {failed.pk}, FAILED (DATA_UNAVAILABLE: MES 5m: 12 bar(s) are missing)." in detail
    )


def test_another_bots_backtest_is_not_evidence(token_client: Any) -> None:
    bot = BotFactory()
    BacktestFactory(bot=BotFactory(parameters=dict(bot.parameters)))
    assert _gate(token_client("operator"), bot)["detail"].startswith("no backtest of")


def test_a_real_backtest_rejected_by_its_figures_fails_the_gate_naming_it(
    token_client: Any, provider_stub: Any, settings: Any
) -> None:
    """Through the API and the job, the real engine and metrics: thresholds no result can meet."""
    settings.BACKTEST_CLASSIFICATION = {
        "min_trades": 1,
        "min_trading_days": 1,
        "min_profit_factor": "1",
        "min_expectancy": "1000000",
        "max_drawdown_pct": "20",
    }
    settings.BACKTEST_GATE_MIN_TRADING_DAYS = 1
    provider_stub("databento")
    client = token_client("operator")
    limits = {"max_position_contracts": 1, "max_daily_loss": 5000.0, "max_orders_per_day": 2760}
    bot = BotFactory(timeframe="1m", risk_limits=limits, parameters=strategy_body()["parameters"])
    created = client.post(
        "/api/backtests", {"bot_id": bot.pk, "start": START.isoformat(), "end": END.isoformat()}, format="json"
    )
    assert created.status_code == 202, created.json()
    backtest_id = created.json()["id"]
    run_job(backtest_id)
    backtest = Backtest.objects.get(pk=backtest_id)
    assert backtest.status == "SUCCEEDED" and backtest.metrics["trades"] > 0, backtest.decisions
    assert backtest.classification["verdict"] == "REJECTED"
    detail = _gate(client, bot)["detail"]
    assert f"backtest {backtest_id} " in detail and "it is REJECTED (expectancy " in detail
    assert "at least 1,000,000.00 USD needed" in detail

    settings.BACKTEST_CLASSIFICATION = {**settings.BACKTEST_CLASSIFICATION, "min_expectancy": "0"}
    # The verdict is the one stored when it ran: changing the thresholds judges new backtests only.
    assert "it is REJECTED" in _gate(client, bot)["detail"]
