"""GET /metrics: the Prometheus exposition answers from the rows and the broker, behind a token."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.core import health
from apps.runners.models import Job
from apps.telemetry.models import ComponentHeartbeat, DecisionTrace, IntegrationUsageEvent
from apps.trading.models import Order

TOKEN = "scrape-token-for-tests"
pytestmark = pytest.mark.django_db


@pytest.fixture
def scrape(client: Any, settings: Any) -> Any:
    settings.METRICS_TOKEN = TOKEN

    def get() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain")
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    return get


def _trace(outcome: str, latency_ms: float, *, age: timedelta = timedelta(0), mode: str = "SIM") -> DecisionTrace:
    now = timezone.now() - age
    return DecisionTrace(
        bot_id=1,
        generation=1,
        mode=mode,
        bar_ts=now,
        outcome=outcome,
        config_version=1,
        latency_ms=latency_ms,
        trace_id=uuid.uuid4().hex,
        created_at=now,
    )


def _order(status: str, mode: str) -> Order:
    return Order(
        client_order_id=uuid.uuid4().hex[:32],
        bot_id=1,
        generation=1,
        mode=mode,
        venue="sim",
        instrument="MES",
        side="BUY",
        quantity=1,
        status=status,
        bar_ts=timezone.now(),
        placed_at=timezone.now(),
        trace_id="t",
    )


def _usage(provider: str, status: str, *, age: timedelta = timedelta(0)) -> IntegrationUsageEvent:
    return IntegrationUsageEvent(
        provider=provider, operation="bars", status=status, trace_id="t", created_at=timezone.now() - age
    )


def test_the_figures_match_the_rows(scrape: Any) -> None:
    DecisionTrace.objects.bulk_create(
        [
            _trace("TRADE", 100),
            _trace("NO_TRADE", 200),
            _trace("NO_TRADE", 300),
            _trace("NO_TRADE", 5000, age=timedelta(hours=2)),  # in the total, not in the window
            _trace("TRADE", 50, mode="LIVE", age=timedelta(days=1)),
        ]
    )
    now = timezone.now()
    Job.objects.bulk_create(
        [Job(type="tick", status=s, available_at=now, trace_id="t") for s in ("QUEUED", "QUEUED", "DEAD")]
        + [Job(type="backtest", status="RUNNING", available_at=now, trace_id="t")]
    )
    Order.objects.bulk_create([_order("FILLED", "SIM"), _order("FILLED", "SIM"), _order("UNKNOWN", "LIVE")])
    # One INSERT statement per row: the rollup trigger is statement-level, either way must add up.
    for event in [_usage("databento", "ok"), _usage("databento", "ok"), _usage("databento", "error")]:
        event.save()
    IntegrationUsageEvent.objects.bulk_create([_usage("tradovate", "error", age=timedelta(hours=3))])
    ComponentHeartbeat.objects.create(
        component="beat", instance="beat@host", started_at=now, last_seen_at=now - timedelta(seconds=42)
    )

    m = scrape()

    assert m[("tradeops_ticks_total", (("mode", "SIM"), ("outcome", "NO_TRADE")))] == 3
    assert m[("tradeops_ticks_total", (("mode", "SIM"), ("outcome", "TRADE")))] == 1
    assert m[("tradeops_ticks_total", (("mode", "LIVE"), ("outcome", "TRADE")))] == 1
    assert m[("tradeops_ticks_recent", (("mode", "SIM"), ("outcome", "NO_TRADE")))] == 2
    assert m[("tradeops_ticks_recent", (("mode", "LIVE"), ("outcome", "TRADE")))] == 0
    # Latency over the window: 100, 200, 300 ms (the 5 s tick two hours ago is outside it).
    assert m[("tradeops_tick_latency_recent_seconds_count", ())] == 3
    assert m[("tradeops_tick_latency_recent_seconds_sum", ())] == pytest.approx(0.6)
    assert m[("tradeops_tick_latency_recent_seconds", (("quantile", "0.5"),))] == pytest.approx(0.2)

    assert m[("tradeops_jobs", (("status", "QUEUED"), ("type", "tick")))] == 2
    assert m[("tradeops_jobs", (("status", "DEAD"), ("type", "tick")))] == 1
    assert m[("tradeops_jobs", (("status", "RUNNING"), ("type", "backtest")))] == 1
    assert m[("tradeops_orders", (("mode", "SIM"), ("status", "FILLED")))] == 2
    assert m[("tradeops_orders", (("mode", "LIVE"), ("status", "UNKNOWN")))] == 1

    assert m[("tradeops_provider_calls_total", (("outcome", "ok"), ("provider", "databento")))] == 2
    assert m[("tradeops_provider_calls_total", (("outcome", "error"), ("provider", "databento")))] == 1
    assert m[("tradeops_provider_calls_total", (("outcome", "error"), ("provider", "tradovate")))] == 1
    assert m[("tradeops_provider_calls_recent", (("outcome", "error"), ("provider", "databento")))] == 1
    assert ("tradeops_provider_calls_recent", (("outcome", "error"), ("provider", "tradovate"))) not in m

    labels = (("component", "beat"), ("instance", "beat@host"))
    assert 42 <= m[("tradeops_heartbeat_age_seconds", labels)] < 60
    assert m[("tradeops_heartbeat_last_seen_timestamp_seconds", labels)] == pytest.approx(
        (now - timedelta(seconds=42)).timestamp()
    )


def test_no_tick_in_the_window_gives_no_latency_quantile_rather_than_a_zero(scrape: Any) -> None:
    DecisionTrace.objects.bulk_create([_trace("TRADE", 100, age=timedelta(hours=1))])
    m = scrape()
    assert m[("tradeops_tick_latency_recent_seconds_count", ())] == 0
    assert not [k for k in m if k[0] == "tradeops_tick_latency_recent_seconds"]


def test_queue_depth_is_the_length_of_the_celery_lists(scrape: Any) -> None:
    redis = health.redis_client()
    before = scrape()
    marker = f"metrics-test-{uuid.uuid4().hex}"
    try:
        redis.rpush("backtests", *[marker] * 3)
        redis.rpush("celery", marker)
        after = scrape()
    finally:
        redis.lrem("backtests", 0, marker)
        redis.lrem("celery", 0, marker)
    assert after[("tradeops_broker_up", ())] == 1
    depth = "tradeops_queue_depth"
    assert after[(depth, (("queue", "backtests"),))] == before[(depth, (("queue", "backtests"),))] + 3
    assert after[(depth, (("queue", "celery"),))] == before[(depth, (("queue", "celery"),))] + 1


def test_redis_down_says_so_and_shows_no_depth(scrape: Any, settings: Any, tmp_path: Any) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/nothing-here.sock"
    m = scrape()
    assert m[("tradeops_broker_up", ())] == 0
    assert not [k for k in m if k[0] == "tradeops_queue_depth"]


def test_a_scrape_is_a_few_aggregate_queries(scrape: Any, django_assert_max_num_queries: Any) -> None:
    DecisionTrace.objects.bulk_create([_trace("TRADE", 10 + i) for i in range(50)])
    Order.objects.bulk_create([_order("FILLED", "SIM") for _ in range(50)])
    with django_assert_max_num_queries(7):
        scrape()


def test_no_supervisor_or_breaker_series_until_they_exist(scrape: Any) -> None:
    names = {name for name, _ in scrape()}
    assert not [n for n in names if "supervisor" in n or "breaker" in n]


def test_without_the_token_it_is_refused(client: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["error_code"] == "AUTHENTICATION_REQUIRED"
    assert "Bearer" in missing.json()["suggested_fix"]
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 403
    assert wrong.json()["error_code"] == "PERMISSION_DENIED"
    assert TOKEN not in wrong.content.decode()
    assert set(wrong.json()) >= {"error_code", "message", "suggested_fix", "trace_id"}


def test_a_signed_in_session_is_not_enough(client: Any, settings: Any, admin_user: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    client.force_login(admin_user)
    assert client.get("/metrics").status_code == 401


def test_unset_token_means_off_and_says_how_to_enable_it(client: Any, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 404
    assert "METRICS_TOKEN" in response.json()["suggested_fix"]
