"""The web process's access lines (gunicorn, config/gunicorn.py) are JSON with the request's trace id."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


@pytest.mark.timeout(120)
def test_every_access_line_is_json_with_the_trace_id_of_its_request(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "web.log"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "PYTHONUNBUFFERED": "1"}
    gunicorn = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-c", "config/gunicorn.py"]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    given = _get(f'{base}/api/no"such/thing?token=never-logged', {"X-Trace-Id": "access-line-1"})
                    break
                except OSError:
                    assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                    time.sleep(0.3)
            made = _get(f"{base}/api/also/missing", {})
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert given[0] == 404 and given[1]["X-Trace-Id"] == "access-line-1"
    first = next(a for a in access if a["path"] == '/api/no"such/thing')
    assert first["trace_id"] == "access-line-1"
    assert first["status"] == 404 and first["method"] == "GET" and first["duration_ms"] >= 0
    second = next(a for a in access if a["path"] == "/api/also/missing")
    assert second["trace_id"] == made[1]["X-Trace-Id"] and len(second["trace_id"]) == 32
    assert "never-logged" not in json.dumps(access)  # paths only: a query string stays out of the log
    # Every line of the web process is JSON, gunicorn's own included.
    assert all(line.startswith("{") for line in log.read_text().splitlines() if line.strip()), log.read_text()
