"""Benchmark: POST /api/runners/start and POST /api/runners/stop, against a plain Django
JsonResponse view served the same way (the same gunicorn command as `make run`, the same client),
in the same run.

Seeded: BENCH_BOTS PAPER bots (Databento data, SIM venue), each with a stopped runner; every
safe-start gate passes as on a live system: Databento is configured and verified against the
loopback stub (the verify writes the usage event the gate reads), and beat and worker heartbeats
are kept fresh. One keep-alive client with an operator API token sends, per iteration, `start` of
the next bot, `stop` of the same bot and the peer (a POST with the same JSON body to a csrf-exempt
JsonResponse view, no auth, no query), so all three see the same noise. Every answer is checked
(200, and the runner RUNNING after start, STOPPED after stop).

Target: issue 4 (b) asks for the figures beside the peer's and names no number; the run fails
(exit status 1) only when an answer is wrong, 2 when it could not run.

Run: make bench   (or: python -m config.embedded exec -- python bench/runner_api.py)
Knobs: BENCH_BOTS (default 100), BENCH_PAIRS (start/stop pairs timed, default 500),
BENCH_TIMEOUT (seconds for the whole run, default 180).
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402

BOTS = int(os.environ.get("BENCH_BOTS", 100))
PAIRS = int(os.environ.get("BENCH_PAIRS", 500))
WARMUP_PAIRS = 50
BUDGET = float(os.environ.get("BENCH_TIMEOUT", 180))
BOT_PREFIX = "bench-runner-"


class Failed(Exception):
    pass


def seed() -> tuple[list[int], str, dict[str, str]]:
    """(bot ids, operator token, the environment that configures Databento)."""
    from django.core.management import call_command

    from apps.accounts.services import api_token_create
    from apps.bots.models import Bot
    from apps.core.roles import Role
    from apps.integrations import registry
    from apps.integrations.services import integration_verify
    from apps.runners.models import Runner
    from tests.stubs.databento import DatabentoStub

    call_command("migrate", verbosity=0)
    have = set(Bot.objects.filter(name__startswith=BOT_PREFIX).values_list("name", flat=True))
    Bot.objects.bulk_create(
        Bot(name=name, strategy_key="trend_following", instrument="MES", timeframe="1m", stage=Bot.Stage.PAPER)
        for name in (f"{BOT_PREFIX}{i:04d}" for i in range(BOTS))
        if name not in have
    )
    bots = Bot.objects.filter(name__startswith=BOT_PREFIX).order_by("name")[:BOTS]
    ids = list(bots.values_list("pk", flat=True))
    # Ready to start, whatever an earlier (interrupted) run left behind.
    Bot.objects.filter(pk__in=ids).update(
        stage=Bot.Stage.PAPER,
        killed=False,
        kill_reason="",
        data_provider=Bot.DataProvider.DATABENTO,
        venue=Bot.Venue.SIM,
    )
    Runner.objects.bulk_create([Runner(bot_id=pk) for pk in ids], ignore_conflicts=True)
    Runner.objects.filter(bot_id__in=ids).update(status=Runner.Status.STOPPED)

    # Databento configured (environment first, as the credential store reads it) and verified
    # against the loopback stub: the gate reads the verify's usage event, not the provider.
    stub = DatabentoStub().start()
    try:
        env = {registry.PROVIDERS["databento"].base_url_var: stub.url, **stub.good_env}
        os.environ.update(env)
        verified = integration_verify(provider="databento")
        if not verified.ok:
            raise Failed(f"the Databento verify against the stub failed: {verified.error_code} {verified.message}")
    finally:
        stub.stop()
    _, token = api_token_create(username="bench-operator", role=Role.OPERATOR)
    return ids, token, env


def keep_scheduler_alive(stop: threading.Event) -> None:
    """Beat and worker heartbeats, as a live scheduler writes them (the start gate reads them)."""
    from django.db import connection

    from apps.telemetry.services import heartbeat_record

    try:
        while True:
            heartbeat_record(component="beat", instance="beat@bench")
            heartbeat_record(component="worker", instance="worker@bench")
            if stop.wait(5):
                return
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    import httpx

    setup_django()
    ids, token, provider_env = seed()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stop_heartbeats = threading.Event()
    heartbeats = threading.Thread(target=keep_scheduler_alive, args=(stop_heartbeats,), daemon=True)
    heartbeats.start()

    def out_of_time(signum: int, frame: Any) -> None:
        raise Failed(f"the whole run took longer than BENCH_TIMEOUT={BUDGET:.0f}s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(max(1, int(BUDGET)))
    # Served exactly as `make run` serves the app (Procfile's web line), on the bench settings.
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bench.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "2", "--threads", "4", "--no-control-socket", "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, **provider_env, "DJANGO_SETTINGS_MODULE": "bench.settings"},
    )
    latencies: dict[str, list[float]] = {"start": [], "stop": [], "peer": []}
    errors: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "/bench/plain", timeout=1)
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise Failed(f"gunicorn did not answer on {base} (exit status {server.poll()})") from None
                time.sleep(0.1)

        headers = {"Authorization": f"Token {token}"}
        with httpx.Client(base_url=base, timeout=10) as client:

            def post(kind: str, path: str, bot_id: int, expect: str | None, timed: bool) -> None:
                t0 = time.perf_counter()
                response = client.post(path, json={"bot_id": bot_id}, headers=headers if expect else None)
                elapsed = (time.perf_counter() - t0) * 1000
                if response.status_code != 200 or (expect and response.json().get("status") != expect):
                    errors.append(f"{kind} bot {bot_id}: {response.status_code} {response.text[:300]}")
                elif timed:
                    latencies[kind].append(elapsed)

            for i in range(WARMUP_PAIRS + PAIRS):
                bot_id, timed = ids[i % len(ids)], i >= WARMUP_PAIRS
                post("start", "/api/runners/start", bot_id, "RUNNING", timed)
                post("stop", "/api/runners/stop", bot_id, "STOPPED", timed)
                post("peer", "/bench/plain-post", bot_id, None, timed)
                if len(errors) >= 10:
                    break
    except Failed as failed:
        print(f"\nFAILED: {failed}", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
        server.terminate()
        server.wait(timeout=30)
        stop_heartbeats.set()
        heartbeats.join(10)

    print(
        f"\n{len(ids)} PAPER bots with runners; {PAIRS} start/stop pairs after {WARMUP_PAIRS} of warm-up, each "
        "followed by the peer; one keep-alive client; gunicorn 2 workers x 4 threads (as make run)\n"
    )
    print(f"{'request':<46}{'p50 ms':>9}{'p95 ms':>9}{'timed':>8}")
    for kind, label in (
        ("peer", "POST plain JsonResponse (peer)"),
        ("start", "POST /api/runners/start"),
        ("stop", "POST /api/runners/stop"),
    ):
        values = sorted(latencies[kind])
        p50 = statistics.median(values) if values else float("nan")
        p95 = values[int(len(values) * 0.95) - 1] if values else float("nan")
        print(f"{label:<46}{p50:>9.2f}{p95:>9.2f}{len(values):>8}")
    if errors:
        print(f"\n{len(errors)} wrong answers (the run stopped at 10); the first:\n  " + "\n  ".join(errors[:3]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
