"""gunicorn's configuration for `make run` (Procfile: `gunicorn -c config/gunicorn.py`).

Its lines are JSON like every other TradeOps line: an access line per request carries the
request's trace id (the `X-Trace-Id` response header, the same id as the app's own lines and the
error body), so `grep <trace_id>` finds the request too. Paths only: a query string never reaches
the log."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from gunicorn.glogging import Logger
from pythonjsonlogger.json import JsonFormatter

accesslog = "-"  # stdout, beside the app's JSON lines
errorlog = "-"


def _status(resp: Any) -> int | None:
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    try:
        return int(status)
    except (TypeError, ValueError):
        return None


class JsonLogger(Logger):
    """gunicorn's logger, writing JSON: one object per access line (encoded by json.dumps, so a
    quote or a backslash in a path cannot break it) and the error log through the app's formatter."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.access_log.handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))
        errors = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
        for handler in self.error_log.handlers:
            handler.setFormatter(errors)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        try:
            headers = {str(k).lower(): v for k, v in (resp.headers or [])}
            status = _status(resp)
            method = environ.get("REQUEST_METHOD", "-")
            path = environ.get("PATH_INFO", "")
            now = time.time()  # the app's JSON time format (logging's asctime)
            line = {
                "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}",
                "level": "INFO",
                "logger": "gunicorn.access",
                "message": f"{method} {path} {status}",
                "trace_id": headers.get("x-trace-id"),
                "method": method,
                "path": path,
                "status": status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 1),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "user_agent": environ.get("HTTP_USER_AGENT"),
            }
            self.access_log.info(json.dumps(line))
        except Exception:  # a log line must never fail a request
            self.error_log.exception("could not write the access line")


logger_class = JsonLogger
