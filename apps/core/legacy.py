"""The retired Supabase Edge Functions (original brief, Phase 2 decision table), as data.

Every call to /functions/v1/<name> or /rest/v1/rpc/<name> answers 410 EDGE_FUNCTION_RETIRED with
the TradeOps replacement, whatever the method, caller or body, and never acts. The same table
feeds `edge_audit` (SPEC §7).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum


class Classification(StrEnum):
    EXECUTION_CRITICAL = "EXECUTION_CRITICAL"
    STATE_MUTATING = "STATE_MUTATING"
    SIDE_EFFECT_ONLY = "SIDE_EFFECT_ONLY"
    UNUSED = "UNUSED"


class Decision(StrEnum):
    DELETE = "DELETE"
    MIGRATE = "MIGRATE"
    KEEP_AUTH_ONLY = "KEEP_AUTH_ONLY"


@dataclass(frozen=True)
class LegacyFunction:
    pattern: str  # a function name, or an fnmatch pattern for a family (backtest-*)
    classification: Classification
    decision: Decision
    replacement: str | None  # the canonical TradeOps endpoint; None where nothing is to be called
    note: str = ""


C, D = Classification, Decision
_INTERNAL = "Runs inside TradeOps (Celery workers and beat over the Postgres job ledger); nothing to call."

LEGACY_FUNCTIONS: tuple[LegacyFunction, ...] = (
    # DELETE: duplicates of what TradeOps already owns.
    LegacyFunction("kill-engine", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/bots/{id}/kill"),
    LegacyFunction("promote-bot", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/bots/{id}/promote"),
    LegacyFunction("promotion-engine", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/bots/{id}/promote"),
    LegacyFunction("demotion-engine", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/bots/{id}/demote"),
    LegacyFunction("runner-controller", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/runners/start"),
    LegacyFunction("start-runner", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/runners/start"),
    LegacyFunction("stop-runner", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/runners/stop"),
    LegacyFunction("restart-runner", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/runners/restart"),
    LegacyFunction("runner-heartbeat", C.EXECUTION_CRITICAL, D.DELETE, "GET /api/runners/{id}", _INTERNAL),
    LegacyFunction("job-dispatcher", C.EXECUTION_CRITICAL, D.DELETE, "GET /api/jobs", _INTERNAL),
    LegacyFunction("job-processor", C.EXECUTION_CRITICAL, D.DELETE, "GET /api/jobs", _INTERNAL),
    LegacyFunction("job-watchdog", C.EXECUTION_CRITICAL, D.DELETE, "GET /api/jobs", _INTERNAL),
    LegacyFunction("job-worker", C.EXECUTION_CRITICAL, D.DELETE, "GET /api/jobs", _INTERNAL),
    LegacyFunction("force-tick", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/runners/{id}/tick"),
    LegacyFunction("autonomy-watchdog", C.EXECUTION_CRITICAL, D.DELETE, "GET /api/bots/{id}/autonomy", _INTERNAL),
    LegacyFunction("system-proof", C.SIDE_EFFECT_ONLY, D.DELETE, "GET /api/system/status"),
    # UI call sites moved in Phase 0.
    LegacyFunction("create-starter-bots", C.STATE_MUTATING, D.DELETE, "POST /api/bots/starter-pack"),
    LegacyFunction("reconcile-bot-execution", C.EXECUTION_CRITICAL, D.DELETE, "POST /api/bots/{id}/reconcile"),
    # MIGRATE: the capability now lives in TradeOps.
    LegacyFunction(
        "broker-tradovate",
        C.EXECUTION_CRITICAL,
        D.MIGRATE,
        "POST /api/integrations/verify",
        "Live routing runs inside the tick pipeline; verify the broker connection instead.",
    ),
    LegacyFunction(
        "broker-ironbeam",
        C.EXECUTION_CRITICAL,
        D.MIGRATE,
        "POST /api/integrations/verify",
        "Live routing runs inside the tick pipeline; verify the broker connection instead.",
    ),
    LegacyFunction("runner-tick", C.EXECUTION_CRITICAL, D.MIGRATE, "POST /api/runners/{id}/tick"),
    LegacyFunction("sim-execute-order", C.EXECUTION_CRITICAL, D.MIGRATE, None, "SIM fills happen inside the tick."),
    LegacyFunction("risk-engine", C.EXECUTION_CRITICAL, D.MIGRATE, None, "Risk checks run inside the tick."),
    LegacyFunction("run-backtest", C.EXECUTION_CRITICAL, D.MIGRATE, "POST /api/backtests"),
    LegacyFunction("backtest-matrix", C.STATE_MUTATING, D.MIGRATE, "POST /api/backtests/matrix"),
    LegacyFunction("backtest-*", C.STATE_MUTATING, D.MIGRATE, "POST /api/backtests"),
    LegacyFunction(
        "historical-data",
        C.STATE_MUTATING,
        D.MIGRATE,
        None,
        "Bars are fetched by TradeOps' market-data service; import files with `manage.py import_bars`.",
    ),
    LegacyFunction("market-hours", C.SIDE_EFFECT_ONLY, D.MIGRATE, None, "Market hours are checked inside the tick."),
    LegacyFunction("strategy-lab-*", C.EXECUTION_CRITICAL, D.MIGRATE, "POST /api/strategy-lab/experiments"),
    # KEEP_AUTH_ONLY in the old design; TradeOps does its own auth, so these are retired too.
    LegacyFunction("send-2fa-code", C.SIDE_EFFECT_ONLY, D.KEEP_AUTH_ONLY, "POST /api/auth/2fa/send-code"),
    LegacyFunction("verify-2fa-code", C.SIDE_EFFECT_ONLY, D.KEEP_AUTH_ONLY, "POST /api/auth/2fa/verify-code"),
    LegacyFunction(
        "send-sms-alert", C.SIDE_EFFECT_ONLY, D.KEEP_AUTH_ONLY, None, "TradeOps sends SMS alerts via Twilio."
    ),
)

UNKNOWN = LegacyFunction("*", C.UNUSED, D.DELETE, None, "No TradeOps replacement is known for this function.")


def lookup(name: str) -> LegacyFunction:
    """Exact names win over family patterns; anything else is UNKNOWN (still retired)."""
    for entry in LEGACY_FUNCTIONS:
        if entry.pattern == name:
            return entry
    for entry in LEGACY_FUNCTIONS:
        if "*" in entry.pattern and fnmatch.fnmatchcase(name, entry.pattern):
            return entry
    return UNKNOWN
