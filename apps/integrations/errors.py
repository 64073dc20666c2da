"""Provider failures, classified into SPEC error codes with a suggested fix an operator can act on."""

from __future__ import annotations

from apps.core.exceptions import ApplicationError

# error_code -> how to fix it; `{vars}` is the provider's required variables, `{label}` its name.
FIXES: dict[str, str] = {
    "INTEGRATION_KEY_MISSING": "Enter {vars} with “Enter keys” on the {label} card in Connections (admin), or "
    "set them in the environment, then Verify.",
    "INTEGRATION_AUTH_FAILED": "{label} rejected the credentials: check {vars} (a typo, a revoked or expired key), "
    "enter them again, then Verify.",
    "INTEGRATION_PERMISSION_DENIED": "{label} accepted the credentials but refused this call: check the plan, "
    "entitlements or account permissions for this key.",
    "INTEGRATION_RATE_LIMITED": "{label} is rate-limiting this key: wait (see retry_after_seconds) and retry; "
    "lower the call rate if it persists.",
    "INTEGRATION_TIMEOUT": "{label} did not answer in time: retry; if it persists check {label}'s status page "
    "and this machine's network.",
    "INTEGRATION_NETWORK_ERROR": "TradeOps could not reach {label}: check the network, DNS and proxy, and "
    "{base_url_var} if it is set.",
    "INTEGRATION_PROVIDER_ERROR": "{label} failed on its side: retry later and check {label}'s status page.",
    "INTEGRATION_BAD_RESPONSE": "{label} answered something TradeOps does not understand: retry; if it persists, "
    "check {base_url_var} points at the real API, and report the trace id.",
    "INTEGRATION_REQUEST_REJECTED": "{label} rejected the request as sent: check the optional settings "
    "({base_url_var}, account or dataset names) and report the trace id if they are right.",
    "INTEGRATION_VERIFY_FAILED": "Verify failed: see the message, fix the cause, then Verify again.",
    "INTEGRATION_NOT_CONNECTED": "Press Verify on the {label} card in Connections; it has not succeeded recently.",
    "INTEGRATION_NETWORK_CONFIG_INVALID": "Fix INTEGRATIONS_CA_BUNDLE (a readable PEM file or certificate "
    "directory) or INTEGRATIONS_PROXY_URL (http://host:port) in the environment, or unset them, then restart "
    "TradeOps (docs/runbook.md, Keys and connections).",
}

# Codes after which repeating the same call may succeed (R15: retry only these).
TRANSIENT = frozenset(
    {
        "INTEGRATION_RATE_LIMITED",
        "INTEGRATION_TIMEOUT",
        "INTEGRATION_NETWORK_ERROR",
        "INTEGRATION_PROVIDER_ERROR",
    }
)


class IntegrationError(ApplicationError):
    """A provider call failed. `permanent` is False for failures worth retrying as they are."""

    status_code = 502
    error_code = "INTEGRATION_PROVIDER_ERROR"

    def __init__(
        self,
        message: str,
        *,
        error_code: str,
        provider: str,
        suggested_fix: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.provider = provider
        self.http_status = http_status
        self.retry_after = retry_after
        self.permanent = error_code not in TRANSIENT
        details: dict[str, object] = {"provider": provider}
        if retry_after is not None:
            details["retry_after_seconds"] = retry_after
        details.update(extra or {})
        super().__init__(
            message,
            error_code=error_code,
            status_code=status_code,
            suggested_fix=suggested_fix or fix_for(error_code, provider),
            extra=details,
        )


def fix_for(error_code: str, provider: str) -> str:
    from apps.integrations import registry

    spec = registry.get(provider)
    template = FIXES.get(error_code, FIXES["INTEGRATION_VERIFY_FAILED"])
    if spec is None:
        return template.format(vars="the provider's variables", label=provider, base_url_var="its base URL")
    return template.format(vars=", ".join(spec.required_env_vars), label=spec.label, base_url_var=spec.base_url_var)


class IntegrationKeyMissing(IntegrationError):
    status_code = 409

    def __init__(self, provider: str, missing: list[str]) -> None:
        super().__init__(
            f"{provider} is not configured: {', '.join(missing)} missing.",
            error_code="INTEGRATION_KEY_MISSING",
            provider=provider,
            suggested_fix=f"Enter {', '.join(missing)} with “Enter keys” on the {provider} card in Connections "
            "(admin), or set them in the environment, then Verify.",
            status_code=409,
            extra={"missing_env_vars": missing},
        )
