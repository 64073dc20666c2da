"""Benchmark: GET /api/system/status and GET /api/integrations/status with 1,000,000 usage events
and 1,000 rows of other state, against a plain Django JsonResponse view served the same way (the
same gunicorn command as `make run`, the same client), in the same run.

Targets (issue 3): p50 ≤ 10 ms, and at least half the plain view's requests/s.

Run: make bench   (or: python -m config.embedded exec -- python bench/integrations_status.py)
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import load, setup_django  # noqa: E402

EVENTS = int(os.environ.get("BENCH_EVENTS", 1_000_000))
OTHER_ROWS = 1_000


def seed() -> str:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.services import api_token_create
    from apps.core.audit import audit_record
    from apps.core.roles import Role
    from apps.integrations import registry
    from apps.integrations.services import credentials_replace
    from apps.telemetry.models import AuditEvent, IntegrationUsageEvent
    from apps.telemetry.services import heartbeat_record

    call_command("migrate", verbosity=0)
    have = IntegrationUsageEvent.objects.count()
    if not EVENTS <= have <= EVENTS * 1.05:  # the metering benchmark adds a few thousand rows
        print(f"seeding {EVENTS:,} usage events (have {have:,}) …", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE telemetry_integrationusageevent, telemetry_integrationusagerollup")
        providers = list(registry.PROVIDERS)
        now = timezone.now()
        rng = random.Random(7)
        started = time.perf_counter()
        # Worst case for the 24 h counts: every event inside the last 24 hours.
        with (
            connection.cursor() as cursor,
            cursor.connection.cursor().copy(
                "COPY telemetry_integrationusageevent (provider, operation, status, latency_ms, bot_id, trace_id, "
                "error_code, http_status, created_at) FROM STDIN"
            ) as copy,
        ):
            for i in range(EVENTS):
                ok = rng.random() > 0.05
                copy.write_row(
                    (
                        providers[i % len(providers)],
                        "verify" if i % 50 == 0 else "bars",
                        "ok" if ok else "error",
                        rng.uniform(5, 300),
                        rng.randint(1, 200),
                        f"{i:032x}",
                        "" if ok else "INTEGRATION_TIMEOUT",
                        200 if ok else None,
                        now - timedelta(seconds=rng.uniform(0, 86_000)),
                    )
                )
        connection.commit() if not connection.get_autocommit() else None
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE telemetry_integrationusageevent; ANALYZE telemetry_integrationusagerollup")
        print(f"seeded in {time.perf_counter() - started:.1f}s", flush=True)
    if AuditEvent.objects.count() < OTHER_ROWS:
        for i in range(OTHER_ROWS - AuditEvent.objects.count()):
            audit_record(action="bench.seed", actor_label="system:bench", target_type="bench", target_id=str(i))
    heartbeat_record(component="beat", instance="beat@bench")
    heartbeat_record(component="worker", instance="worker@bench")
    credentials_replace(provider="databento", values={"DATABENTO_API_KEY": "db-bench"}, actor=None)
    _, token = api_token_create(username="bench-viewer", role=Role.VIEWER)
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    setup_django()
    token = seed()
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    # Served exactly as `make run` serves the app (Procfile's web line).
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "bench.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--no-control-socket",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                import httpx

                httpx.get(base + "/bench/plain", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        auth = {"Authorization": f"Token {token}"}
        # Keep the heartbeats fresh so the status is computed as on a live system.
        from apps.telemetry.services import heartbeat_record

        heartbeat_record(component="beat", instance="beat@bench")
        heartbeat_record(component="worker", instance="worker@bench")
        targets = [
            ("plain JsonResponse (peer)", base + "/bench/plain", {}),
            ("GET /api/system/status", base + "/api/system/status", auth),
            ("GET /api/integrations/status", base + "/api/integrations/status", auth),
        ]
        # Latency with one client (the service time, not queueing); throughput at saturation.
        latency = {name: load(name, url, headers=h, threads=1, seconds=5) for name, url, h in targets}
        throughput = {name: load(name, url, headers=h, threads=4, seconds=5) for name, url, h in targets}
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"\n{EVENTS:,} usage events, {OTHER_ROWS:,} other rows; gunicorn 2 workers x 4 threads (as make run); "
        "keep-alive clients; 5 s per figure after 1 s warm-up\n"
    )
    print(f"{'endpoint':<32}{'p50 ms (1 client)':>19}{'p95 ms':>9}{'req/s (4 clients)':>19}{'errors':>8}")
    for name, _, _ in targets:
        lat, thr = latency[name], throughput[name]
        print(f"{name:<32}{lat.p50_ms:>19.2f}{lat.p95_ms:>9.2f}{thr.rps:>19.0f}{lat.errors + thr.errors:>8}")
    print()
    peer = throughput[targets[0][0]]
    ok = True
    for name, _, _ in targets[1:]:
        lat, thr = latency[name], throughput[name]
        ratio = thr.rps / peer.rps
        p50_ok, ratio_ok = lat.p50_ms <= 10, ratio >= 0.5
        ok &= p50_ok and ratio_ok and lat.errors + thr.errors == 0
        print(
            f"{name}: p50 {lat.p50_ms:.2f} ms (target <= 10: {'met' if p50_ok else 'MISSED'}); "
            f"{ratio:.0%} of the peer's req/s (target >= 50%: {'met' if ratio_ok else 'MISSED'})"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
