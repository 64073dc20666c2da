from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from apps.telemetry.models import AuditEvent, ComponentHeartbeat, DecisionTrace


def _describe(hb: ComponentHeartbeat, now: Any, stale_after: timedelta) -> dict[str, Any]:
    alive = hb.stopped_at is None and now - hb.last_seen_at <= stale_after
    return {
        "instance": hb.instance,
        "alive": alive,
        "last_seen_at": hb.last_seen_at,
        "started_at": hb.started_at,
        "stopped_at": hb.stopped_at,
        "age_seconds": round((now - hb.last_seen_at).total_seconds(), 1),
        "details": hb.details,
    }


def scheduler_state() -> dict[str, Any]:
    """What the heartbeats say about beat and the workers, right now.

    `status` is "ok" only when beat and at least one worker are alive; "unavailable" otherwise,
    with `reasons`. Never seen is not the same as stopped: `last_seen_at` is None then."""
    now = timezone.now()
    stale_after = timedelta(seconds=settings.HEARTBEAT_STALE_AFTER_SECONDS)
    rows = list(ComponentHeartbeat.objects.all())
    by_component: dict[str, list[dict[str, Any]]] = {c.value: [] for c in ComponentHeartbeat.Component}
    for hb in rows:
        by_component.setdefault(hb.component, []).append(_describe(hb, now, stale_after))

    def latest(component: str) -> dict[str, Any] | None:
        items = by_component[component]
        return max(items, key=lambda d: d["last_seen_at"]) if items else None

    beat, queue = latest("beat"), latest("queue")
    workers = by_component["worker"]
    # Ticks and the periodic tasks go to the default queue; a worker of another queue only (the
    # `backtests` one) does not run them. A row without `queues` predates the field: default.
    default_queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    tick_workers = [w for w in workers if default_queue in (w["details"] or {}).get("queues", [default_queue])]
    reasons = []
    if beat is None:
        reasons.append("Celery beat has never reported a heartbeat.")
    elif not beat["alive"]:
        reasons.append(f"Celery beat last reported {beat['age_seconds']:.0f}s ago.")
    if not workers:
        reasons.append("No Celery worker has ever reported a heartbeat.")
    elif not any(w["alive"] for w in workers):
        reasons.append("No Celery worker has reported a heartbeat recently.")
    elif not any(w["alive"] for w in tick_workers):
        reasons.append(
            f"No Celery worker of the {default_queue!r} queue (ticks and periodic tasks) has reported a heartbeat "
            "recently; only workers of other queues are alive."
        )
    return {
        "status": "ok" if not reasons else "unavailable",
        "reasons": reasons,
        "beat": beat,
        "beat_last_seen_at": beat["last_seen_at"] if beat else None,
        "workers": workers,
        "workers_alive": sum(1 for w in workers if w["alive"]),
        "queue_probe": queue,
        "stale_after_seconds": settings.HEARTBEAT_STALE_AFTER_SECONDS,
        "checked_at": now,
    }


def audit_event_list(*, target_type: str, target_id: str | int, limit: int = 20) -> list[AuditEvent]:
    """The newest audit events about one thing (e.g. target_type "bots.bot" and its id): what was
    done to it and what was refused, each with its actor, reason and trace id."""
    events = AuditEvent.objects.filter(target_type=target_type, target_id=str(target_id))
    return list(events.order_by("-created_at", "-id")[:limit])


def decision_trace_list(*, bot_id: int, outcome: str | None = None) -> QuerySet[DecisionTrace]:
    """A bot's decision traces, newest first ("why traded" with outcome=TRADE, "why not" NO_TRADE)."""
    traces = DecisionTrace.objects.filter(bot_id=bot_id).order_by("-created_at", "-id")
    if outcome:
        traces = traces.filter(outcome=outcome)
    return traces


def blocking_reasons(*, bot_id: int, since: datetime) -> list[dict[str, Any]]:
    """Why a bot has not been trading: NO_TRADE traces since `since` counted by stage and reason, most first."""
    rows = (
        DecisionTrace.objects.filter(bot_id=bot_id, outcome=DecisionTrace.Outcome.NO_TRADE, created_at__gte=since)
        .values("stopped_at", "reason_code")
        .annotate(count=Count("id"), last_at=Max("created_at"))
        .order_by("-count", "-last_at")
    )
    return list(rows)


# Alerts (SPEC §11): the implementation is in apps/telemetry/alerts.py.
from apps.telemetry.alerts import alert_get, alert_list, alert_open_counts  # noqa: E402, F401
