from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core import snapshots
from apps.core.audit import audit_record
from apps.core.context import ensure_trace_id
from apps.core.exceptions import ApplicationError
from apps.integrations import credentials as creds
from apps.integrations import crypto, registry
from apps.integrations.errors import IntegrationError, fix_for
from apps.integrations.models import IntegrationCheck, StoredCredential

logger = logging.getLogger("tradeops.integrations")


class UnknownProvider(ApplicationError):
    status_code = 404
    error_code = "NOT_FOUND"
    default_suggested_fix = "Use a provider from GET /api/integrations/registry."


class InvalidCredentials(ApplicationError):
    status_code = 400
    error_code = "VALIDATION_ERROR"
    default_suggested_fix = "Send only the provider's variables (see GET /api/integrations/registry), as strings."


def spec_or_404(provider: str) -> registry.ProviderSpec:
    spec = registry.get(provider)
    if spec is None:
        raise UnknownProvider(f"Unknown provider {provider!r}.")
    return spec


@dataclass
class VerifyResult:
    provider: str
    ok: bool
    latency_ms: float | None
    error_code: str | None
    message: str
    suggested_fix: str | None
    verified_at: str
    missing_env_vars: list[str]
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _invalidate_status() -> None:
    snapshots.invalidate("integrations-status", "system-status")


def integration_check_record(
    *,
    provider: str,
    operation: str,
    ok: bool,
    latency_ms: float | None,
    error_code: str | None = None,
    message: str = "",
) -> IntegrationCheck:
    """Upsert the provider's durable check (one statement) and invalidate the status snapshots.
    Runs in a savepoint when the caller holds a transaction, so a failed write cannot poison it."""
    row = IntegrationCheck(
        provider=provider,
        operation=operation,
        ok=ok,
        checked_at=timezone.now(),
        latency_ms=latency_ms,
        error_code=error_code or "",
        message=message[:2000],
        trace_id=ensure_trace_id(),
    )
    with transaction.atomic():
        IntegrationCheck.objects.bulk_create(
            [row],
            update_conflicts=True,
            unique_fields=["provider"],
            update_fields=["operation", "ok", "checked_at", "latency_ms", "error_code", "message", "trace_id"],
        )
    _invalidate_status()
    return row


def integration_verify(*, provider: str, bot_id: int | None = None) -> VerifyResult:
    """One real, non-destructive connectivity test. Never raises for a provider failure: the
    result says what failed and how to fix it. Its outcome is recorded as the provider's durable
    check (IntegrationCheck) before this returns, so a start right after a good verify passes its
    gate; the usage event (proof of use) is written by the HTTP layer, possibly a moment later.
    A provider with missing variables is not called at all (nothing is recorded)."""
    spec = spec_or_404(provider)
    now = timezone.now().isoformat()
    resolved = creds.resolve(spec)
    if resolved.missing:
        return VerifyResult(
            provider=provider,
            ok=False,
            latency_ms=None,
            error_code="INTEGRATION_KEY_MISSING",
            message=f"Not configured: {', '.join(resolved.missing)} missing.",
            suggested_fix=fix_for("INTEGRATION_KEY_MISSING", provider),
            verified_at=now,
            missing_env_vars=resolved.missing,
            details={},
        )
    client = spec.client_class()(resolved, bot_id=bot_id)
    started = timezone.now()
    try:
        details = client.verify()
    except IntegrationError as exc:
        elapsed = (timezone.now() - started).total_seconds() * 1000
        logger.info("verify %s failed: %s", provider, exc.error_code)
        check = integration_check_record(
            provider=provider,
            operation=IntegrationCheck.Operation.VERIFY,
            ok=False,
            latency_ms=round(elapsed, 1),
            error_code=exc.error_code,
            message=exc.message,
        )
        return VerifyResult(
            provider=provider,
            ok=False,
            latency_ms=round(elapsed, 1),
            error_code=exc.error_code,
            message=exc.message,
            suggested_fix=exc.suggested_fix,
            verified_at=check.checked_at.isoformat(),
            missing_env_vars=[],
            details={k: v for k, v in exc.extra.items() if k != "provider"},
        )
    elapsed = (timezone.now() - started).total_seconds() * 1000
    check = integration_check_record(
        provider=provider,
        operation=IntegrationCheck.Operation.VERIFY,
        ok=True,
        latency_ms=round(elapsed, 1),
        message=f"{spec.label} answered.",
    )
    return VerifyResult(
        provider=provider,
        ok=True,
        latency_ms=round(elapsed, 1),
        error_code=None,
        message=f"{spec.label} answered.",
        suggested_fix=None,
        verified_at=check.checked_at.isoformat(),
        missing_env_vars=[],
        details=details or {},
    )


def integration_verify_all(*, providers: list[str] | None = None) -> list[VerifyResult]:
    """Verify the given providers, or every configured one."""
    if providers:
        return [integration_verify(provider=p) for p in providers]
    stored = creds.stored_by_name()
    return [
        integration_verify(provider=spec.provider)
        for spec in registry.PROVIDERS.values()
        if spec.supports_verify and creds.resolve(spec, stored=stored).configured
    ]


@transaction.atomic
def credentials_replace(*, provider: str, values: dict[str, Any], actor: Any) -> list[str]:
    """Store the given variables encrypted (replacing earlier stored values). Only the provider's
    own variables are accepted; an empty string is refused (use DELETE to remove).
    Returns the names stored. The audit row names them; values never leave this function."""
    spec = spec_or_404(provider)
    if not isinstance(values, dict) or not values:
        raise InvalidCredentials("Send a JSON object of variable names to values.")
    allowed = set(spec.all_env_vars) - registry.EMBEDDED_DEFAULTS
    unknown = sorted(set(values) - allowed)
    bad = sorted(k for k, v in values.items() if k in allowed and (not isinstance(v, str) or not v.strip()))
    if unknown or bad:
        fields: dict[str, list[str]] = {k: [f"not a {provider} variable"] for k in unknown}
        fields.update({k: ["must be a non-empty string"] for k in bad})
        raise InvalidCredentials(f"Invalid variables for {provider}.", extra={"fields": fields})
    mf = crypto.multifernet()  # fails closed, before anything is written, when there is no KEK
    label = actor.get_username() if getattr(actor, "is_authenticated", False) else "system"
    before = dict.fromkeys(StoredCredential.objects.filter(name__in=values).values_list("name", flat=True), "set")
    for name, value in sorted(values.items()):
        StoredCredential.objects.update_or_create(
            name=name,
            defaults={
                "provider": provider,
                "ciphertext": mf.encrypt(value.strip().encode()).decode(),
                "updated_by": label,
            },
        )
    audit_record(
        action="integration.credentials_replace",
        actor=actor,
        target_type="integration",
        target_id=provider,
        before=before,
        after=dict.fromkeys(values, "set"),
    )
    return sorted(values)


@transaction.atomic
def credentials_delete(*, provider: str, actor: Any, names: list[str] | None = None) -> list[str]:
    spec = spec_or_404(provider)
    qs = StoredCredential.objects.filter(name__in=names or list(spec.all_env_vars))
    removed = sorted(qs.values_list("name", flat=True))
    qs.delete()
    audit_record(
        action="integration.credentials_delete",
        actor=actor,
        target_type="integration",
        target_id=provider,
        before=dict.fromkeys(removed, "set"),
        after=dict.fromkeys(removed, "removed"),
    )
    transaction.on_commit(_invalidate_status)
    return removed


@transaction.atomic
def credentials_rotate_key() -> int:
    """Re-encrypt every stored credential with the first key of CREDENTIALS_ENCRYPTION_KEY."""
    count = 0
    for row in StoredCredential.objects.select_for_update():
        StoredCredential.objects.filter(pk=row.pk).update(ciphertext=crypto.rotate(row.ciphertext))
        count += 1
    audit_record(action="integration.credentials_rotate_key", actor_label="system:cli", after={"rows": count})
    return count
