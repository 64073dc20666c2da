"""Reads of runners, and the bot page's read: one bot with its runner, recent jobs, config
versions, audit trail, why it traded or not, orders in doubt and its performance, plus whether
any of it can change without anyone acting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.bots import selectors as bot_selectors
from apps.bots.models import Bot, BotConfigVersion
from apps.market.selectors import latest_bar
from apps.runners.models import Job, Runner
from apps.runners.selectors.jobs import PENDING_STATUSES, job_list
from apps.telemetry.models import AuditEvent, DecisionTrace
from apps.telemetry.selectors import audit_event_list, blocking_reasons, decision_trace_list
from apps.trading.models import Order, TradingState
from apps.trading.selectors import bot_performance

ACTIVE_STATUSES = (Runner.Status.STARTING, Runner.Status.RUNNING, Runner.Status.STOPPING)


def runner_list(*, status: str | None = None) -> QuerySet[Runner]:
    """Every runner with its bot, by bot name (one runner per bot)."""
    runners = Runner.objects.select_related("bot").order_by("bot__name", "id")
    if status:
        runners = runners.filter(status=status)
    return runners


def runner_activity(*, bot_id: int | None = None) -> bool:
    """Whether the runners (or one bot's runner) can change without anyone acting: a runner is
    STARTING, RUNNING or STOPPING, or a job of a runner is queued, leased or due for a retry.
    A STOPPED or FAILED runner with nothing pending stays as it is until someone acts."""
    runners = Runner.objects.filter(status__in=ACTIVE_STATUSES)
    jobs = Job.objects.filter(status__in=PENDING_STATUSES, runner__isnull=False)
    if bot_id:
        runners, jobs = runners.filter(bot_id=bot_id), jobs.filter(runner__bot_id=bot_id)
    return runners.exists() or jobs.exists()


@dataclass
class BotRuntime:
    bot: Bot
    runner: Runner | None
    jobs: list[Job]
    events: list[AuditEvent]
    config_versions: list[BotConfigVersion]
    promote_to: str | None  # the one promotion from the bot's stage, if any
    override_possible: bool  # an admin may force that promotion past its overridable gates
    demote_targets: list[str]
    in_motion: bool  # runner_activity for this bot
    traded: list[DecisionTrace]  # "why it traded": the latest TRADE traces
    not_traded: list[DecisionTrace]  # "why it is not trading": the latest NO_TRADE traces
    blocking: list[dict[str, Any]]  # NO_TRADE reasons over 24 h, most frequent first
    unknown_orders: list[Order]  # orders whose fate only reconcile can settle
    trading_state: str  # ACTIVE (no row yet), REDUCING or HALTED
    performance: dict[str, Any]


def bot_runtime_get(*, bot_id: int, job_limit: int = 10, event_limit: int = 25, trace_limit: int = 5) -> BotRuntime:
    """Raises BotNotFound for an unknown id."""
    bot = bot_selectors.bot_get(bot_id=bot_id)
    latest = latest_bar(instrument=bot.instrument, timeframe=bot.timeframe)
    runner: Runner | None = getattr(bot, "runner", None)  # select_related by bot_get; None: never started
    promote_to = bot_selectors.PROMOTIONS.get(bot.stage)
    return BotRuntime(
        bot=bot,
        runner=runner,
        jobs=list(job_list(runner_id=runner.pk)[:job_limit]) if runner is not None else [],
        events=audit_event_list(target_type=bot._meta.label_lower, target_id=bot.pk, limit=event_limit),
        config_versions=bot_selectors.bot_config_version_list(bot=bot, limit=5),
        promote_to=promote_to,
        override_possible=bool(promote_to and bot_selectors.OVERRIDABLE_GATES.get((bot.stage, promote_to))),
        demote_targets=bot_selectors.bot_demotion_targets(bot),
        in_motion=runner_activity(bot_id=bot.pk),
        traded=list(decision_trace_list(bot_id=bot.pk, outcome=DecisionTrace.Outcome.TRADE)[:trace_limit]),
        not_traded=list(decision_trace_list(bot_id=bot.pk, outcome=DecisionTrace.Outcome.NO_TRADE)[:trace_limit]),
        blocking=blocking_reasons(bot_id=bot.pk, since=timezone.now() - timedelta(hours=24))[:8],
        unknown_orders=list(Order.objects.filter(bot_id=bot.pk, status=Order.Status.UNKNOWN).order_by("created_at")),
        trading_state=TradingState.objects.filter(bot_id=bot.pk).values_list("state", flat=True).first() or "ACTIVE",
        performance=bot_performance(
            bot_id=bot.pk, mark=latest.close if latest else None, mark_at=latest.ts if latest else None
        ),
    )
