"""Reads of bots, and the promotion gate table (shared by promote and the bot page).

Runners live in a higher app: they are reached by their label, never imported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.utils import timezone

from apps.backtests.models import Backtest
from apps.bots.exceptions import BotNotFound, InvalidStageTransition
from apps.bots.models import Bot, BotConfigVersion
from apps.integrations.selectors import integration_status_list
from apps.trading import catalogue as strategies
from apps.trading import services as trading_services
from apps.trading.fills import FillModel

Stage = Bot.Stage

# The only promotions: one step up. Demotion goes to any lower stage, or to RETIRED.
PROMOTIONS: dict[str, str] = {Stage.LAB: Stage.PAPER, Stage.PAPER: Stage.LIVE}
STAGE_ORDER: dict[str, int] = {Stage.LAB: 0, Stage.PAPER: 1, Stage.LIVE: 2}

# The gate reads at most this many SUCCEEDED backtests of the current config version, newest first.
GATE_BACKTESTS_READ = 50

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


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _window(bt: Backtest) -> str:
    return f"{_when(bt.start)} to {_when(bt.end)}"


def _not_this_config(bt: Backtest, bot: Bot, sim: FillModel) -> str | None:
    """Why a backtest of the bot's current config version is still not evidence for the bot as it is
    now, or None. The version covers parameters and risk limits; strategy, instrument and timeframe
    may change without one, and a backtest may have run a matrix variant, its own risk limits or a
    cheaper fill model than SIM's."""
    if (bt.strategy_key, bt.instrument, bt.timeframe) != (bot.strategy_key, bot.instrument, bot.timeframe):
        return (
            f"it ran {bt.strategy_key} on {bt.instrument} {bt.timeframe}; the bot now trades "
            f"{bot.strategy_key} on {bot.instrument} {bot.timeframe}"
        )
    parameters = bot.parameters or {}
    if bt.parameters != parameters:
        changed = sorted(k for k in {*bt.parameters, *parameters} if bt.parameters.get(k) != parameters.get(k))
        return f"it ran other parameters ({', '.join(changed)})"
    if bt.risk_limits != (bot.risk_limits or {}):
        return "it ran with no risk checks" if bt.risk_limits is None else "it ran with other risk limits"
    try:
        slippage = int(bt.fill_model["slippage_ticks"])
        commission = Decimal(str(bt.fill_model["commission_per_contract"]))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return "its fill model is not recorded"
    if slippage < sim.slippage_ticks or commission < sim.commission_per_contract:
        return (
            f"it assumed lower costs ({slippage} tick(s) of slippage, {commission} USD commission) than the SIM "
            f"fill model ({sim.slippage_ticks}, {sim.commission_per_contract})"
        )
    return None


def _backtest_shortfalls(bt: Backtest, *, min_days: int, oldest: datetime) -> list[str]:
    """What keeps a matching SUCCEEDED backtest from passing the gate, in words (empty: it passes)."""
    problems = []
    verdict = (bt.classification or {}).get("verdict")
    if verdict != "PROMOTABLE":
        reasons = "; ".join(r.get("message", r.get("code", "")) for r in (bt.classification or {}).get("reasons", []))
        problems.append(f"it is {verdict or 'not classified'}" + (f" ({reasons})" if reasons else ""))
    if bt.trading_days is None:
        problems.append(f"the trading days it covers are not recorded ({min_days} needed)")
    elif bt.trading_days < min_days:
        problems.append(f"it covers {bt.trading_days} trading days, {min_days} needed")
    if bt.finished_at is None or bt.finished_at < oldest:
        problems.append(
            f"it finished {_when(bt.finished_at) if bt.finished_at else 'at an unknown time'}, more than "
            f"{settings.BACKTEST_GATE_MAX_AGE_DAYS} days ago"
        )
    return problems


def _backtest_gate(bot: Bot) -> dict[str, Any]:
    """LAB→PAPER: a SUCCEEDED backtest of the bot's current config, classified PROMOTABLE, covering at
    least BACKTEST_GATE_MIN_TRADING_DAYS trading days, finished within BACKTEST_GATE_MAX_AGE_DAYS.
    Passing, the detail names it; failing, it says what is missing and how to get it. A parameter or
    risk-limit change (a new config version) needs new evidence."""
    min_days = settings.BACKTEST_GATE_MIN_TRADING_DAYS
    oldest = timezone.now() - timedelta(days=settings.BACKTEST_GATE_MAX_AGE_DAYS)
    sim = trading_services.sim_fill_model()
    version = bot.config_version
    run_one = (
        f'Run one from the Backtests page, or POST /api/backtests with {{"bot_id": {bot.pk}, "start", "end"}} '
        f"over at least {min_days} trading days."
    )
    mine = Backtest.objects.filter(bot_id=bot.pk, config_version=version).order_by("-created_at", "-id")
    succeeded = list(
        mine.filter(status=Backtest.Status.SUCCEEDED).order_by("-finished_at", "-id")[:GATE_BACKTESTS_READ]
    )
    matching, other = [], []
    for bt in succeeded:
        why = _not_this_config(bt, bot, sim)
        (other if why else matching).append((bt, why))
    for bt, _ in matching:
        if not _backtest_shortfalls(bt, min_days=min_days, oldest=oldest):
            metrics = bt.metrics or {}
            newer = [b for b, _ in matching if b.finished_at and bt.finished_at and b.finished_at > bt.finished_at]
            note = ""
            if newer:
                listed = ", ".join(
                    f"{b.pk} ({(b.classification or {}).get('verdict') or 'not classified'})" for b in newer
                )
                note = f" Newer backtests of this config that do not qualify: {listed}."
            return _gate(
                "backtest_promotable",
                True,
                f"backtest {bt.pk} of config v{version} is PROMOTABLE: {bt.strategy_key} on {bt.instrument} "
                f"{bt.timeframe} from {_window(bt)}, {bt.trading_days} trading days, {metrics.get('trades')} trades, "
                f"expectancy {metrics.get('expectancy')} USD, profit factor {metrics.get('profit_factor')}, "
                f"finished {_when(bt.finished_at)}.{note}",
            )
    if matching:
        newest = matching[0][0]
        detail = (
            f"the newest backtest of config v{version}, backtest {newest.pk} ({_window(newest)}, finished "
            f"{_when(newest.finished_at) if newest.finished_at else 'at an unknown time'}), does not qualify: "
            + "; ".join(_backtest_shortfalls(newest, min_days=min_days, oldest=oldest))
            + "."
        )
        promotable = next((b for b, _ in matching[1:] if (b.classification or {}).get("verdict") == "PROMOTABLE"), None)
        if promotable is not None:
            detail += (
                f" Backtest {promotable.pk} is PROMOTABLE but "
                + "; ".join(_backtest_shortfalls(promotable, min_days=min_days, oldest=oldest))
                + "."
            )
        return _gate("backtest_promotable", False, f"{detail} {run_one}")

    parts = [f"no backtest of {bot.name}'s current config (v{version}) has succeeded."]
    open_one = mine.filter(status__in=[Backtest.Status.QUEUED, Backtest.Status.RUNNING]).first()
    if open_one is not None:
        parts.append(
            f"Backtest {open_one.pk} ({_window(open_one)}) is {open_one.status} ({open_one.progress:.0%}): "
            "the gate reads it once it has succeeded."
        )
    failed = mine.filter(status=Backtest.Status.FAILED).first()
    if failed is not None and open_one is None:
        error = failed.error or {}
        parts.append(
            f"The newest attempt, backtest {failed.pk}, FAILED"
            + (f" ({error.get('error_code')}: {error.get('message')})" if error else "")
            + "."
        )
    if other:
        bt, why = other[0]
        parts.append(f"Backtest {bt.pk} is of this config version but is not evidence for the bot as it is: {why}.")
    earlier = (
        Backtest.objects.filter(bot_id=bot.pk, status=Backtest.Status.SUCCEEDED, config_version__lt=version)
        .order_by("-config_version", "-finished_at", "-id")
        .first()
    )
    if earlier is not None:
        parts.append(
            f"Backtest {earlier.pk} is of config v{earlier.config_version}; the parameters or risk limits have "
            f"changed since (now v{version}), so it is not evidence for this config."
        )
    parts.append(run_one)
    return _gate("backtest_promotable", False, " ".join(parts))


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
