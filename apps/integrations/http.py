"""The ONLY module that performs outbound HTTP (R16). It enforces timeouts, classifies failures
into SPEC error codes with a suggested fix, and meters every call as an IntegrationUsageEvent.

Provider clients call `call(...)`; they never import httpx themselves.

The network path is settings, not the process environment (config/settings/integrations.py):
by default the client ignores HTTP(S)_PROXY, SSL_CERT_FILE and .netrc (trust_env=False) and trusts
certifi's CAs. A desk behind a proxy or a TLS-inspecting firewall sets INTEGRATIONS_PROXY_URL
(every provider call goes through it; https targets by CONNECT) and/or INTEGRATIONS_CA_BUNDLE (a PEM
file or a c_rehash'd directory that REPLACES the default CAs), or INTEGRATIONS_TRUST_ENV=true to
take them from the environment as curl does. A bundle that cannot be loaded or a proxy URL that is
not http(s)://host[:port] fails closed: `manage.py check` (run by migrate, so by `make run`) reports
integrations.E001, and every call refuses with INTEGRATION_NETWORK_CONFIG_INVALID before sending.
"""

from __future__ import annotations

import json as jsonlib
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from apps.core.context import ensure_trace_id
from apps.integrations.errors import FIXES, IntegrationError
from apps.integrations.metering import metered

logger = logging.getLogger("tradeops.integrations.http")

# A provider-specific look at a response before the generic rules: return an IntegrationError
# for failures that arrive as 2xx (Tradovate's errorText) or with unusual codes (Gemini's 400
# for a bad key), or None to fall through.
Classifier = Callable[[httpx.Response, Any], IntegrationError | None]
# Checks the decoded body's shape; raise ValueError/KeyError/TypeError when it is malformed.
Validator = Callable[[Any], None]

# Transport failures that happen before any byte of the request reaches the provider: the TCP/TLS
# connection could not be made (refused, DNS, handshake, connect timeout) or no pooled connection
# was free in time. Every other transport failure (read/write timeout, a connection dropped or a
# protocol error after sending started) raises MaybeDelivered: the provider may have acted on it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class MaybeDelivered(IntegrationError):
    """No (complete) answer came back, and the request may have reached the provider. The error
    code is the same as for a request that never left (INTEGRATION_TIMEOUT or
    INTEGRATION_NETWORK_ERROR); callers whose request changes state at the provider (placing an
    order) must treat the outcome as unknown and never resend it blindly."""


_client_lock = threading.Lock()
_client: httpx.Client | None = None
_client_config: tuple[str, str, bool] | None = None


def _network_settings() -> tuple[str, str, bool]:
    """(CA bundle path, proxy URL, trust the environment) as configured."""
    return (
        str(getattr(settings, "INTEGRATIONS_CA_BUNDLE", "") or "").strip(),
        str(getattr(settings, "INTEGRATIONS_PROXY_URL", "") or "").strip(),
        bool(getattr(settings, "INTEGRATIONS_TRUST_ENV", False)),
    )


def _shown_proxy(url: str) -> str:
    """The proxy as an operator may see it: scheme, host and port, never its user or password."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(not a URL)"
    return f"{parsed.scheme}://{parsed.host}" + (f":{parsed.port}" if parsed.port else "")


def network_config_problems(ca_bundle: str, proxy_url: str) -> list[str]:
    """What is wrong with the configured CA bundle and proxy; empty when nothing is."""
    problems = []
    if ca_bundle:
        path = Path(ca_bundle)
        try:
            if path.is_dir():
                ssl.create_default_context(capath=str(path))
            else:
                ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            problems.append(f"INTEGRATIONS_CA_BUNDLE={ca_bundle[:200]} cannot be loaded as CA certificates ({why})")
    if proxy_url:
        try:
            parsed = httpx.URL(proxy_url)
            ok = parsed.scheme in ("http", "https") and bool(parsed.host)
        except (httpx.InvalidURL, TypeError):
            ok = False
        if not ok:
            problems.append(
                f"INTEGRATIONS_PROXY_URL={_shown_proxy(proxy_url)} is not an http:// or https:// proxy URL with a host"
            )
    return problems


class NetworkConfigInvalid(IntegrationError):
    """The configured CA bundle or proxy cannot be used: nothing is sent (fail closed)."""

    def __init__(self, problems: list[str], *, provider: str) -> None:
        super().__init__(
            "TradeOps will not call any provider: " + "; ".join(problems) + ".",
            error_code="INTEGRATION_NETWORK_CONFIG_INVALID",
            provider=provider,
            status_code=503,
        )


def _shared_client(provider: str = "") -> httpx.Client:
    """One pooled client per process (rebuilt if the network settings change): keep-alive
    connections, thread-safe. No retries here — callers decide, from the error's `permanent` flag."""
    global _client, _client_config
    config = _network_settings()
    with _client_lock:
        if _client is None or _client_config != config:
            ca_bundle, proxy_url, trust_env = config
            if problems := network_config_problems(ca_bundle, proxy_url):
                raise NetworkConfigInvalid(problems, provider=provider)
            options: dict[str, Any] = {"trust_env": trust_env}
            if ca_bundle:
                path = Path(ca_bundle)
                options["verify"] = (
                    ssl.create_default_context(capath=str(path))
                    if path.is_dir()
                    else ssl.create_default_context(cafile=str(path))
                )
            if proxy_url:
                options["proxy"] = proxy_url
            _client = httpx.Client(
                follow_redirects=False,
                headers={"User-Agent": "TradeOps/0.1 (+control plane)"},
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
                **options,
            )
            _client_config = config
            logger.info(
                "outbound HTTP client: proxy %s, CA bundle %s, environment %s",
                _shown_proxy(proxy_url) if proxy_url else "none",
                ca_bundle or "default (certifi)",
                "trusted" if trust_env else "ignored",
            )
        return _client


def check_network_config(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Django system check (registered in apps.py): a bad CA bundle or proxy fails at startup."""
    from django.core.checks import Error

    ca_bundle, proxy_url, _ = _network_settings()
    return [
        Error(problem, hint=FIXES["INTEGRATION_NETWORK_CONFIG_INVALID"], id="integrations.E001")
        for problem in network_config_problems(ca_bundle, proxy_url)
    ]


@dataclass
class HttpResult:
    status: int
    headers: httpx.Headers
    body: Any  # decoded JSON, or the text when expect_json is False
    latency_ms: float | None = None


def call(
    *,
    provider: str,
    operation: str,
    method: str,
    url: str,
    bot_id: int | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json: Any = None,
    data: dict[str, Any] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float | None = None,
    expect_json: bool = True,
    classify: Classifier | None = None,
    validate: Validator | None = None,
    redact: Iterable[str] = (),
) -> HttpResult:
    """Perform one metered request. Returns the decoded answer, or raises IntegrationError.
    `redact`: secret values that must not appear in an error message even if the provider echoes
    them back (some echo a masked key; a proxy at a custom base URL might echo it whole)."""
    limit = timeout if timeout is not None else settings.INTEGRATIONS_HTTP_TIMEOUT_SECONDS
    send_headers = {"Accept": "application/json", "X-Trace-Id": ensure_trace_id(), **(headers or {})}
    with metered(provider=provider, operation=operation, bot_id=bot_id) as meter:
        try:
            response = _shared_client(provider).request(
                method,
                url,
                headers=send_headers,
                params=params,
                json=json,
                data=data,
                auth=auth,
                timeout=httpx.Timeout(limit),
            )
        except httpx.TimeoutException as exc:
            # A connect/pool timeout: nothing left this machine. A read/write timeout: it may have.
            kind = IntegrationError if isinstance(exc, NOT_SENT) else MaybeDelivered
            raise kind(
                f"{provider} did not answer within {limit:g}s ({operation}).",
                error_code="INTEGRATION_TIMEOUT",
                provider=provider,
            ) from None
        except httpx.HTTPError as exc:
            kind = IntegrationError if isinstance(exc, NOT_SENT) else MaybeDelivered
            raise kind(
                f"{provider} could not be reached ({operation}): {type(exc).__name__}.",
                error_code="INTEGRATION_NETWORK_ERROR",
                provider=provider,
            ) from None
        meter.http_status = response.status_code
        body = _decode(response, expect_json)
        error = classify(response, body) if classify else None
        if error is None:
            error = classify_status(provider, operation, response, body)
        if error is not None:
            error.http_status = error.http_status or response.status_code
            raise _scrubbed(error, redact)
        if expect_json and body is _MALFORMED:
            raise _bad_response(provider, operation, "the body is not JSON", response.status_code)
        if validate is not None:
            try:
                validate(body)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise _bad_response(provider, operation, str(exc) or type(exc).__name__, response.status_code) from None
    return HttpResult(status=response.status_code, headers=response.headers, body=body, latency_ms=meter.latency_ms)


_MALFORMED = object()


def _scrubbed(error: IntegrationError, secrets: Iterable[str]) -> IntegrationError:
    for secret in secrets:
        if secret and len(secret) >= 4:
            error.message = error.message.replace(secret, "[redacted]")
            if error.suggested_fix:
                error.suggested_fix = error.suggested_fix.replace(secret, "[redacted]")
    error.args = (error.message,)
    return error


def _decode(response: httpx.Response, expect_json: bool) -> Any:
    if not expect_json:
        return response.text
    if not response.content:
        return None
    try:
        return jsonlib.loads(response.content)
    except ValueError:
        return _MALFORMED


def _bad_response(provider: str, operation: str, why: str, status: int) -> IntegrationError:
    return IntegrationError(
        f"{provider} answered {operation} with something TradeOps does not understand: {why[:200]}",
        error_code="INTEGRATION_BAD_RESPONSE",
        provider=provider,
        http_status=status,
    )


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(raw) - timezone.now()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def provider_message(body: Any) -> str:
    """The provider's own error text, from the common shapes, cut short (it is shown to operators;
    providers do not echo secrets in these fields)."""
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "errorText", "error_description"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("case")
            if isinstance(value, str) and value:
                return value[:200]
    return ""


def classify_status(provider: str, operation: str, response: httpx.Response, body: Any) -> IntegrationError | None:
    status = response.status_code
    if 200 <= status < 300:
        return None
    said = provider_message(body if body is not _MALFORMED else None)
    suffix = f": {said}" if said else ""
    if status == 401:
        code, message = "INTEGRATION_AUTH_FAILED", f"{provider} rejected the credentials (401){suffix}"
    elif status == 403:
        code, message = "INTEGRATION_PERMISSION_DENIED", f"{provider} refused {operation} (403){suffix}"
    elif status in (423, 429):
        code, message = "INTEGRATION_RATE_LIMITED", f"{provider} is rate-limiting this key ({status}){suffix}"
    elif status >= 500:
        code, message = "INTEGRATION_PROVIDER_ERROR", f"{provider} failed on its side ({status}){suffix}"
    else:
        code, message = "INTEGRATION_REQUEST_REJECTED", f"{provider} rejected {operation} ({status}){suffix}"
    return IntegrationError(
        message, error_code=code, provider=provider, http_status=status, retry_after=_retry_after(response)
    )
