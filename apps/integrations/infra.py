"""Probes for TradeOps' own infrastructure, registered as the `redis` and `postgres` providers so
the Connections tab, status and proof of use treat them like any other integration."""

from __future__ import annotations

from typing import Any

from django.db import connection

from apps.core import health
from apps.integrations.base import ProviderClient
from apps.integrations.errors import IntegrationError
from apps.integrations.metering import metered


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
