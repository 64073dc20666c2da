"""Reads for the Connections tab, the Keys Needed checklist and the status endpoints.
Every figure comes from a query; an unknown is None, never a made-up 0."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.core.db import fetch_prepared
from apps.integrations import credentials as creds
from apps.integrations import registry
from apps.integrations.errors import fix_for
from apps.integrations.models import IntegrationCheck, StoredCredential
from apps.integrations.registry import CATEGORY_LABELS, Category, ProviderSpec
from apps.telemetry.models import IntegrationUsageEvent, IntegrationUsageRollup

# Names of the status snapshots (apps/core/snapshots.py), invalidated by the services that change them.
SNAPSHOT_INTEGRATIONS = "integrations-status"
SNAPSHOT_SYSTEM = "system-status"

INFRA_PROVIDERS = ("postgres", "redis")

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


def _checks() -> dict[str, IntegrationCheck]:
    return {c.provider: c for c in IntegrationCheck.objects.all()}


def integration_status_list(*, now: datetime | None = None, probe_infra: bool = False) -> list[dict[str, Any]]:
    """One row per provider (SPEC §3 `GET /api/integrations/status`).

    `connected`: configured, and the newest outcome is a success within
    INTEGRATIONS_CONNECTED_FRESH_SECONDS. The newest outcome is the newer of the provider's durable
    check (its last Verify or infrastructure probe, written before the verify answered) and its
    newest usage event (a real call; the events are written behind, so a verify's own event may
    not be there yet: the durable check does not wait for it). `probe_infra`: probe Redis and
    PostgreSQL first (metered and recorded, apps/integrations/infra.py), so their rows say what
    they are now."""
    if probe_infra:
        from apps.integrations import infra

        for provider in INFRA_PROVIDERS:
            infra.probe(provider)
    now = now or timezone.now()
    fresh = timedelta(seconds=settings.INTEGRATIONS_CONNECTED_FRESH_SECONDS)
    stored_names = set(StoredCredential.objects.values_list("name", flat=True))
    usage = _usage_summary(list(registry.PROVIDERS), now)
    checks = _checks()
    rows = []
    for spec in registry.PROVIDERS.values():
        sources = creds.sources_only(spec, stored_names=stored_names)
        missing = [n for n in spec.required_env_vars if sources.get(n) is None]
        configured = not missing
        u = usage[spec.provider]
        check = checks.get(spec.provider)
        if check is not None:
            verified_at, verify_ok = check.checked_at, check.ok
            verify_error, verify_latency = check.error_code or None, check.latency_ms
        else:  # no durable check yet (a verify before it existed): the newest verify event
            verified_at, verify_ok = u["last_verified_at"], u["last_verify_ok"]
            verify_error, verify_latency = u["last_verify_error_code"], None
        # The newest outcome: the durable check, unless a real call came after it.
        if check is not None and (u["last_used_at"] is None or check.checked_at >= u["last_used_at"]):
            outcome_at, outcome_ok, outcome_error = check.checked_at, check.ok, check.error_code or None
        else:
            outcome_at, outcome_ok, outcome_error = u["last_used_at"], u["last_status"] == "ok", u["last_error_code"]
        stale = outcome_at is not None and outcome_ok and now - outcome_at > fresh
        connected = configured and outcome_at is not None and outcome_ok and not stale
        if not configured:
            error_code = "INTEGRATION_KEY_MISSING"
        elif outcome_at is None:
            error_code = "INTEGRATION_NOT_CONNECTED"  # configured, never verified nor used
        elif not outcome_ok:
            error_code = outcome_error or "INTEGRATION_VERIFY_FAILED"
        elif stale:
            error_code = "INTEGRATION_NOT_CONNECTED"  # the last success is too old
        else:
            error_code = None
        last_used = max((t for t in (u["last_used_at"], check.checked_at if check else None) if t), default=None)
        rows.append(
            {
                "provider": spec.provider,
                "label": spec.label,
                "category": spec.category.value,
                "optional": spec.optional,
                "configured": configured,
                "connected": connected,
                "stale": bool(configured and stale),
                "last_verified_at": verified_at,
                "last_verify_ok": verify_ok,
                "last_verify_error_code": verify_error,
                "last_verify_latency_ms": verify_latency,
                "last_check_operation": check.operation if check is not None else None,
                "last_used_at": last_used,
                "proof_of_use_count_24h": u["proof_of_use_count_24h"],
                "missing_env_vars": missing,
                "error_code": error_code,
                "suggested_fix": _fix(error_code, spec) if error_code else None,
                "supports_verify": spec.supports_verify,
                "accepts_keys": _accepts_keys(spec),
                "used_for": spec.used_for,
                "docs_url": spec.docs_url,
                "env_vars": _env_var_rows(spec, sources),
            }
        )
    return rows


def integration_summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The counts the Overview and the Connections page show: computed from the same rows as the
    cards, so they always agree with them."""
    return {
        "total": len(rows),
        "configured": sum(r["configured"] for r in rows),
        "connected": sum(r["connected"] for r in rows),
    }


def _accepts_keys(spec: ProviderSpec) -> bool:
    """Whether the Connections card offers an "Enter keys" form: never for infrastructure (its
    URLs come from the environment or the embedded servers), and not when no variable could be stored."""
    return spec.category != Category.INFRA and any(n not in registry.EMBEDDED_DEFAULTS for n in spec.all_env_vars)


def _fix(error_code: str, spec: ProviderSpec) -> str:
    if spec.category == Category.INFRA:
        return (
            f"Check that {spec.label} is running and that {spec.required_env_vars[0]} points at it "
            "(`make run` starts the embedded one when the variable is unset)."
        )
    return fix_for(error_code, spec.provider)


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


def _card_url(provider: str) -> str:
    return f"{reverse('connections:list')}#card-{provider}"


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


def _kill_all() -> dict[str, Any]:
    """The global kill latch (apps/trading/kill_switch.py), read by label: trading is a higher app."""
    from django.apps import apps as django_apps

    if not django_apps.is_installed("apps.trading"):
        return {"engaged": False, "since": None, "by": None, "reason": None}
    row = django_apps.get_model("trading", "KillSwitch").objects.filter(pk=1).first()
    if row is None or not row.engaged:
        return {
            "engaged": False,
            "since": None,
            "by": None,
            "reason": None,
            "released_at": row.released_at if row else None,
            "released_by": (row.released_by or None) if row else None,
        }
    return {"engaged": True, "since": row.engaged_at, "by": row.engaged_by or None, "reason": row.reason or None}


def _bot_needs() -> dict[str, list[dict[str, Any]]]:
    """provider → the non-retired bots that need it (SPEC §5: a bot needs its data provider; a LIVE
    bot also its broker), read by label (bots is a higher app). Same rule as the start gate
    (apps/runners/services/runners.py needed_integrations)."""
    from django.apps import apps as django_apps

    if not django_apps.is_installed("apps.bots"):
        return {}
    Bot = django_apps.get_model("bots", "Bot")
    needs: dict[str, list[dict[str, Any]]] = {}
    bots = (
        Bot.objects.exclude(stage="RETIRED")
        .order_by("name", "pk")
        .values("id", "name", "stage", "venue", "data_provider")
    )
    for bot in bots:
        who = {"id": bot["id"], "name": bot["name"], "stage": bot["stage"]}
        needs.setdefault(bot["data_provider"], []).append({**who, "as": "market data"})
        if bot["stage"] == "LIVE" and bot["venue"] != "sim":
            needs.setdefault(bot["venue"], []).append({**who, "as": "broker"})
    return needs


BOTS_NAMED = 5  # a blocker names this many bots in its message; `bots` lists up to 50


def _bot_blocker(row: dict[str, Any], bots: list[dict[str, Any]]) -> dict[str, Any]:
    """One blocker per needed provider that is not usable, naming the bots that need it."""
    if not row["configured"]:
        why = f"is not configured ({', '.join(row['missing_env_vars'])} missing)"
        fix = f"An admin enters {', '.join(row['missing_env_vars'])} on the {row['label']} card in Connections "
        fix += "(or sets them in the environment), then an operator presses Verify."
    elif row["stale"]:
        why = "has not answered a Verify or a call recently (its last success is too old)"
        fix = f"Press Verify on the {row['label']} card in Connections."
    elif row["last_verified_at"] is None and row["error_code"] == "INTEGRATION_NOT_CONNECTED":
        why = "is configured but has never been verified"
        fix = f"Press Verify on the {row['label']} card in Connections."
    else:
        why = f"failed its last check ({row['error_code']})"
        fix = row["suggested_fix"] or f"Check the keys on the {row['label']} card in Connections, then Verify."
    names = ", ".join(f"{b['name']} ({b['stage']}, needs it for {b['as']})" for b in bots[:BOTS_NAMED])
    more = f" and {len(bots) - BOTS_NAMED} more" if len(bots) > BOTS_NAMED else ""
    subject = f"Bot {names}" if len(bots) == 1 else f"{len(bots)} bots — {names}{more} —"
    return _issue(
        row["error_code"] or "INTEGRATION_NOT_CONNECTED",
        row["provider"],
        f"{subject} cannot run: {row['label']} {why}.",
        fix,
        scope="bot",
        bots=[{"id": b["id"], "name": b["name"], "stage": b["stage"], "needs_it_for": b["as"]} for b in bots[:50]],
        bot_count=len(bots),
        missing_env_vars=row["missing_env_vars"] or None,
        fix_url=_card_url(row["provider"]),
    )


def system_status(*, probes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The verdict of SPEC §3 `GET /api/system/status`, computed from rows and probes, never set.

    BLOCKED (a blocker with scope "system"): nothing can run — kill-all engaged, Redis (the task
    broker) or PostgreSQL unreachable, the scheduler silent, or no market-data provider configured
    and verified. DEGRADED: some bots can run, but something a non-retired bot needs (its data
    provider; its broker when LIVE) is missing, unverified or stale — a blocker with scope "bot"
    naming the bots, the provider and the fix — or a degrading warning (the autonomy supervisor,
    a running bot that cannot get its data). OK: none of these.

    `probes`: Redis and PostgreSQL probes the caller already ran through integrations.infra.probe
    (the Overview does); otherwise they are run here (metered, recorded)."""
    from apps.core.context import ensure_trace_id
    from apps.integrations import infra
    from apps.telemetry.selectors import scheduler_state

    probes = dict(probes or {})
    for provider in INFRA_PROVIDERS:
        if provider not in probes:
            probes[provider] = infra.probe(provider)
    now = timezone.now()
    rows = integration_status_list(now=now)
    by_provider = {r["provider"]: r for r in rows}
    blockers: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []  # each may carry "degrades": whether it costs OK

    kill_all = _kill_all()
    if kill_all["engaged"]:
        since = kill_all["since"].isoformat() if kill_all["since"] else "an unknown time"
        blockers.append(
            _issue(
                "KILL_ALL_ENGAGED",
                "kill_switch",
                f"Kill-all was engaged at {since} by {kill_all['by'] or 'unknown'}: {kill_all['reason']}. "
                "No bot may start or send an order.",
                "When it is safe, an operator releases it with a reason (POST /api/system/kill-all/release). "
                "Bots that kill-all killed stay killed: unkill each one you want to run, from its page.",
                scope="system",
            )
        )

    redis = probes["redis"]
    if not redis["ok"]:
        blockers.append(
            _issue(
                "BROKER_UNAVAILABLE",
                "redis",
                f"TradeOps cannot reach Redis, its task broker ({redis['error']}).",
                "Start Redis or fix REDIS_URL (`make run` starts the embedded one when REDIS_URL is unset).",
                scope="system",
            )
        )
    if not probes["postgres"]["ok"]:
        blockers.append(
            _issue(
                "DATABASE_UNAVAILABLE",
                "postgres",
                f"TradeOps cannot reach PostgreSQL, its source of truth ({probes['postgres']['error']}).",
                "Start PostgreSQL or fix DATABASE_URL (`make run` starts the embedded one when it is unset).",
                scope="system",
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
                scope="system",
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
                f"An admin enters one of {', '.join(missing)} on its card in Connections (or sets it in "
                "the environment), then an operator presses Verify.",
                missing_env_vars=missing,
                scope="system",
                fix_url=reverse("connections:list"),
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
                failing[0]["suggested_fix"] or "Press Verify on its card in Connections.",
                scope="system",
                fix_url=_card_url(failing[0]["provider"]),
            )
        )

    needs = _bot_needs()
    for provider, bots in needs.items():
        row = by_provider.get(provider)
        if row is not None and not row["connected"]:
            blockers.append(_bot_blocker(row, bots))

    for r in rows:
        if r["category"] in (Category.MARKET_DATA, Category.INFRA) or r["provider"] in needs:
            continue  # market data and infrastructure are blockers above; a needed one is a bot blocker
        if not r["configured"]:
            warnings.append(
                _issue(
                    "INTEGRATION_KEY_MISSING",
                    r["provider"],
                    f"{r['label']} is not configured ({r['used_for']}); no bot needs it now.",
                    r["suggested_fix"],
                    missing_env_vars=r["missing_env_vars"],
                    degrades=False,
                    fix_url=_card_url(r["provider"]),
                )
            )
        elif not r["connected"]:
            warnings.append(
                _issue(
                    r["error_code"],
                    r["provider"],
                    f"{r['label']} is configured but not connected; no bot needs it now.",
                    r["suggested_fix"],
                    degrades=False,
                    fix_url=_card_url(r["provider"]),
                )
            )

    supervisor_last_run_at = None  # this version of TradeOps has no autonomy supervisor
    warnings.append(
        _issue(
            "SUPERVISOR_UNAVAILABLE",
            "supervisor",
            "No autonomy supervisor runs in this version of TradeOps, so autonomy stays off and the status is at "
            "best DEGRADED.",
            "Nothing to do for now: running bots keep to their risk limits, and the kill switch works without it. "
            "Watch running bots from their pages.",
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

    if any(b.get("scope") == "system" for b in blockers):
        verdict = "BLOCKED"
    elif blockers or any(w.get("degrades") for w in warnings):
        verdict = "DEGRADED"
    else:
        verdict = "OK"
    return {
        "status": verdict,
        "autonomy_allowed": verdict == "OK",
        "kill_all": kill_all,
        "blockers": blockers,
        "warnings": warnings,
        "integrations": {
            **integration_summary(rows),
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
