"""The tick pipeline end to end against the Databento stub: one trace per tick, real bars (metered),
SIM orders filled on the real next bar, and every stop named with its stage and reason code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.bots.models import Bot
from apps.runners.models import Runner
from apps.runners.services import tick
from apps.telemetry.models import DecisionTrace, IntegrationUsageEvent
from apps.trading.models import Fill, Order
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

AS_OF = datetime(2025, 12, 16, 16, 0, 30, tzinfo=UTC)  # Tuesday 10:00 CT: CME open
BAR = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)


@pytest.fixture
def paper(provider_stub: Any) -> Runner:
    provider_stub("databento")
    bot = BotFactory(stage=Bot.Stage.PAPER, timeframe="1m")
    return Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.SIM, generation=1)


def _tick(client: Any, runner: Runner, as_of: datetime | None = AS_OF) -> Any:
    body = {"as_of": as_of.isoformat()} if as_of else {}
    return client.post(f"/api/runners/{runner.pk}/tick", body, format="json")


def test_a_forced_tick_trades_on_real_bars_fills_on_the_next_bar_and_is_explained(
    token_client: Any, paper: Runner
) -> None:
    before = IntegrationUsageEvent.objects.filter(provider="databento").count()
    response = _tick(token_client("operator"), paper)
    body = response.json()
    assert response.status_code == 200, body
    assert IntegrationUsageEvent.objects.filter(provider="databento", bot_id=paper.bot_id).count() > before
    assert body["outcome"] == "TRADE" and body["replay"] is True and body["bar_ts"].startswith("2025-12-16T16:00")
    assert [s["stage"] for s in body["stages"]] == [
        "guard",
        "market_hours",
        "market_data",
        "strategy",
        "risk",
        "execution",
    ]
    assert all(s["latency_ms"] >= 0 for s in body["stages"])
    assert body["decision"]["reasons"][0]["code"] in ("TREND_UP", "TREND_DOWN")
    assert {"close", "fast_sma", "slow_sma", "atr"} <= set(body["decision"]["features"])
    order = Order.objects.get(bot_id=paper.bot_id, order_type="MARKET")
    assert order.status == "FILLED" and body["order"]["client_order_id"] == order.client_order_id
    fill = Fill.objects.get(order=order)
    assert fill.filled_at == BAR  # the bar that opened when the decision was made, not a made-up price
    # The position it opened is protected at the decision's stop.
    stop = Order.objects.get(bot_id=paper.bot_id, order_type="STOP")
    assert stop.status == "WORKING" and stop.side != order.side and stop.quantity == 1
    assert stop.stop_price == Decimal(body["decision"]["stop_price"])
    assert body["trace_id"] == response["X-Trace-Id"]
    assert DecisionTrace.objects.filter(bot_id=paper.bot_id).count() == 1


def test_a_replayed_trace_gives_the_same_decision(token_client: Any, paper: Runner) -> None:
    _tick(token_client("operator"), paper)
    trace = DecisionTrace.objects.get()
    replay = tick.trace_replay(trace)
    assert replay["same"] is True, replay


def test_outside_cme_hours_the_trace_says_market_closed(token_client: Any, paper: Runner) -> None:
    saturday = datetime(2025, 12, 20, 16, 0, 30, tzinfo=UTC)
    body = _tick(token_client("operator"), paper, saturday).json()
    assert (body["outcome"], body["stopped_at"], body["reason_code"]) == ("NO_TRADE", "market_hours", "MARKET_CLOSED")
    assert not Order.objects.exists()


@pytest.mark.parametrize(("mode", "code"), [("timeout", "DATA_UNAVAILABLE"), ("bad_key", "DATA_UNAVAILABLE")])
def test_provider_trouble_stops_at_market_data_with_no_order(
    token_client: Any, paper: Runner, provider_stub: Any, mode: str, code: str
) -> None:
    stub = provider_stub("databento")
    stub.mode = mode
    body = _tick(token_client("operator"), paper).json()
    assert (body["outcome"], body["stopped_at"], body["reason_code"]) == ("NO_TRADE", "market_data", code)
    assert not Order.objects.exists()
    paper.refresh_from_db()
    assert paper.last_error.startswith(code)  # the bot's state says why it is not trading


def test_stale_bars_stop_the_tick(token_client: Any, paper: Runner, provider_stub: Any, settings: Any) -> None:
    settings.MARKET_DATA_RECENT_HOURS = 24 * 365 * 20  # treat this replayed morning as "now"
    stub = provider_stub("databento")
    stub.mode, stub.stale_lag = "stale", timedelta(minutes=5)
    body = _tick(token_client("operator"), paper).json()
    assert (body["stopped_at"], body["reason_code"]) == ("market_data", "DATA_STALE")
    assert not Order.objects.exists()


def test_a_killed_bot_is_stopped_at_the_guard(token_client: Any, paper: Runner) -> None:
    Bot.objects.filter(pk=paper.bot_id).update(killed=True, kill_reason="runaway")
    body = _tick(token_client("operator"), paper).json()
    assert (body["stopped_at"], body["reason_code"]) == ("guard", "BOT_KILLED")
    assert not Order.objects.exists()


def test_kill_all_stops_every_tick_at_the_guard_a_bot_never_killed_included(
    token_client: Any, paper: Runner, operator: Any
) -> None:
    from apps.trading import kill_switch

    kill_switch.kill_all_engage(actor=operator, reason="exchange outage")
    body = _tick(token_client("operator"), paper).json()
    assert (body["stopped_at"], body["reason_code"]) == ("guard", "BOT_KILLED")
    assert "kill-all (scope: global)" in body["message"] and "exchange outage" in body["message"]
    assert not Order.objects.exists()


def test_a_bar_is_ticked_once_and_a_fenced_tick_does_nothing(paper: Runner) -> None:
    first = tick.tick_run(runner_id=paper.pk, bar_ts=BAR, generation=1)
    again = tick.tick_run(runner_id=paper.pk, bar_ts=BAR, generation=1)
    assert first is not None and again is not None and first.pk == again.pk
    assert tick.tick_run(runner_id=paper.pk, bar_ts=BAR + timedelta(minutes=1), generation=0) is None  # restarted
    assert DecisionTrace.objects.count() == 1 and Order.objects.count() <= 1


def test_replays_are_sim_only_and_need_a_running_runner(token_client: Any, paper: Runner) -> None:
    Runner.objects.filter(pk=paper.pk).update(mode=Runner.Mode.LIVE)
    assert _tick(token_client("operator"), paper).json()["error_code"] == "REPLAY_SIM_ONLY"
    Runner.objects.filter(pk=paper.pk).update(status=Runner.Status.STOPPED, mode=Runner.Mode.SIM)
    response = _tick(token_client("operator"), paper)
    assert response.status_code == 409 and response.json()["error_code"] == "RUNNER_NOT_RUNNING"
    assert _tick(token_client("viewer"), paper).status_code == 403


def test_decision_traces_answer_why_traded_and_why_not(token_client: Any, paper: Runner) -> None:
    client = token_client("operator")
    _tick(client, paper)
    _tick(client, paper, datetime(2025, 12, 20, 16, 0, 30, tzinfo=UTC))
    traded = client.get(f"/api/bots/{paper.bot_id}/decision-traces?outcome=TRADE").json()
    not_traded = client.get(f"/api/bots/{paper.bot_id}/decision-traces?outcome=NO_TRADE").json()
    assert [t["outcome"] for t in traded["results"]] == ["TRADE"]
    assert [t["reason_code"] for t in not_traded["results"]] == ["MARKET_CLOSED"]
    assert client.get(f"/api/bots/{paper.bot_id}/decision-traces?outcome=MAYBE").status_code == 400


def test_a_bot_without_data_shows_degraded_in_system_status(
    token_client: Any, paper: Runner, provider_stub: Any, settings: Any
) -> None:
    settings.STATUS_SNAPSHOT_SECONDS = 0
    provider_stub("databento").mode = "timeout"
    client = token_client("operator")
    _tick(client, paper)
    status = client.get("/api/system/status").json()
    assert status["status"] in ("DEGRADED", "BLOCKED")
    (warning,) = [w for w in status["warnings"] if w["component"] == f"runner:{paper.pk}"]
    assert warning["code"] == "DATA_UNAVAILABLE" and warning["degrades"] is True


def test_performance_is_computed_from_fills_and_unknown_is_null_with_a_reason(token_client: Any, paper: Runner) -> None:
    client = token_client("viewer")
    empty = client.get(f"/api/bots/{paper.bot_id}/performance").json()
    assert empty["total"]["trades"] == 0 and empty["total"]["win_rate"] is None
    assert empty["total"]["unknown"]["win_rate"] == "no closed trades yet"
    _tick(token_client("operator"), paper)
    body = client.get(f"/api/bots/{paper.bot_id}/performance").json()
    fill = Fill.objects.get()
    assert body["total"]["fills"] == 1 and Decimal(body["total"]["fees"]) == fill.fee
    assert body["days"][0]["trade_date"] == "2025-12-16"
    (position,) = body["positions"]
    assert position["quantity"] in (1, -1) and position["unrealized_pnl"] is not None  # marked at the stored bar
    assert body["mark"]["price"] is not None and body["unknown_orders"] == 0


@pytest.mark.parametrize(
    ("venue", "account", "symbol_field", "symbol"),
    [("tradovate", "DEMO123457", "symbol", "MESZ5"), ("ironbeam", "51395670", "exchSym", "XCME:MES.Z25")],
)
def test_a_live_tick_sends_one_order_to_the_broker_through_risk(
    provider_stub: Any, monkeypatch: pytest.MonkeyPatch, venue: str, account: str, symbol_field: str, symbol: str
) -> None:
    import importlib

    from django.utils import timezone

    from apps.trading.models import AccountRisk

    broker_module = importlib.import_module(f"apps.integrations.{venue}.client")
    broker_module.clear_token_cache()
    provider_stub("databento")
    broker = provider_stub(venue)
    bar = datetime(2025, 12, 9, 16, 0, tzinfo=UTC)  # a Tuesday before the December roll: the Z5 contract
    monkeypatch.setattr(timezone, "now", lambda: bar + timedelta(seconds=4))  # the tick runs live, at that bar
    bot = BotFactory(stage=Bot.Stage.LIVE, venue=venue, broker_account=account, timeframe="1m")
    AccountRisk.objects.create(venue=venue, account=account, max_contracts=4)
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.LIVE, generation=2)
    trace = tick.tick_run(runner_id=runner.pk, bar_ts=bar, generation=2)
    assert trace is not None and trace.outcome == "TRADE", (trace.stopped_at, trace.reason_code, trace.message)
    assert trace.mode == "LIVE" and trace.order["status"] == "WORKING"
    # Tradovate takes the entry with its protective stop as one OSO; Ironbeam the entry alone.
    sent = broker.placed_oso if venue == "tradovate" else broker.placed
    (placed,) = sent
    assert placed[symbol_field] == symbol and placed.get("quantity", placed.get("orderQty")) == 1
    if venue == "tradovate":  # Tradovate keeps our id (clOrdId); Ironbeam has no field for it
        assert placed["clOrdId"] == trace.order["client_order_id"] and placed["bracket1"]["orderType"] == "Stop"
        assert broker.placed == []
    assert {c["name"] for c in trace.risk} >= {"kill_latch", "price_collar", "account_limit"}
    # Delivered again (a redelivered job): the same trace, no second order.
    assert tick.tick_run(runner_id=runner.pk, bar_ts=bar, generation=2).pk == trace.pk
    assert len(sent) == 1
    broker_module.clear_token_cache()


def test_the_bot_page_explains_why_it_traded_and_why_not(
    token_client: Any, paper: Runner, client: Any, viewer: Any
) -> None:
    operator = token_client("operator")
    _tick(operator, paper)
    _tick(operator, paper, datetime(2025, 12, 20, 16, 0, 30, tzinfo=UTC))
    Order.objects.create(
        client_order_id="TRO-doubt", bot_id=paper.bot_id, generation=1, mode="LIVE", venue="tradovate",
        instrument="MES", side="BUY", quantity=1, bar_ts=AS_OF, trace_id="t-doubt", placed_at=AS_OF,
        status=Order.Status.UNKNOWN, detail="read timed out after sending",
    )  # fmt: skip
    client.force_login(viewer)
    html = client.get(f"/bots/{paper.bot_id}/").content.decode()
    order = Order.objects.filter(bot_id=paper.bot_id, mode="SIM", order_type="MARKET").get()
    assert "Why it traded" in html and order.client_order_id in html and "filled 1 @" in html
    assert "Why it is not trading" in html and "MARKET_CLOSED" in html
    assert "in an UNKNOWN state" in html and "TRO-doubt" in html
    assert "Positions and PnL" in html


def test_a_dispatched_tick_job_runs_the_pipeline_and_closes_with_its_trace(
    paper: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.utils import timezone

    from apps.runners.models import Job
    from apps.runners.services.jobs import job_execute, tick_dispatch

    monkeypatch.setattr(timezone, "now", lambda: BAR + timedelta(seconds=3))  # the tick runs live, at that bar
    (job_id,) = tick_dispatch()["enqueued"]
    job_execute(job_id=job_id, worker="w")
    job = Job.objects.get(pk=job_id)
    trace = DecisionTrace.objects.get(runner_id=paper.pk)
    assert job.status == "SUCCEEDED" and job.result["trace"] == trace.pk and trace.job_id == job_id
    assert trace.outcome == "TRADE" and not trace.replay
    assert Order.objects.get(bot_id=paper.bot_id).status == "WORKING"  # fills on the next bar, at the next tick


def test_running_bots_are_reconciled_on_a_schedule(paper: Runner) -> None:
    from apps.runners.models import Job
    from apps.runners.services.jobs import job_execute
    from apps.runners.services.runners import reconcile_sweep
    from apps.trading.models import ReconcileReport

    (job_id,) = reconcile_sweep()["jobs"]
    assert reconcile_sweep()["jobs"] == [job_id]  # one per bot per window
    job_execute(job_id=job_id, worker="w")
    report = ReconcileReport.objects.get(bot_id=paper.bot_id)
    assert (report.trigger, report.status) == ("schedule", "MATCHED")
    assert Job.objects.get(pk=job_id).result["status"] == "MATCHED"


def test_phase_6_step_5_a_started_paper_bot_ticks_and_proves_use(
    token_client: Any, provider_stub: Any, client: Any, viewer: Any
) -> None:
    """The seed's Phase 6 step 5, end to end through the API: a PAPER bot started through every gate,
    ticked via as_of; usage events increase for its data provider, the tick is traced, its SIM order
    fills on the stub's next bar, and the bot page and the Connections tab show it."""
    from apps.integrations.services import integration_verify
    from apps.telemetry.services import heartbeat_record

    provider_stub("databento")
    assert integration_verify(provider="databento").ok
    heartbeat_record(component="beat", instance="beat@t")
    heartbeat_record(component="worker", instance="worker@t")
    bot = BotFactory(stage=Bot.Stage.PAPER, timeframe="1m")
    operator = token_client("operator")
    started = operator.post("/api/runners/start", {"bot_id": bot.pk}, format="json")
    assert started.status_code == 200, started.json()
    before = IntegrationUsageEvent.objects.filter(provider="databento").count()
    body = operator.post(f"/api/runners/{started.json()['id']}/tick", {"as_of": AS_OF.isoformat()}, format="json")
    trace = body.json()
    assert trace["outcome"] == "TRADE" and trace["order"]["status"] == "FILLED"
    assert IntegrationUsageEvent.objects.filter(provider="databento").count() > before
    client.force_login(viewer)
    page = client.get(f"/bots/{bot.pk}/").content.decode()
    assert trace["order"]["client_order_id"] in page and "filled 1 @" in page
    calls = IntegrationUsageEvent.objects.filter(provider="databento").count()  # verify + the tick's bar fetches
    connections = client.get("/connections/").content.decode()
    assert f">{calls} calls</a>" in connections


def test_a_tick_waits_for_a_late_bar_then_trades_or_traces_stale(
    paper: Runner, provider_stub: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """The provider has not published the bar when the tick first runs: the job runs again past the
    re-ask window instead of tracing DATA_STALE at once; the last allowed attempt traces what it finds."""
    from django.utils import timezone

    from apps.runners.models import Job
    from apps.runners.services.jobs import TICK_STALE_RETRIES, job_execute, tick_enqueue

    settings.MARKET_DATA_RECENT_HOURS = 24 * 365 * 20  # treat the fixed bar as "now"
    stub = provider_stub("databento")
    stub.mode, stub.stale_lag = "stale", timedelta(minutes=2)
    clock = {"now": BAR + timedelta(seconds=2)}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    job, _ = tick_enqueue(runner=paper, bar_ts=BAR)

    def attempt() -> Job:
        Job.objects.filter(pk=job.pk).update(available_at=BAR - timedelta(hours=1))  # due now
        job_execute(job_id=job.pk, worker="w")
        clock["now"] += timedelta(seconds=settings.MARKET_DATA_REFETCH_SECONDS + 1)
        return Job.objects.get(pk=job.pk)

    for _ in range(TICK_STALE_RETRIES):
        waited = attempt()
        assert waited.status == "FAILED" and waited.error.startswith("retry later:")
        assert not DecisionTrace.objects.exists()  # nothing traced while it waits
    last = attempt()
    trace = DecisionTrace.objects.get()
    assert last.status == "SUCCEEDED" and (trace.stopped_at, trace.reason_code) == ("market_data", "DATA_STALE")

    # Another bar: the provider catches up while the tick waits, and it trades.
    bar2 = BAR + timedelta(minutes=1)
    clock["now"] = bar2 + timedelta(seconds=2)
    job, _ = tick_enqueue(runner=paper, bar_ts=bar2)
    assert attempt().status == "FAILED"
    stub.mode = "ok"
    assert attempt().status == "SUCCEEDED"
    assert DecisionTrace.objects.get(bar_ts=bar2).stopped_at != "market_data"


def test_a_tick_that_keeps_crashing_still_leaves_a_trace_saying_so(
    paper: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.runners.models import Job
    from apps.runners.services.jobs import job_execute, tick_enqueue

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("strategy exploded")

    monkeypatch.setattr(tick.strategies, "decide", broken)
    job, _ = tick_enqueue(runner=paper, bar_ts=BAR)
    for _ in range(job.max_attempts):
        Job.objects.filter(pk=job.pk).update(available_at=BAR - timedelta(hours=1))
        job_execute(job_id=job.pk, worker="w")
    assert Job.objects.get(pk=job.pk).status == "DEAD"
    trace = DecisionTrace.objects.get()
    assert (trace.outcome, trace.stopped_at, trace.reason_code) == ("NO_TRADE", "pipeline", "TICK_FAILED")
    assert "strategy exploded" in trace.message and not Order.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_trading_tick_job_commits_its_order_row_outside_any_transaction(
    provider_stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the test's own transaction around it (the durability checks are live): the job runs
    the tick outside the job's transaction, so execution's durable transaction may commit the order
    row before the (SIM) send."""
    from django.utils import timezone

    from apps.runners.models import Job
    from apps.runners.services.jobs import job_execute, tick_dispatch

    provider_stub("databento")
    bot = BotFactory(stage=Bot.Stage.PAPER, timeframe="1m")
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.SIM, generation=1)
    monkeypatch.setattr(timezone, "now", lambda: BAR + timedelta(seconds=3))
    (job_id,) = tick_dispatch()["enqueued"]
    job_execute(job_id=job_id, worker="w")
    assert Job.objects.get(pk=job_id).status == "SUCCEEDED"
    assert DecisionTrace.objects.get(runner_id=runner.pk).outcome == "TRADE"
    assert Order.objects.get(bot_id=bot.pk).status == "WORKING"
