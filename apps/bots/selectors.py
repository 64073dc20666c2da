"""Reads of bots, and the promotion gate table (shared by promote and the bot page).

Runners live in a higher app: they are reached by their label, never imported."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet

from apps.bots import strategies
from apps.bots.exceptions import BotNotFound, InvalidStageTransition
from apps.bots.models import Bot, BotConfigVersion
from apps.integrations.selectors import integration_status_list

Stage = Bot.Stage

# The only promotions: one step up. Demotion goes to any lower stage, or to RETIRED.
PROMOTIONS: dict[str, str] = {Stage.LAB: Stage.PAPER, Stage.PAPER: Stage.LIVE}
STAGE_ORDER: dict[str, int] = {Stage.LAB: 0, Stage.PAPER: 1, Stage.LIVE: 2}

# LAB→PAPER may be forced past these by an admin (PAPER is simulated money). PAPER→LIVE: nothing.
OVERRIDABLE_GATES: dict[tuple[str, str], frozenset[str]] = {
    (Stage.LAB, Stage.PAPER): frozenset({"backtest_promotable"}),
}


def bot_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Bot]:
    """Every bot, by name then id (a stable order for pagination). Filters: stage, autonomy_tier,
    venue, instrument, strategy_key, killed; a None value means "any"."""
    qs = Bot.objects.select_related("runner").order_by("name", "id")
    for key, value in (filters or {}).items():
        if value is not None:
            qs = qs.filter(**{key: value})
    return qs


def bot_get(*, bot_id: int) -> Bot:
    bot = Bot.objects.select_related("runner").filter(pk=bot_id).first()
    if bot is None:
        raise BotNotFound(f"No bot has id {bot_id}.")
    return bot


def bot_config_version_list(*, bot: Bot, limit: int = 20) -> list[BotConfigVersion]:
    """The newest config versions first (version 1 is the one written at create)."""
    return list(bot.config_versions.order_by("-version")[:limit])


def bot_runner_status(bot: Bot) -> str | None:
    """The runner's status from the reverse one-to-one, or None when the bot never had a runner."""
    try:
        return bot.runner.status  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return None


def bot_demotion_targets(bot: Bot) -> list[str]:
    if bot.stage == Stage.RETIRED:
        return []
    return [s for s, order in STAGE_ORDER.items() if order < STAGE_ORDER[bot.stage]] + [Stage.RETIRED]


def _gate(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "passed": passed, "detail": detail}


def _strategy_gate(bot: Bot) -> dict[str, Any]:
    strategy = strategies.strategy_for(bot.strategy_key)
    if strategy is None:
        return _gate("strategy_valid", False, f"strategy {bot.strategy_key!r} is not in the strategy registry.")
    _, errors = strategies.parameter_errors(strategy, bot.parameters or {})
    if errors:
        problems = "; ".join(f"{k} {' '.join(v)}" for k, v in sorted(errors.items()))
        return _gate("strategy_valid", False, f"parameters do not fit {strategy.key}: {problems}")
    return _gate("strategy_valid", True, f"{strategy.key} with valid parameters (config v{bot.config_version}).")


def _kill_gate(bot: Bot) -> dict[str, Any]:
    if bot.killed:
        when = bot.killed_at.isoformat() if bot.killed_at else "an unknown time"
        return _gate(
            "not_killed",
            False,
            f"killed at {when} by {bot.killed_by or 'unknown'}: {bot.kill_reason}. An operator must unkill it first.",
        )
    return _gate("not_killed", True, "the kill latch is clear.")


def _backtest_gate(bot: Bot) -> dict[str, Any]:
    # Fails closed until the backtests app can answer; it never guesses.
    return _gate(
        "backtest_promotable",
        False,
        "no backtest has classified this strategy and config as promotable (TradeOps cannot run backtests "
        "yet), so there is no evidence that it earns money on real bars. An admin may override this gate "
        "for PAPER, which trades simulated money; the override is audited.",
    )


def _runner_gate(bot: Bot) -> dict[str, Any]:
    Runner = apps.get_model("runners", "Runner")
    status = Runner.objects.filter(bot_id=bot.pk).values_list("status", flat=True).first()
    if status is None:
        return _gate("runner_stopped", True, "the bot has no runner.")
    if status == Runner.Status.STOPPED:
        return _gate("runner_stopped", True, "the runner is STOPPED.")
    return _gate(
        "runner_stopped",
        False,
        f"the runner is {status}; stop it (POST /api/runners/stop) so that it restarts in LIVE mode.",
    )


def _broker_gate(bot: Bot) -> dict[str, Any]:
    if bot.venue == Bot.Venue.SIM:
        return _gate("broker_verified", False, "a LIVE bot needs a real broker venue (tradovate or ironbeam), not sim.")
    if not bot.broker_account:
        return _gate("broker_verified", False, f"no broker_account is set for {bot.venue}.")
    row = next((r for r in integration_status_list() if r["provider"] == bot.venue), None)
    if row is None:
        return _gate("broker_verified", False, f"{bot.venue} is not in the integrations registry.")
    if not row["configured"]:
        missing = ", ".join(row["missing_env_vars"])
        return _gate("broker_verified", False, f"{row['label']} is not configured: {missing} missing.")
    if not row["connected"]:
        return _gate(
            "broker_verified",
            False,
            f"{row['label']} is configured but not verified ({row['error_code']}): {row['suggested_fix']}",
        )
    verified = row["last_verified_at"].isoformat() if row["last_verified_at"] else "recently"
    return _gate(
        "broker_verified", True, f"{row['label']} configured and verified ({verified}), account {bot.broker_account}."
    )


def _risk_limits_gate(bot: Bot) -> dict[str, Any]:
    missing = strategies.missing_risk_limits(bot.risk_limits or {})
    if missing:
        return _gate("risk_limits_set", False, f"missing or not a positive number: {', '.join(missing)}.")
    limits = ", ".join(f"{k}={bot.risk_limits[k]}" for k in strategies.RISK_LIMITS if k in bot.risk_limits)
    return _gate("risk_limits_set", True, limits)


def _paper_evidence_gate(bot: Bot) -> dict[str, Any]:
    return _gate(
        "paper_evidence",
        False,
        "paper results are not recorded yet: TradeOps has no record of days, trades, expectancy and "
        "drawdown at PAPER to judge a LIVE promotion by, so this gate cannot pass yet.",
    )


def bot_promotion_gates(*, bot: Bot, to_stage: str) -> list[dict[str, Any]]:
    """The gate table for promoting bot to to_stage, each {"name", "passed", "detail"}, in the
    order an operator should fix them. Reads only; raises InvalidStageTransition for a move that
    is not a promotion. Gates whose evidence does not exist yet fail closed and say why."""
    if PROMOTIONS.get(bot.stage) != to_stage:
        raise InvalidStageTransition(stage_transition_refusal(bot.stage, to_stage))
    gates = [_strategy_gate(bot), _kill_gate(bot)]
    if to_stage == Stage.PAPER:
        gates.append(_backtest_gate(bot))
    else:
        gates += [_runner_gate(bot), _broker_gate(bot), _risk_limits_gate(bot), _paper_evidence_gate(bot)]
    return gates


def stage_transition_refusal(from_stage: str, to_stage: str) -> str:
    nxt = PROMOTIONS.get(from_stage)
    allowed = f"the only promotion from {from_stage} is to {nxt}" if nxt else f"{from_stage} cannot be promoted"
    return f"{from_stage}→{to_stage} is not a promotion: {allowed}."


def bot_runners_in_motion() -> bool:
    """True while any runner is STARTING, RUNNING or STOPPING, i.e. while a bot list's runner
    column can change without anyone acting (the bots page polls only then)."""
    Runner = apps.get_model("runners", "Runner")
    moving = [Runner.Status.STARTING, Runner.Status.RUNNING, Runner.Status.STOPPING]
    return Runner.objects.filter(status__in=moving).exists()
