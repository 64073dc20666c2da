"""Reachability probes for TradeOps' own dependencies. They report; they never raise."""

from __future__ import annotations

import threading
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


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """One thread-safe client (and connection pool) per process for REDIS_URL: a status page must
    pay neither a connection set-up nor a client construction per call. Keyed by URL, so a test
    that points REDIS_URL elsewhere gets its own."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        with _clients_lock:
            client = _clients.get(url) or redis.Redis.from_url(
                url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
            )
            _clients[url] = client
    return client


def check_redis() -> dict[str, Any]:
    return _probe(lambda: redis_client().ping())
