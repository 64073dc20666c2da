"""Proof of use: every external call is metered, success or failure (SPEC §1.4)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from apps.integrations.errors import IntegrationError
from apps.telemetry.services import usage_event_record


@dataclass
class Meter:
    http_status: int | None = None
    latency_ms: float | None = None


@contextmanager
def metered(*, provider: str, operation: str, bot_id: int | None = None) -> Iterator[Meter]:
    """Times the block and writes one IntegrationUsageEvent when it ends: `ok` if it returns,
    `error` with the IntegrationError's code if it raises one (INTERNAL_ERROR otherwise)."""
    meter = Meter()
    started = time.perf_counter()
    error_code = ""
    try:
        yield meter
    except IntegrationError as exc:
        error_code = exc.error_code
        meter.http_status = meter.http_status or exc.http_status
        raise
    except BaseException:
        error_code = "INTERNAL_ERROR"
        raise
    finally:
        meter.latency_ms = round((time.perf_counter() - started) * 1000, 3)
        usage_event_record(
            provider=provider,
            operation=operation,
            ok=not error_code,
            latency_ms=meter.latency_ms,
            bot_id=bot_id,
            error_code=error_code,
            http_status=meter.http_status,
        )
