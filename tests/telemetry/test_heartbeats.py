"""Worker and beat heartbeats from real `celery worker` and `celery beat` processes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.telemetry import selectors
from apps.telemetry.models import ComponentHeartbeat
from apps.telemetry.services import heartbeat_record, heartbeat_stop

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(predicate: Any, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def _celery(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.subprocess_settings"
    env["TRADEOPS_TEST_DB_NAME"] = connection.settings_dict["NAME"]
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.django_db(transaction=True)
def test_real_worker_and_beat_report_and_say_when_they_stop(real_celery: Any) -> None:
    from django.core.management import call_command
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    call_command("setup_periodic_tasks", stdout=io.StringIO())
    # The probe every second instead of 30 s, so the test sees beat → broker → worker quickly.
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="tradeops:queue-probe").update(interval=every_second)
    real_celery.control.purge()

    worker = _celery("worker", "--pool", "solo", "--hostname", "hb-test@%h", "--without-mingle", "--without-gossip")
    beat = _celery("beat")
    try:
        _wait_for(lambda: selectors.scheduler_state()["status"] == "ok")
        state = selectors.scheduler_state()
        assert state["workers_alive"] == 1
        assert state["workers"][0]["instance"].startswith("hb-test@")
        assert state["workers"][0]["details"]["queues"] == ["celery"]  # the default queue: ticks
        assert state["beat_last_seen_at"] is not None
        _wait_for(lambda: ComponentHeartbeat.objects.filter(component="queue").exists())
        probe = ComponentHeartbeat.objects.get(component="queue")
        assert probe.details["latency_ms"] is not None and probe.details["latency_ms"] >= 0
    finally:
        for proc in (worker, beat):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, beat):
            proc.wait(timeout=30)

    # A clean shutdown says so at once; the status does not wait for staleness.
    state = selectors.scheduler_state()
    assert state["status"] == "unavailable"
    assert state["workers_alive"] == 0
    assert all(w["stopped_at"] is not None for w in state["workers"])
    assert state["beat"]["alive"] is False


@pytest.mark.django_db
def test_never_seen_is_unavailable_with_reasons() -> None:
    state = selectors.scheduler_state()
    assert state["status"] == "unavailable"
    assert state["beat_last_seen_at"] is None and state["workers"] == []
    assert any("beat" in r for r in state["reasons"]) and any("worker" in r for r in state["reasons"])


@pytest.mark.django_db
def test_a_silent_worker_is_not_alive(settings: Any) -> None:
    heartbeat_record(component="beat", instance="b")
    heartbeat_record(component="worker", instance="w")
    assert selectors.scheduler_state()["status"] == "ok"
    old = timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_AFTER_SECONDS + 1)
    ComponentHeartbeat.objects.filter(component="worker").update(last_seen_at=old)
    state = selectors.scheduler_state()
    assert state["status"] == "unavailable" and state["workers_alive"] == 0


@pytest.mark.django_db
def test_a_worker_of_another_queue_alone_does_not_run_ticks() -> None:
    """The `backtests` worker consumes only its queue: with the default queue's worker gone, the
    scheduler is unavailable, and says which workers are missing."""
    heartbeat_record(component="beat", instance="b")
    heartbeat_record(component="worker", instance="backtests@h", details={"queues": ["backtests"]})
    state = selectors.scheduler_state()
    assert state["status"] == "unavailable" and state["workers_alive"] == 1
    assert any("'celery' queue" in r for r in state["reasons"]), state["reasons"]
    heartbeat_record(component="worker", instance="worker@h", details={"queues": ["celery"]})
    assert selectors.scheduler_state()["status"] == "ok"


@pytest.mark.django_db
def test_a_restart_clears_the_stop_mark() -> None:
    heartbeat_record(component="worker", instance="w", started=True)
    heartbeat_stop(component="worker", instance="w")
    heartbeat_record(component="worker", instance="w", started=True)
    row = ComponentHeartbeat.objects.get()
    assert row.stopped_at is None and row.started_at == row.last_seen_at
