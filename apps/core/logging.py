from __future__ import annotations

import logging
from typing import Any

from apps.core.context import get_trace_id


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` to every record that reaches a handler (None outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "trace_id", None):
            record.trace_id = get_trace_id()
        return True


def install_trace_record_factory() -> None:
    """Stamp the trace id on every record when it is created, so it is there for any handler,
    including third-party ones that do not use our filter."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_tradeops", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        record.trace_id = get_trace_id()
        return record

    factory._tradeops = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
