"""Probes for TradeOps' own infrastructure, registered as the `redis` and `postgres` providers so
the Connections tab, status and proof of use treat them like any other integration.

Infrastructure is "used" by being probed: every probe the status and the Overview run goes through
`probe()`, which meters it (one usage event, operation `probe`, ok or error) and records it as the
provider's durable check (IntegrationCheck), the same row a Verify writes. So Redis and PostgreSQL
are connected while they answer, and their 24 h proof-of-use count is the probes that reached them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connection

from apps.core import health
from apps.integrations.base import ProviderClient
from apps.integrations.errors import IntegrationError
from apps.integrations.metering import metered
from apps.telemetry.services import usage_event_record

logger = logging.getLogger("tradeops.integrations")

_HEALTH_PROBES = {"redis": health.check_redis, "postgres": health.check_database}


class _Probe(ProviderClient):
    def _check(self) -> dict[str, Any]:
        raise NotImplementedError

    def verify(self) -> dict[str, Any]:
        with metered(provider=self.provider, operation="verify", bot_id=self.bot_id):
            try:
                return self._check()
            except IntegrationError:
                raise
            except Exception as exc:
                raise IntegrationError(
                    f"{self.spec.label} is unreachable: {type(exc).__name__}.",
                    error_code="INTEGRATION_NETWORK_ERROR",
                    provider=self.provider,
                    suggested_fix=f"Check {self.spec.required_env_vars[0]} and that the server is running "
                    "(`make run` starts the embedded one when the variable is unset).",
                ) from None


class RedisProbe(_Probe):
    provider = "redis"

    def _check(self) -> dict[str, Any]:
        client = health.redis_client()
        try:
            info = client.info("server")
        finally:
            client.close()
        return {"redis_version": info.get("redis_version")}


class PostgresProbe(_Probe):
    provider = "postgres"

    def _check(self) -> dict[str, Any]:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            (version,) = cursor.fetchone()
        return {"server_version": version}


def probe(provider: str) -> dict[str, Any]:
    """Probe `redis` or `postgres` (apps/core/health.py's reachability check), meter it and record
    the outcome as the provider's durable check. Answers the health dict ({ok, latency_ms, error});
    never raises: a probe that cannot be recorded (the database is down) is logged, and still answered."""
    from apps.integrations.models import IntegrationCheck
    from apps.integrations.services import integration_check_record

    result = _HEALTH_PROBES[provider]()
    error_code = "" if result["ok"] else "INTEGRATION_NETWORK_ERROR"
    usage_event_record(
        provider=provider, operation="probe", ok=result["ok"], latency_ms=result["latency_ms"], error_code=error_code
    )
    try:
        integration_check_record(
            provider=provider,
            operation=IntegrationCheck.Operation.PROBE,
            ok=result["ok"],
            latency_ms=result["latency_ms"],
            error_code=error_code,
            message="answered" if result["ok"] else f"unreachable ({result['error']})",
        )
    except Exception as exc:
        logger.warning("could not record the %s probe: %s", provider, type(exc).__name__)
    return result
