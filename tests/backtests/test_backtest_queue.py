"""Backtests run on their own Celery queue (SPEC §9), so they never delay a tick: the job's message
goes to `backtests`, the Procfile's `worker` (ticks) does not consume it, and its `backtests`
worker runs it to the stored result (request → job → bars fetched, metered → engine → result)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.backtests.models import Backtest
from apps.runners.models import Job
from apps.runners.services.jobs import job_enqueue
from apps.telemetry.models import ComponentHeartbeat, IntegrationUsageEvent
from tests.backtests.conftest import strategy_body
from tests.runners.test_job_workers import Processes

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
QUEUES = ("celery", "backtests")


def _procfile_queues() -> dict[str, str]:
    """process name → the queue its `-Q` names, for the Procfile's Celery workers."""
    out = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if " worker " in f" {command} ":
            match = re.search(r"\s-Q\s+(\S+)", command)
            assert match, f"the Procfile's {name} worker names no queue: it would consume the default one"
            out[name.strip()] = match[1]
    return out


@pytest.fixture
def broker(real_celery: Any) -> Iterator[Any]:
    with real_celery.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete(*QUEUES, "unacked", "unacked_index", "unacked_mutex")
        yield client
        client.delete(*QUEUES, "unacked", "unacked_index", "unacked_mutex")


def _messages(broker: Any, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]


def test_the_procfile_runs_ticks_and_backtests_in_separate_workers() -> None:
    assert _procfile_queues() == {"worker": "celery", "backtests": "backtests"}
    # On a box a matrix keeps busy, the CPU goes to ticks first: the backtests worker runs niced, and
    # so does its session's autogroup (honcho starts each process in a session of its own, and Linux
    # shares the CPUs between sessions first: nice alone would change nothing between the workers).
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)
    assert "echo 10 > /proc/self/autogroup" in procfile["backtests"]
    assert "exec nice -n 10 celery" in procfile["backtests"]
    assert "nice" not in procfile["worker"]


def test_a_backtest_job_is_published_to_the_backtests_queue_and_a_tick_job_is_not(
    broker: Any, token_client: Any, settings: Any
) -> None:
    created = token_client("operator").post("/api/backtests", strategy_body(), format="json").json()
    noop = job_enqueue(type="noop")
    (message,) = _messages(broker, "backtests")
    assert message["headers"]["task"] == "apps.runners.tasks.job_run"
    args, _, _ = json.loads(base64.b64decode(message["body"]))
    assert args == [created["job_id"]]
    # Its own time limit: it extends its lease while it works, so it may outlast JOB_LEASE_SECONDS.
    hard, soft = message["headers"]["timelimit"]
    assert hard == settings.BACKTEST_JOB_TIME_LIMIT_SECONDS and soft < hard
    (default,) = _messages(broker, "celery")
    assert json.loads(base64.b64decode(default["body"]))[0] == [noop.pk]


def test_only_the_backtests_worker_runs_a_backtest(
    broker: Any, token_client: Any, provider_stub: Any, tmp_path: Path
) -> None:
    provider_stub("databento")  # its URL and key reach the workers through the environment
    queues = _procfile_queues()
    processes = Processes(tmp_path)

    def worker(name: str) -> None:
        processes.start(
            name, "worker", "-Q", queues[name], "--pool", "solo", "--hostname", f"{name}-bt@%h",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
        )  # fmt: skip

    def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"not met within {timeout:.0f}s: {what}\n{processes.output()}")

    try:
        worker("worker")
        tick_side = job_enqueue(type="noop")
        wait_for(lambda: Job.objects.get(pk=tick_side.pk).status == "SUCCEEDED", "the ticks worker is consuming")
        created = token_client("operator").post("/api/backtests", strategy_body(), format="json").json()
        time.sleep(2)
        assert Backtest.objects.get(pk=created["id"]).status == "QUEUED"  # the ticks worker left it
        assert broker.llen("backtests") == 1

        worker("backtests")
        wait_for(lambda: Backtest.objects.get(pk=created["id"]).status not in ("QUEUED", "RUNNING"), "the backtest ran")
        backtest = Backtest.objects.get(pk=created["id"])
        job = Job.objects.get(pk=created["job_id"])
        assert backtest.status == "SUCCEEDED", (backtest.error, job.error)
        assert job.status == "SUCCEEDED" and job.leased_by.startswith("backtests-bt@")
        assert backtest.trades.exists() and IntegrationUsageEvent.objects.filter(provider="databento").exists()
        heartbeat = ComponentHeartbeat.objects.get(component="worker", instance__startswith="backtests-bt@")
        assert heartbeat.details["queues"] == ["backtests"]
        # The backtests worker loaded the compiled engine as it started; the ticks worker never does.
        logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in ("worker", "backtests")}
        assert "engine kernel ready in" in logs["backtests"], processes.output()
        assert "engine kernel" not in logs["worker"], processes.output()
    finally:
        processes.stop_all()
