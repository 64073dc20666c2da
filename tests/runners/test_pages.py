"""The bot page, the Runners page and the Jobs page, as a viewer reads them and an operator uses
them: every action through the page, every refusal visible with its code and trace id, and
polling that stops once nothing can change."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.bots.models import Bot
from apps.integrations.services import integration_verify
from apps.runners.models import Job, Runner
from apps.runners.services.jobs import job_claim
from apps.telemetry.models import AuditEvent
from apps.telemetry.services import heartbeat_record
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db


def _client(user: Any, htmx: bool = True) -> Client:
    client = Client(headers={"HX-Request": "true"} if htmx else {})
    client.force_login(user)
    return client


def _scheduler_alive() -> None:
    heartbeat_record(component="beat", instance="beat@t")
    heartbeat_record(component="worker", instance="worker@t")


@pytest.fixture
def ready(provider_stub: Any) -> Any:
    """Databento configured and verified against its stub; scheduler alive: a PAPER bot can start."""
    stub = provider_stub("databento")
    assert integration_verify(provider="databento").ok
    _scheduler_alive()
    return stub


def _job(**fields: Any) -> Job:
    return Job.objects.create(**{"type": "noop", "available_at": timezone.now(), "trace_id": "trace-job", **fields})


# --- the bot page --------------------------------------------------------------------------------


def test_a_viewer_reads_the_bot_page_config_runner_and_no_action(viewer: Any) -> None:
    bot = BotFactory(name="MES trend", stage=Bot.Stage.PAPER, config_version=2)
    Runner.objects.create(bot=bot, status=Runner.Status.FAILED, generation=4, last_error="feed dropped")
    response = _client(viewer, htmx=False).get(f"/bots/{bot.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    for text in ("MES trend", "trend_following", "MES", "5m", "sim", "databento", "v2", "PAPER", "LOCKED"):
        assert text in html
    for limit in ("max_position_contracts", "max_daily_loss", "max_orders_per_day"):
        assert limit in html
    assert "FAILED" in html and "SIM" in html and "feed dropped" in html and ">4<" in html  # generation
    assert "Heartbeat</dt><dd>never" in html and "Last tick</dt><dd>never" in html
    assert "hx-post" not in html and "an operator starts, stops, promotes and kills" in html


def test_an_unknown_bot_is_404_and_a_user_without_a_role_sees_nothing(viewer: Any, stranger: Any) -> None:
    assert _client(viewer, htmx=False).get("/bots/987654/").status_code == 404
    bot = BotFactory()
    for url in (f"/bots/{bot.pk}/", "/runners/", "/jobs/"):
        assert _client(stranger, htmx=False).get(url).status_code == 404, url


@pytest.mark.parametrize("action", ["start", "stop", "restart", "promote", "demote", "kill", "unkill"])
def test_a_viewer_may_not_act(viewer: Any, action: str) -> None:
    _scheduler_alive()
    bot = BotFactory(stage=Bot.Stage.PAPER, killed=action == "unkill", kill_reason="x")
    before = Bot.objects.filter(pk=bot.pk).values().get()
    response = _client(viewer).post(f"/bots/{bot.pk}/{action}", {"reason": "because", "to_stage": "LAB"})
    assert response.status_code == 403
    assert Bot.objects.filter(pk=bot.pk).values().get() == before
    assert not Runner.objects.exists() and not AuditEvent.objects.filter(target_type="bots.bot").exists()


def test_an_action_without_the_csrf_token_is_refused(operator: Any, ready: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    client = Client(enforce_csrf_checks=True, headers={"HX-Request": "true"})
    client.force_login(operator)
    assert client.post(f"/bots/{bot.pk}/start").status_code == 403
    assert client.post(f"/bots/{bot.pk}/kill", {"reason": "x"}).status_code == 403
    assert not Runner.objects.exists() and not Bot.objects.get(pk=bot.pk).killed


def test_a_refused_start_names_the_missing_key_and_trace_and_changes_nothing(operator: Any) -> None:
    _scheduler_alive()
    bot = BotFactory(stage=Bot.Stage.PAPER)
    before = Bot.objects.filter(pk=bot.pk).values().get()
    client = _client(operator)

    response = client.post(f"/bots/{bot.pk}/start", headers={"X-Trace-Id": "start-refused-1"})
    html = response.content.decode()
    assert response.status_code == 200  # shown in place by htmx, not an error page
    assert html.lstrip().startswith('<section id="bot-actions"')
    assert "Refused: <code>INTEGRATION_KEY_MISSING</code>" in html and "<code>DATABENTO_API_KEY</code>" in html
    assert "Fix:" in html and "start-refused-1" in html and response["X-Trace-Id"] == "start-refused-1"
    assert "bot-changed" in response["HX-Trigger"]
    assert not Runner.objects.exists()
    assert Bot.objects.filter(pk=bot.pk).values().get() == before

    # The refresh that follows shows the refusal in the bot's audit trail, with the same trace id.
    trail = client.get(f"/bots/{bot.pk}/").content.decode()
    assert "runner.start_refused" in trail and "INTEGRATION_KEY_MISSING" in trail and "start-refused-1" in trail


def test_without_htmx_a_refusal_renders_the_whole_page_with_its_status(operator: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER, killed=True, kill_reason="desk halt")
    response = _client(operator, htmx=False).post(f"/bots/{bot.pk}/start")
    html = response.content.decode()
    assert response.status_code == 409 and "<html" in html
    assert "Refused: <code>BOT_KILLED</code>" in html and response["X-Trace-Id"] in html
    assert not Runner.objects.exists()


def test_no_scheduler_refuses_the_start_visibly(operator: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    assert integration_verify(provider="databento").ok
    bot = BotFactory(stage=Bot.Stage.PAPER)
    html = _client(operator).post(f"/bots/{bot.pk}/start").content.decode()
    assert "SCHEDULER_UNAVAILABLE" in html and "Celery beat" in html
    assert not Runner.objects.exists()


def test_an_operator_starts_and_stops_and_the_page_polls_only_while_it_runs(operator: Any, ready: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    client = _client(operator)
    idle = client.get(f"/bots/{bot.pk}/")
    assert idle.status_code == 286 and "every 5s" not in idle.content.decode()

    started = client.post(f"/bots/{bot.pk}/start").content.decode()
    assert "Started: the runner is RUNNING in SIM mode, generation 1." in started
    assert f'hx-post="/bots/{bot.pk}/stop"' in started  # the panel now offers Stop
    runner = Runner.objects.get(bot=bot)
    assert runner.status == Runner.Status.RUNNING
    running = client.get(f"/bots/{bot.pk}/")
    assert running.status_code == 200 and 'hx-trigger="every 5s' in running.content.decode()

    stopped = client.post(f"/bots/{bot.pk}/stop", {"reason": "end of session"}).content.decode()
    assert "Stopped: the runner is STOPPED, generation 2." in stopped
    final = client.get(f"/bots/{bot.pk}/")
    html = final.content.decode()
    assert final.status_code == 286 and "STOPPED" in html and "every 5s" not in html
    assert "runner.start" in html and "runner.stop" in html and "end of session" in html
    # No secret reaches the page, though the key is set and used.
    for page in (started, stopped, html, _client(operator, htmx=False).get(f"/bots/{bot.pk}/").content.decode()):
        assert ready.good_env["DATABENTO_API_KEY"] not in page


def test_a_stopped_runner_with_a_pending_job_keeps_the_page_polling(viewer: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    runner = Runner.objects.create(bot=bot, status=Runner.Status.STOPPED, generation=2)
    job = _job(type="tick", runner=runner)
    assert _client(viewer).get(f"/bots/{bot.pk}/").status_code == 200
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    assert _client(viewer).get(f"/bots/{bot.pk}/").status_code == 286


def test_restart_of_a_running_bot_bumps_the_generation(operator: Any, ready: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    client = _client(operator)
    client.post(f"/bots/{bot.pk}/start")
    html = client.post(f"/bots/{bot.pk}/restart").content.decode()
    assert "Restarted: the runner is RUNNING in SIM mode, generation 3." in html


def test_kill_then_unkill_through_the_page(operator: Any, ready: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    client = _client(operator)
    client.post(f"/bots/{bot.pk}/start")

    killed = client.post(f"/bots/{bot.pk}/kill", {"reason": "slippage spike", "flatten": "on"}).content.decode()
    assert "Killed; the runner was stopped." in killed and "Flatten: requested" in killed
    bot.refresh_from_db()
    assert bot.killed and bot.kill_reason == "slippage spike"
    assert Runner.objects.get(bot=bot).status == Runner.Status.STOPPED
    assert f'hx-post="/bots/{bot.pk}/unkill"' in killed  # the panel now offers Unkill

    refused = client.post(f"/bots/{bot.pk}/start").content.decode()
    assert "Refused: <code>BOT_KILLED</code>" in refused and "slippage spike" in refused
    page = client.get(f"/bots/{bot.pk}/").content.decode()
    assert "KILLED" in page and "slippage spike" in page

    no_reason = client.post(f"/bots/{bot.pk}/unkill", {"reason": " "}).content.decode()
    assert "VALIDATION_ERROR" in no_reason and "<code>reason</code>" in no_reason
    assert Bot.objects.get(pk=bot.pk).killed

    unkilled = client.post(f"/bots/{bot.pk}/unkill", {"reason": "venue fixed"}).content.decode()
    assert "Unkilled: the kill latch is clear." in unkilled
    assert not Bot.objects.get(pk=bot.pk).killed
    assert Runner.objects.get(bot=bot).status == Runner.Status.STOPPED  # unkill restarts nothing

    trail = client.get(f"/bots/{bot.pk}/").content.decode()
    for action in ("bot.kill_latch", "bot.kill_switch", "runner.start_refused", "bot.unkill_refused", "bot.unkill"):
        assert action in trail, action
    assert "venue fixed" in trail


def test_promote_with_failing_gates_shows_the_gate_table(operator: Any) -> None:
    bot = BotFactory()  # LAB
    client = _client(operator)
    page = _client(operator, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    assert "Promote LAB → PAPER" in page and 'name="override"' not in page  # overrides are an admin's

    response = client.post(f"/bots/{bot.pk}/promote", {"to_stage": "PAPER", "reason": "looks good"})
    html = response.content.decode()
    assert "Refused: <code>PROMOTION_GATE_FAILED</code>" in html and response["X-Trace-Id"] in html
    assert '<code>backtest_promotable</code></td><td class="bad">failed' in html
    assert '<code>strategy_valid</code></td><td class="ok">passed' in html
    assert Bot.objects.get(pk=bot.pk).stage == Bot.Stage.LAB

    forced = client.post(f"/bots/{bot.pk}/promote", {"to_stage": "PAPER", "reason": "trust me", "override": "on"})
    assert "PERMISSION_DENIED" in forced.content.decode()
    assert Bot.objects.get(pk=bot.pk).stage == Bot.Stage.LAB


def test_an_admin_overrides_lab_to_paper_with_a_reason(admin_user: Any) -> None:
    bot = BotFactory()
    client = _client(admin_user)
    assert 'name="override"' in _client(admin_user, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    html = client.post(
        f"/bots/{bot.pk}/promote", {"to_stage": "PAPER", "reason": "paper is simulated", "override": "on"}
    ).content.decode()
    assert "Promoted LAB → PAPER by admin override." in html and "admin_override" in html
    assert Bot.objects.get(pk=bot.pk).stage == Bot.Stage.PAPER
    assert AuditEvent.objects.get(action="bot.promote").after["override"] is True


def test_an_operator_demotes_and_is_told_live_needs_an_admin(operator: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    client = _client(operator)
    page = _client(operator, htmx=False).get(f"/bots/{bot.pk}/").content.decode()
    assert "Promotion to LIVE needs an admin." in page
    html = client.post(f"/bots/{bot.pk}/demote", {"to_stage": "LAB", "reason": "rework"}).content.decode()
    assert "Demoted PAPER → LAB" in html
    assert Bot.objects.get(pk=bot.pk).stage == Bot.Stage.LAB


# --- the Runners page ------------------------------------------------------------------------------


def test_a_viewer_sees_every_runner(viewer: Any) -> None:
    running = Runner.objects.create(
        bot=BotFactory(name="alpha"),
        status=Runner.Status.RUNNING,
        mode=Runner.Mode.SIM,
        generation=7,
        heartbeat_at=timezone.now() - timedelta(minutes=2),
        last_tick_at=timezone.now().replace(year=2025, month=3, day=3, hour=14, minute=35, second=0),
    )
    Runner.objects.create(bot=BotFactory(name="beta"), status=Runner.Status.FAILED, last_error="tick crashed")
    response = _client(viewer, htmx=False).get("/runners/")
    html = response.content.decode()
    assert response.status_code == 200 and '<a href="/runners/" aria-current="page">Runners</a>' in html
    assert f'href="/bots/{running.bot_id}/"' in html and "alpha" in html and "beta" in html
    assert "RUNNING" in html and "FAILED" in html and "SIM" in html and ">7<" in html
    assert "2\xa0minutes ago" in html and "2025-03-03 14:35:00" in html and "tick crashed" in html
    assert "hx-post" not in html


def test_the_runners_page_polls_only_while_something_can_change(viewer: Any) -> None:
    runner = Runner.objects.create(bot=BotFactory(), status=Runner.Status.STOPPED)
    client = _client(viewer)
    stopped = client.get("/runners/")
    assert stopped.status_code == 286 and "every 5s" not in stopped.content.decode()
    Runner.objects.filter(pk=runner.pk).update(status=Runner.Status.RUNNING)
    running = client.get("/runners/")
    assert running.status_code == 200 and 'hx-trigger="every 5s' in running.content.decode()
    assert running.content.decode().lstrip().startswith('<section id="runner-table"')


# --- the Jobs page ---------------------------------------------------------------------------------


def test_a_viewer_reads_the_ledger_newest_first_with_what_an_operator_needs(viewer: Any) -> None:
    runner = Runner.objects.create(bot=BotFactory(name="gamma"), status=Runner.Status.RUNNING)
    old = _job(status=Job.Status.DEAD, attempts=3, error="lease expired after 3 attempts", trace_id="trace-old")
    leased = _job(type="tick", runner=runner, trace_id="trace-new")
    job_claim(job_id=leased.pk, worker="worker@h", lease_seconds=60)
    leased.refresh_from_db()
    html = _client(viewer, htmx=False).get("/jobs/").content.decode()
    assert html.index(f'id="job-{leased.pk}"') < html.index(f'id="job-{old.pk}"')
    assert "3/3" in html and "1/3" in html and "lease expired after 3 attempts" in html
    assert "trace-old" in html and "trace-new" in html and "gamma" in html
    assert f"lease until {timezone.localtime(leased.lease_expires_at):%H:%M:%S}" in html and "worker@h" in html
    assert "hx-post" not in html  # a viewer has no retry or cancel


def test_the_jobs_page_filters_by_status_type_runner_and_bot(viewer: Any) -> None:
    r1 = Runner.objects.create(bot=BotFactory(), status=Runner.Status.STOPPED)
    r2 = Runner.objects.create(bot=BotFactory(), status=Runner.Status.STOPPED)
    dead_tick = _job(type="tick", status=Job.Status.DEAD, runner=r1)
    other_tick = _job(type="tick", status=Job.Status.SUCCEEDED, runner=r2)
    noop = _job(status=Job.Status.DEAD)
    client = _client(viewer, htmx=False)

    def ids(query: dict[str, Any]) -> set[int]:
        html = client.get("/jobs/", query).content.decode()
        return {j.pk for j in (dead_tick, other_tick, noop) if f'id="job-{j.pk}"' in html}

    assert ids({"status": "DEAD"}) == {dead_tick.pk, noop.pk}
    assert ids({"type": "tick"}) == {dead_tick.pk, other_tick.pk}
    assert ids({"runner": r2.pk}) == {other_tick.pk}
    assert ids({"bot": r1.bot_id}) == {dead_tick.pk}
    assert ids({"status": "DEAD", "type": "noop"}) == {noop.pk}
    bad = client.get("/jobs/", {"status": "LOST"}).content.decode()
    assert "Ignored: <code>status</code>" in bad and f'id="job-{noop.pk}"' in bad


def test_the_jobs_page_is_paginated(viewer: Any) -> None:
    now = timezone.now()
    Job.objects.bulk_create(
        Job(type="noop", status=Job.Status.SUCCEEDED, available_at=now, trace_id=f"t{n}") for n in range(51)
    )
    newest, oldest = Job.objects.order_by("-created_at", "-id")[0], Job.objects.order_by("created_at", "id")[0]
    client = _client(viewer, htmx=False)
    first = client.get("/jobs/", {"status": "SUCCEEDED"}).content.decode()
    assert first.count('<tr id="job-') == 50 and f'id="job-{newest.pk}"' in first
    assert "?status=SUCCEEDED&amp;page=2" in first and "Newer" not in first
    second = client.get("/jobs/", {"status": "SUCCEEDED", "page": 2}).content.decode()
    assert second.count('<tr id="job-') == 1 and f'id="job-{oldest.pk}"' in second and "Older" not in second


def test_an_operator_retries_and_cancels_jobs_from_the_page(operator: Any) -> None:
    dead = _job(status=Job.Status.DEAD, attempts=3, error="boom")
    queued = _job()
    client = _client(operator)
    assert f'hx-post="/jobs/{dead.pk}/retry"' in _client(operator, htmx=False).get("/jobs/").content.decode()

    retried = client.post(f"/jobs/{dead.pk}/retry")
    html = retried.content.decode()
    assert retried.status_code == 200 and html.lstrip().startswith('<div id="job-outcome"')
    assert f"Job {dead.pk} (noop) is QUEUED again" in html and retried["X-Trace-Id"] in html
    assert "jobs-changed" in retried["HX-Trigger"]
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.error) == (Job.Status.QUEUED, 0, "")

    cancelled = client.post(f"/jobs/{queued.pk}/cancel", headers={"HX-Prompt": "wrong params"}).content.decode()
    assert f"Job {queued.pk} (noop) is CANCELLED." in cancelled
    assert AuditEvent.objects.get(action="job.cancel", target_id=str(queued.pk)).reason == "wrong params"


def test_a_refused_job_action_is_shown_with_its_code_and_trace(operator: Any) -> None:
    done = _job(status=Job.Status.SUCCEEDED)
    leased = _job()
    job_claim(job_id=leased.pk, worker="w", lease_seconds=60)
    client = _client(operator)
    retry = client.post(f"/jobs/{done.pk}/retry")
    assert "Refused: <code>JOB_NOT_RETRYABLE</code>" in retry.content.decode()
    assert retry["X-Trace-Id"] in retry.content.decode()
    cancel = client.post(f"/jobs/{leased.pk}/cancel").content.decode()
    assert "Refused: <code>JOB_NOT_CANCELLABLE</code>" in cancel and "live lease" in cancel
    assert Job.objects.get(pk=done.pk).status == Job.Status.SUCCEEDED
    assert Job.objects.get(pk=leased.pk).status == Job.Status.RUNNING


def test_a_viewer_may_not_retry_or_cancel(viewer: Any) -> None:
    dead, queued = _job(status=Job.Status.DEAD), _job()
    client = _client(viewer)
    assert client.post(f"/jobs/{dead.pk}/retry").status_code == 403
    assert client.post(f"/jobs/{queued.pk}/cancel").status_code == 403
    assert Job.objects.get(pk=dead.pk).status == Job.Status.DEAD
    assert Job.objects.get(pk=queued.pk).status == Job.Status.QUEUED
    assert _client(viewer).post("/jobs/987654/retry").status_code == 403  # the role first, then the id


def test_the_jobs_page_polls_only_while_a_job_can_move(viewer: Any) -> None:
    r1 = Runner.objects.create(bot=BotFactory(), status=Runner.Status.STOPPED)
    r2 = Runner.objects.create(bot=BotFactory(), status=Runner.Status.STOPPED)
    _job(status=Job.Status.DEAD, runner=r1)
    client = _client(viewer)
    settled = client.get("/jobs/")
    assert settled.status_code == 286 and "every 5s" not in settled.content.decode()
    assert settled.content.decode().lstrip().startswith('<section id="job-table"')

    _job(runner=r2)  # QUEUED
    assert client.get("/jobs/").status_code == 200
    assert 'hx-trigger="every 5s' in client.get("/jobs/").content.decode()
    assert client.get("/jobs/", {"runner": r1.pk}).status_code == 286  # r1's part of the ledger is settled
    retrying = _job(status=Job.Status.FAILED, attempts=1, runner=r1)
    assert client.get("/jobs/", {"runner": r1.pk}).status_code == 200  # a retry is due
    Job.objects.filter(pk=retrying.pk).update(status=Job.Status.DEAD)
    Runner.objects.filter(pk=r1.pk).update(status=Runner.Status.RUNNING)
    assert client.get("/jobs/", {"runner": r1.pk}).status_code == 200  # a running runner dispatches ticks


def test_reconcile_and_trading_state_from_the_bot_page(operator: Any, viewer: Any) -> None:
    from apps.trading.models import ReconcileReport, TradingState

    bot = BotFactory(stage=Bot.Stage.PAPER)
    TradingState.objects.create(bot_id=bot.pk, state="HALTED", reason_code="RECONCILE_MISMATCH")
    assert _client(viewer).post(f"/bots/{bot.pk}/reconcile").status_code == 403
    client = _client(operator)
    page = client.get(f"/bots/{bot.pk}/").content.decode()
    assert '<span class="bad">HALTED</span>' in page
    answer = client.post(f"/bots/{bot.pk}/reconcile").content.decode()
    report = ReconcileReport.objects.get(bot_id=bot.pk)
    assert f"Reconcile {report.pk}: MATCHED." in answer
    refused = client.post(f"/bots/{bot.pk}/trading-state", {"state": "ACTIVE", "reason": ""}).content.decode()
    assert "VALIDATION_ERROR" in refused and TradingState.objects.get(bot_id=bot.pk).state == "HALTED"
    done = client.post(f"/bots/{bot.pk}/trading-state", {"state": "ACTIVE", "reason": "differences settled by hand"})
    assert "Trading state ACTIVE." in done.content.decode()
    assert TradingState.objects.get(bot_id=bot.pk).state == "ACTIVE"
