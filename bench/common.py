"""Shared helpers for the benchmarks: Django set-up on the bench database, and a load generator."""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    conninfo = psycopg.conninfo.make_conninfo(
        dbname="postgres", user=db["USER"], password=db.get("PASSWORD") or None, host=db["HOST"], port=db["PORT"]
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db["NAME"],)).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    django.setup()


@dataclass
class LoadResult:
    name: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def load(
    name: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    threads: int = 4,
    seconds: float = 6.0,
    warmup: float = 1.0,
) -> LoadResult:
    """Closed-loop load: `threads` keep-alive clients, each sending the next request when the
    previous answers. Latencies are measured after a warm-up."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start_measuring = time.perf_counter() + warmup
    stop_at = start_measuring + seconds

    def worker() -> None:
        nonlocal errors
        local: list[float] = []
        local_errors = 0
        with httpx.Client(headers=headers or {}, timeout=10) as client:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    break
                response = client.get(url)
                t1 = time.perf_counter()
                if t0 >= start_measuring:
                    local.append((t1 - t0) * 1000)
                    if response.status_code != 200:
                        local_errors += 1
        with lock:
            latencies.extend(local)
            errors += local_errors

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    latencies.sort()
    return LoadResult(
        name=name,
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p95_ms=latencies[int(len(latencies) * 0.95) - 1] if latencies else float("nan"),
    )


def stop_processes(processes: list[Any]) -> None:
    """SIGTERM each started process (a `celery worker` in its own session), wait, then SIGKILL its
    whole process group: no pool process may outlive a benchmark."""
    import contextlib
    import os
    import signal
    import subprocess

    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    for proc in processes:  # a pool process left by a killed parent
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
