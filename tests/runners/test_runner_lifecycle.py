"""Safe start, stop, restart: every gate runs before anything moves; a refusal changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from apps.bots.models import Bot
from apps.integrations.services import integration_verify
from apps.runners.models import Runner
from apps.telemetry.models import AuditEvent
from apps.telemetry.services import heartbeat_record

pytestmark = pytest.mark.django_db


def _bot(**fields: Any) -> Bot:
    defaults = {"name": "MES trend", "strategy_key": "trend_following", "instrument": "MES", "stage": Bot.Stage.PAPER}
    return Bot.objects.create(**{**defaults, **fields})


def _scheduler_alive() -> None:
    heartbeat_record(component="beat", instance="beat@t")
    heartbeat_record(component="worker", instance="worker@t")


@pytest.fixture
def ready(provider_stub: Any) -> Any:
    """Databento configured and verified against its stub; scheduler alive."""
    stub = provider_stub("databento")
    assert integration_verify(provider="databento").ok
    _scheduler_alive()
    return stub


def _start(client: Any, bot: Bot) -> Any:
    return client.post("/api/runners/start", {"bot_id": bot.pk}, format="json")


def test_with_keys_missing_start_answers_key_missing_and_nothing_moves(token_client: Any) -> None:
    _scheduler_alive()
    bot = _bot()
    before = Bot.objects.filter(pk=bot.pk).values().get()
    response = _start(token_client("operator"), bot)
    body = response.json()
    assert response.status_code == 409 and body["error_code"] == "INTEGRATION_KEY_MISSING"
    assert body["missing_env_vars"] == ["DATABENTO_API_KEY"]
    assert body["trace_id"] == response["X-Trace-Id"] and body["suggested_fix"]
    assert not Runner.objects.exists()
    assert Bot.objects.filter(pk=bot.pk).values().get() == before
    refusal = AuditEvent.objects.get(action="runner.start_refused")
    assert refusal.after["error_code"] == "INTEGRATION_KEY_MISSING" and refusal.trace_id == body["trace_id"]


def test_a_configured_but_unverified_provider_is_refused(token_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    _scheduler_alive()
    response = _start(token_client("operator"), _bot())
    assert response.json()["error_code"] == "INTEGRATION_NOT_CONNECTED"


def test_a_killed_bot_is_refused_first(token_client: Any, ready: Any) -> None:
    bot = _bot(killed=True, kill_reason="runaway")
    response = _start(token_client("operator"), bot)
    assert response.status_code == 409 and response.json()["error_code"] == "BOT_KILLED"
    assert not Runner.objects.exists()


@pytest.mark.parametrize("stage", [Bot.Stage.LAB, Bot.Stage.RETIRED])
def test_lab_and_retired_bots_do_not_run(token_client: Any, ready: Any, stage: str) -> None:
    response = _start(token_client("operator"), _bot(stage=stage))
    assert response.json()["error_code"] == "BOT_STAGE_NOT_RUNNABLE"


def test_no_scheduler_no_start(token_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    assert integration_verify(provider="databento").ok
    response = _start(token_client("operator"), _bot())
    assert response.status_code == 409 and response.json()["error_code"] == "SCHEDULER_UNAVAILABLE"


def test_a_live_bot_needs_its_broker_configured(token_client: Any, ready: Any) -> None:
    bot = _bot(stage=Bot.Stage.LIVE, venue=Bot.Venue.TRADOVATE, broker_account="DEMO1")
    body = _start(token_client("operator"), bot).json()
    assert body["error_code"] == "INTEGRATION_KEY_MISSING" and "TRADOVATE_PASSWORD" in body["missing_env_vars"]


def test_start_stop_restart_with_fencing_generations(token_client: Any, ready: Any) -> None:
    client, bot = token_client("operator"), _bot()
    started = _start(client, bot)
    assert started.status_code == 200, started.json()
    assert (started.json()["status"], started.json()["mode"], started.json()["generation"]) == ("RUNNING", "SIM", 1)
    again = _start(client, bot)
    assert again.status_code == 409 and again.json()["error_code"] == "RUNNER_ALREADY_RUNNING"
    restarted = client.post("/api/runners/restart", {"bot_id": bot.pk}, format="json").json()
    assert restarted["status"] == "RUNNING" and restarted["generation"] == 3  # stop bumped it, start again
    stopped = client.post("/api/runners/stop", {"bot_id": bot.pk}, format="json").json()
    assert stopped["status"] == "STOPPED" and stopped["generation"] == 4
    not_running = client.post("/api/runners/stop", {"bot_id": bot.pk}, format="json")
    assert not_running.status_code == 409 and not_running.json()["error_code"] == "RUNNER_NOT_RUNNING"
    actions = list(AuditEvent.objects.filter(target_id=str(bot.pk)).values_list("action", flat=True))
    assert actions.count("runner.start") == 2 and actions.count("runner.stop") == 2


def test_a_restart_that_could_not_start_does_not_stop(token_client: Any, ready: Any) -> None:
    client, bot = token_client("operator"), _bot()
    assert _start(client, bot).status_code == 200
    Bot.objects.filter(pk=bot.pk).update(stage=Bot.Stage.LAB)  # demoted meanwhile
    response = client.post("/api/runners/restart", {"bot_id": bot.pk}, format="json")
    assert response.json()["error_code"] == "BOT_STAGE_NOT_RUNNABLE"
    assert Runner.objects.get(bot=bot).status == Runner.Status.RUNNING


def test_viewers_cannot_start_and_the_list_is_readable(token_client: Any, ready: Any) -> None:
    bot = _bot()
    assert _start(token_client("viewer"), bot).status_code == 403
    _start(token_client("operator"), bot)
    listing = token_client("viewer", username="v2").get("/api/runners").json()
    assert listing["count"] == 1 and listing["results"][0]["bot_id"] == bot.pk
    runner_id = listing["results"][0]["id"]
    assert token_client("viewer", username="v3").get(f"/api/runners/{runner_id}").json()["status"] == "RUNNING"


def test_system_status_counts_bots_and_runners_from_rows(token_client: Any, ready: Any) -> None:
    _start(token_client("operator"), _bot())
    _bot(name="lab one", stage=Bot.Stage.LAB)
    status = token_client("viewer", username="v4").get("/api/system/status").json()
    assert status["bots"]["byStage"] == {"PAPER": 1, "LAB": 1}
    assert status["bots"]["byAutonomyTier"] == {"LOCKED": 2}
    assert status["runners"]["byStatus"] == {"RUNNING": 1}


def _demote(client: Any, bot: Bot, to_stage: str) -> Any:
    return client.post(f"/api/bots/{bot.pk}/demote", {"to_stage": to_stage, "reason": "drawdown"}, format="json")


def test_demoting_a_live_bot_stops_its_live_runner(token_client: Any, db: Any) -> None:
    # A LIVE runner must not keep sending orders to the broker for a bot that is now PAPER.
    bot = _bot(stage=Bot.Stage.LIVE)
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.LIVE, generation=3)
    response = _demote(token_client("operator"), bot, "PAPER")
    assert response.status_code == 200, response.json()
    runner.refresh_from_db()
    assert (runner.status, runner.generation) == (Runner.Status.STOPPED, 4)  # in-flight LIVE work fenced
    stop = AuditEvent.objects.get(action="runner.stop")
    assert stop.reason == "demoted to PAPER: drawdown" and stop.actor_label.startswith("operator")


def test_demoting_to_lab_stops_a_paper_runner_and_paper_to_paper_runs_on(token_client: Any, db: Any) -> None:
    paper = _bot(stage=Bot.Stage.PAPER)
    sim = Runner.objects.create(bot=paper, status=Runner.Status.RUNNING, mode=Runner.Mode.SIM)
    assert _demote(token_client("operator"), paper, "LAB").status_code == 200
    sim.refresh_from_db()
    assert sim.status == Runner.Status.STOPPED
    # A refused demotion (not a demotion: LAB→PAPER) touches no runner.
    lab = _bot(name="other", stage=Bot.Stage.LAB)
    other = Runner.objects.create(bot=lab, status=Runner.Status.RUNNING, mode=Runner.Mode.SIM)
    assert _demote(token_client("operator"), lab, "PAPER").status_code == 409
    other.refresh_from_db()
    assert other.status == Runner.Status.RUNNING


def test_a_system_demotion_stops_the_runner_under_its_own_name(db: Any) -> None:
    from apps.runners.services.runners import bot_demote

    bot = _bot(stage=Bot.Stage.LIVE)
    Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.LIVE)
    bot_demote(bot=bot, to_stage="PAPER", reason="daily loss breaker", actor=None, actor_label="system:supervisor")
    assert Runner.objects.get(bot=bot).status == Runner.Status.STOPPED
    assert AuditEvent.objects.get(action="runner.stop").actor_label == "system:supervisor"
