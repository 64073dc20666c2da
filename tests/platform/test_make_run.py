"""`make run`'s launcher from a fresh var/: embedded services, migrations, admin, web/worker/beat;
Ctrl-C stops everything it started; a second run reuses the data under var/."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(var: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "TRADEOPS_ADMIN_PASSWORD", "DJANGO_DEBUG"}
    }
    env.update(TRADEOPS_VAR_DIR=str(var), PORT=str(port), PYTHONUNBUFFERED="1")
    return env


def _health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


def _processes_of(var: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("TRADEOPS_VAR_DIR") == str(var):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _another_shell_reaches_the_same_system(var: Path, port: int) -> None:
    """`python manage.py …` in another shell uses the embedded services that `make run` started:
    a token it creates is accepted by the running web process."""
    made = subprocess.run(
        [sys.executable, "manage.py", "create_api_token", "shell-user", "--role", "viewer"],
        cwd=ROOT,
        env=_env(var, port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/schema/", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


DEBUG_PAGE_MARKS = ("Using the URLconf", "You're seeing this error because you have", "Traceback", "DEBUG = True")


def _no_debug_pages_and_static_files_served(port: int) -> dict[str, str]:
    """DEBUG is off unless asked for: an unknown page and a failed CSRF check are TradeOps pages with
    a trace id, and static files (ours, Swagger UI's) are still served. Returns trace ids it saw."""
    base = f"http://127.0.0.1:{port}"
    status, html, headers = _fetch(f"{base}/no/such/page")
    assert status == 404 and "NOT_FOUND" in html and headers["X-Trace-Id"] in html, html[:2000]
    assert not any(mark in html for mark in DEBUG_PAGE_MARKS), html[:2000]
    status, html, _ = _fetch(f"{base}/login/", method="POST")
    assert status == 403 and "CSRF_FAILED" in html and not any(mark in html for mark in DEBUG_PAGE_MARKS)
    for path in (
        "/static/core/tradeops.js",
        "/static/core/tradeops.css",
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "/favicon.ico",
    ):
        assert _fetch(f"{base}{path}")[0] == 200, path
    return {"not_found": headers["X-Trace-Id"]}


def _run_once(var: Path, log: Path, *, checks: Any = None) -> str:
    port = _free_port()
    with open(log, "w") as out:
        # Its own process group, so that SIGINT to the group is exactly what Ctrl-C in a terminal does.
        proc = subprocess.Popen(
            [sys.executable, "-m", "config.launcher"],
            cwd=ROOT,
            env=_env(var, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            body = None
            while time.monotonic() < deadline and proc.poll() is None:
                body = _health(port)
                if body and body["status"] == "ok":
                    break
                time.sleep(0.5)
            assert body and body["status"] == "ok", log.read_text()[-3000:]
            assert _processes_of(var), "the system should be running"
            _another_shell_reaches_the_same_system(var, port)
            if checks is not None:
                checks(port)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=90)
    # Nothing it started is left behind: no web, worker, beat, postgres or redis for this var/.
    deadline = time.monotonic() + 45  # generous: a loaded box stops six processes and two servers slowly
    while _processes_of(var) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_of(var) == [], [p.cmdline() for p in _processes_of(var)]
    assert _health(port) is None
    return log.read_text()


@pytest.mark.timeout(400)
def test_make_run_boots_stops_cleanly_and_reuses_its_data(tmp_path: Path) -> None:
    var = tmp_path / "var"
    seen: dict[str, Any] = {}
    first = _run_once(
        var,
        tmp_path / "first.log",
        checks=lambda port: seen.update(port=port, **_no_debug_pages_and_static_files_served(port)),
    )
    assert f"[tradeops] TradeOps is ready: http://127.0.0.1:{seen['port']}/" in first
    # The web process's access line for that 404 is JSON with the request's trace id.
    access = [json.loads(line.split("| ", 1)[1]) for line in first.splitlines() if '"gunicorn.access"' in line]
    assert any(a["path"] == "/no/such/page" and a["trace_id"] == seen["not_found"] for a in access), access
    assert "Password (shown this once only)" in first
    assert (var / "pgdata" / "PG_VERSION").exists() and (var / "redis").is_dir()

    second = _run_once(var, tmp_path / "second.log")
    assert "Password (shown this once only)" not in second
    assert "Sign in as 'admin'" in second
    assert "No migrations to apply" in second
