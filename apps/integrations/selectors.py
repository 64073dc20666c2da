"""Reads for the Connections tab, the Keys Needed checklist and the status endpoints.
Every figure comes from a query; an unknown is None, never a made-up 0."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.core.db import fetch_prepared
from apps.integrations import credentials as creds
from apps.integrations import registry
from apps.integrations.errors import fix_for
from apps.integrations.models import StoredCredential
from apps.integrations.registry import CATEGORY_LABELS, Category, ProviderSpec
from apps.telemetry.models import IntegrationUsageEvent, IntegrationUsageRollup

# Names of the status snapshots (apps/core/snapshots.py), invalidated by the services that change them.
SNAPSHOT_INTEGRATIONS = "integrations-status"
SNAPSHOT_SYSTEM = "system-status"

# One round trip for every provider's latest event, latest verify and exact 24 h count. The LATERAL
# subqueries walk the (provider, created_at) indexes from the newest row. The count is exact: whole
# hours from the hourly rollup, the partial hour at the window's start from 5-minute buckets, and
# the partial 5 minutes before those from the events themselves — at most 24 + 11 rollup rows and
# 5 minutes of events per provider, whatever the volume.
_USAGE_SUMMARY_SQL = """
SELECT p.provider,
       latest.created_at, latest.status, latest.error_code, latest.operation,
       verify.created_at, verify.status, verify.error_code,
       (SELECT coalesce(sum(r.calls), 0) FROM telemetry_integrationusagerollup r
         WHERE r.provider = p.provider AND r.granularity = 3600 AND r.bucket_start >= %(hour_from)s)
     + (SELECT coalesce(sum(r.calls), 0) FROM telemetry_integrationusagerollup r
         WHERE r.provider = p.provider AND r.granularity = 300
           AND r.bucket_start >= %(fine_from)s AND r.bucket_start < %(hour_from)s)
     + (SELECT count(*) FROM telemetry_integrationusageevent c
         WHERE c.provider = p.provider AND c.created_at >= %(cutoff)s AND c.created_at < %(fine_from)s)
  FROM unnest(%(providers)s::text[]) AS p(provider)
  LEFT JOIN LATERAL (
        SELECT created_at, status, error_code, operation FROM telemetry_integrationusageevent e
         WHERE e.provider = p.provider ORDER BY e.created_at DESC LIMIT 1) latest ON TRUE
  LEFT JOIN LATERAL (
        SELECT created_at, status, error_code FROM telemetry_integrationusageevent v
         WHERE v.provider = p.provider AND v.operation = 'verify' ORDER BY v.created_at DESC LIMIT 1) verify ON TRUE
"""


def _ceil_to(moment: datetime, seconds: int) -> datetime:
    return datetime.fromtimestamp(math.ceil(moment.timestamp() / seconds) * seconds, tz=UTC)


def _usage_summary(providers: list[str], now: datetime) -> dict[str, dict[str, Any]]:
    cutoff = now - timedelta(hours=24)
    params = {
        "cutoff": cutoff,
        "fine_from": _ceil_to(cutoff, IntegrationUsageRollup.FINE_SECONDS),
        "hour_from": _ceil_to(cutoff, IntegrationUsageRollup.COARSE_SECONDS),
        "providers": providers,
    }
    rows = fetch_prepared(_USAGE_SUMMARY_SQL, params)  # planning it costs as much as running it
    out = {}
    for provider, l_at, l_status, l_code, l_op, v_at, v_status, v_code, count in rows:
        out[provider] = {
            "last_used_at": l_at,
            "last_status": l_status,
            "last_error_code": l_code or None,
            "last_operation": l_op,
            "last_verified_at": v_at,
            "last_verify_ok": (v_status == "ok") if v_status else None,
            "last_verify_error_code": v_code or None,
            "proof_of_use_count_24h": int(count),
        }
    return out


def _env_var_rows(spec: ProviderSpec, sources: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "provider": spec.provider,
            "required": name in spec.required_env_vars,
            "present": sources.get(name) is not None,
            "source": sources.get(name),
            "what_it_unlocks": spec.var_help.get(name)
            or (
                "where to send this provider's calls (tests point it at a stub)"
                if name == spec.base_url_var
                else spec.used_for
            ),
            "docs_url": spec.docs_url,
        }
        for name in spec.all_env_vars
    ]


def integration_status_list(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per provider (SPEC §3 `GET /api/integrations/status`)."""
    now = now or timezone.now()
    fresh = timedelta(seconds=settings.INTEGRATIONS_CONNECTED_FRESH_SECONDS)
    stored_names = set(StoredCredential.objects.values_list("name", flat=True))
    usage = _usage_summary(list(registry.PROVIDERS), now)
    rows = []
    for spec in registry.PROVIDERS.values():
        sources = creds.sources_only(spec, stored_names=stored_names)
        missing = [n for n in spec.required_env_vars if sources.get(n) is None]
        configured = not missing
        u = usage[spec.provider]
        last_ok = u["last_status"] == "ok"
        connected = configured and last_ok and u["last_used_at"] is not None and now - u["last_used_at"] <= fresh
        if not configured:
            error_code = "INTEGRATION_KEY_MISSING"
        elif u["last_used_at"] is None:
            error_code = "INTEGRATION_NOT_CONNECTED"  # configured, never verified nor used
        elif not last_ok:
            error_code = u["last_error_code"] or "INTEGRATION_VERIFY_FAILED"
        elif not connected:
            error_code = "INTEGRATION_NOT_CONNECTED"  # the last success is too old
        else:
            error_code = None
        rows.append(
            {
                "provider": spec.provider,
                "label": spec.label,
                "category": spec.category.value,
                "optional": spec.optional,
                "configured": configured,
                "connected": connected,
                "last_verified_at": u["last_verified_at"],
                "last_verify_ok": u["last_verify_ok"],
                "last_used_at": u["last_used_at"],
                "proof_of_use_count_24h": u["proof_of_use_count_24h"],
                "missing_env_vars": missing,
                "error_code": error_code,
                "suggested_fix": fix_for(error_code, spec.provider) if error_code else None,
                "supports_verify": spec.supports_verify,
                "used_for": spec.used_for,
                "docs_url": spec.docs_url,
                "env_vars": _env_var_rows(spec, sources),
            }
        )
    return rows


def registry_list() -> list[dict[str, Any]]:
    return [
        {
            "provider": s.provider,
            "label": s.label,
            "category": s.category.value,
            "required_env_vars": list(s.required_env_vars),
            "optional_env_vars": list(s.optional_env_vars),
            "supports_verify": s.supports_verify,
            "docs_url": s.docs_url,
            "used_for": s.used_for,
        }
        for s in registry.PROVIDERS.values()
    ]


def keys_needed() -> list[dict[str, Any]]:
    """The Keys Needed checklist, grouped by category, generated from the registry."""
    stored_names = set(StoredCredential.objects.values_list("name", flat=True))
    groups: dict[Category, list[dict[str, Any]]] = {c: [] for c in Category}
    for spec in registry.PROVIDERS.values():
        sources = creds.sources_only(spec, stored_names=stored_names)
        groups[spec.category].extend(_env_var_rows(spec, sources))
    return [
        {
            "category": category.value,
            "label": CATEGORY_LABELS[category],
            "variables": variables,
            "missing_required": [v["name"] for v in variables if v["required"] and not v["present"]],
        }
        for category, variables in groups.items()
    ]


def usage_event_list(*, provider: str | None = None, bot_id: int | None = None, limit: int = 50) -> list[Any]:
    qs = IntegrationUsageEvent.objects.all()
    if provider:
        qs = qs.filter(provider=provider)
    if bot_id is not None:
        qs = qs.filter(bot_id=bot_id)
    return list(qs.order_by("-created_at", "-id")[: max(1, min(limit, 500))])


def _issue(code: str, component: str, message: str, fix: str, **extra: Any) -> dict[str, Any]:
    item = {"code": code, "component": component, "message": message, "suggested_fix": fix}
    item.update({k: v for k, v in extra.items() if v is not None})
    return item


def _queue_depth() -> int | None:
    """Messages waiting in the default Celery queue; None when Redis cannot be asked."""
    from apps.core import health

    try:
        return int(health.redis_client().llen("celery"))
    except Exception:
        return None


def _lifecycle_counts() -> dict[str, Any]:
    """bots/runners sections from their tables once those apps are installed; empty before (there
    is nothing to count, and the page says so rather than showing zeros)."""
    from django.apps import apps as django_apps

    out: dict[str, Any] = {
        "bots": {"byAutonomyTier": {}, "byStage": {}, "available": False},
        "runners": {"byStatus": {}, "available": False},
    }
    if django_apps.is_installed("apps.bots"):
        from django.db.models import Count

        Bot = django_apps.get_model("bots", "Bot")
        out["bots"] = {
            "byAutonomyTier": dict(Bot.objects.values_list("autonomy_tier").annotate(n=Count("id")).order_by()),
            "byStage": dict(Bot.objects.values_list("stage").annotate(n=Count("id")).order_by()),
            "available": True,
        }
    if django_apps.is_installed("apps.runners"):
        from django.db.models import Count

        Runner = django_apps.get_model("runners", "Runner")
        out["runners"] = {
            "byStatus": dict(Runner.objects.values_list("status").annotate(n=Count("id")).order_by()),
            "available": True,
        }
        # A running bot whose last tick could not get its data (the tick writes last_error).
        out["degraded_runners"] = list(
            Runner.objects.filter(status="RUNNING")
            .exclude(last_error="")
            .order_by("bot_id")
            .values("id", "bot_id", "last_error", "last_tick_at")[:50]
        )
    return out


def system_status() -> dict[str, Any]:
    """The verdict of SPEC §3 `GET /api/system/status`, computed from rows and probes, never set.

    BLOCKED: nothing can run (no market-data provider configured and verified, scheduler silent,
    broker transport down). DEGRADED: something a bot needs is missing or stale. OK: everything
    a non-retired bot needs is configured and verified, scheduler and supervisor alive."""
    from apps.core import health
    from apps.core.context import ensure_trace_id
    from apps.telemetry.selectors import scheduler_state

    now = timezone.now()
    rows = integration_status_list(now=now)
    blockers: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []  # each may carry "degrades": whether it costs OK

    redis = health.check_redis()
    if not redis["ok"]:
        blockers.append(
            _issue(
                "BROKER_UNAVAILABLE",
                "redis",
                f"TradeOps cannot reach Redis, its task broker ({redis['error']}).",
                "Start Redis or fix REDIS_URL (`make run` starts the embedded one when REDIS_URL is unset).",
            )
        )

    scheduler = scheduler_state()
    if scheduler["status"] != "ok":
        blockers.append(
            _issue(
                "SCHEDULER_UNAVAILABLE",
                "scheduler",
                " ".join(scheduler["reasons"]),
                "Start Celery beat and at least one worker (`make run` starts both), then wait for their heartbeats.",
            )
        )

    market = [r for r in rows if r["category"] == Category.MARKET_DATA]
    if not any(r["configured"] for r in market):
        missing = [v for r in market for v in r["missing_env_vars"]]
        blockers.append(
            _issue(
                "INTEGRATION_KEY_MISSING",
                "market_data",
                "No market-data provider is configured: no bot can get real bars.",
                f"Enter one of {', '.join(missing)} on the Connections page (or in the environment), then Verify.",
                missing_env_vars=missing,
            )
        )
    elif not any(r["connected"] for r in market):
        failing = [r for r in market if r["configured"]]
        blockers.append(
            _issue(
                "INTEGRATION_NOT_CONNECTED",
                "market_data",
                "A market-data provider is configured but none is verified: "
                + "; ".join(f"{r['provider']}: {r['error_code']}" for r in failing),
                failing[0]["suggested_fix"] or "Verify it on the Connections page.",
            )
        )

    for r in rows:
        if r["category"] in (Category.MARKET_DATA, Category.INFRA):
            if r["configured"] and not r["connected"] and r["category"] == Category.INFRA:
                warnings.append(
                    _issue(
                        r["error_code"],
                        r["provider"],
                        f"{r['label']} has not been verified recently.",
                        r["suggested_fix"],
                        degrades=False,
                    )
                )
            continue
        if not r["configured"]:
            warnings.append(
                _issue(
                    "INTEGRATION_KEY_MISSING",
                    r["provider"],
                    f"{r['label']} is not configured ({r['used_for']}).",
                    r["suggested_fix"],
                    missing_env_vars=r["missing_env_vars"],
                    degrades=False,
                )
            )
        elif not r["connected"]:
            warnings.append(
                _issue(
                    r["error_code"],
                    r["provider"],
                    f"{r['label']} is configured but not connected.",
                    r["suggested_fix"],
                    degrades=False,
                )
            )

    supervisor_last_run_at = None  # the autonomy supervisor is not built yet
    warnings.append(
        _issue(
            "SUPERVISOR_UNAVAILABLE",
            "supervisor",
            "The autonomy supervisor has not run.",
            "Nothing to do: TradeOps has no autonomy supervisor yet, so autonomy stays off and the status is at "
            "best DEGRADED; bots still run at the stage an operator gives them.",
            degrades=True,
        )
    )

    lifecycle = _lifecycle_counts()
    for runner in lifecycle.pop("degraded_runners", []):
        code = runner["last_error"].split(":", 1)[0]
        warnings.append(
            _issue(
                code,
                f"runner:{runner['id']}",
                f"Bot {runner['bot_id']} is running but not trading: {runner['last_error'][:300]}",
                "Open the bot's page: its latest decision trace says what is missing (data provider, freshness).",
                degrades=True,
            )
        )

    if blockers:
        verdict = "BLOCKED"
    elif any(w.get("degrades") for w in warnings):
        verdict = "DEGRADED"
    else:
        verdict = "OK"
    return {
        "status": verdict,
        "autonomy_allowed": verdict == "OK",
        "blockers": blockers,
        "warnings": warnings,
        "integrations": {
            "total": len(rows),
            "configured": sum(r["configured"] for r in rows),
            "connected": sum(r["connected"] for r in rows),
            "providers": {
                r["provider"]: {
                    "configured": r["configured"],
                    "connected": r["connected"],
                    "error_code": r["error_code"],
                }
                for r in rows
            },
        },
        "bots": lifecycle["bots"],
        "runners": lifecycle["runners"],
        "scheduler": {
            "status": scheduler["status"],
            "beat_last_seen_at": scheduler["beat_last_seen_at"],
            "workers": [
                {"instance": w["instance"], "alive": w["alive"], "last_seen_at": w["last_seen_at"]}
                for w in scheduler["workers"]
            ],
            "supervisor_last_run_at": supervisor_last_run_at,
            "queue_depth": _queue_depth() if redis["ok"] else None,
        },
        "checked_at": now,
        "trace_id": ensure_trace_id(),
    }
