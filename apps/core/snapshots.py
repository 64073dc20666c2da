"""Short-lived JSON snapshots of expensive read-only answers (status endpoints), shared by every
process through Redis.

Dashboards poll; a status that is recomputed at most once per STATUS_SNAPSHOT_SECONDS for the whole
deployment stays fast at any data volume. The answer carries its own `checked_at`, so its age is
never hidden, and the writes TradeOps knows change it (credentials, verify) call `invalidate`.
When Redis is down the answer is computed every time (and says Redis is down). Another process's
change is seen within the age limit; the process that made it sees it at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from apps.core import health

logger = logging.getLogger("tradeops.snapshots")

PREFIX = "tradeops:snapshot:"

# A per-process copy in front of Redis (same age limit): a poll answered from memory costs nothing.
_local: dict[str, tuple[float, bytes]] = {}


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def get_or_compute(name: str, compute: Callable[[], dict[str, Any]]) -> bytes:
    """The JSON object `compute()` returns, from a fresh-enough snapshot when there is one."""
    ttl = settings.STATUS_SNAPSHOT_SECONDS
    if ttl <= 0:
        return _encode(compute())
    now = time.monotonic()
    local = _local.get(name)
    if local is not None and local[0] > now:
        return local[1]
    key = PREFIX + name
    try:
        client = health.redis_client()
        cached, age_left_ms = client.pipeline().get(key).pttl(key).execute()
        if cached is not None and age_left_ms > 0:
            _local[name] = (now + age_left_ms / 1000, cached)
            return cached
    except Exception:
        return _encode(compute())
    body = _encode(compute())
    try:
        client.set(key, body, px=int(ttl * 1000))
        _local[name] = (now + ttl, body)
    except Exception:
        logger.warning("could not store the %s snapshot", name)
    return body


def invalidate(*names: str) -> None:
    for name in names:
        _local.pop(name, None)
    try:
        health.redis_client().delete(*(PREFIX + n for n in names))
    except Exception:
        logger.warning("could not invalidate snapshots %s", names)


def with_trace_id(body: bytes, trace_id: str) -> bytes:
    """Append this request's trace id to a snapshot's JSON object (the snapshot is shared; the
    trace id is the request's own)."""
    return body[:-1] + b',"trace_id":' + json.dumps(trace_id).encode() + b"}"
