"""Reachability probes for TradeOps' own dependencies. They report; they never raise."""

from __future__ import annotations

import time
from typing import Any

import redis
from django.conf import settings
from django.db import connection


def _probe(fn: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:
        # The class name only: a driver's message can carry the URL, and with it a password.
        return {"ok": False, "latency_ms": None, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2), "error": None}


def check_database() -> dict[str, Any]:
    def ping() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    return _probe(ping)


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def check_redis() -> dict[str, Any]:
    def ping() -> None:
        client = redis_client()
        try:
            client.ping()
        finally:
            client.close()

    return _probe(ping)
