"""`GET /metrics`: what the supervisor watches, in the Prometheus text format (issue 12, item 6).

A prometheus_client Collector that reads PostgreSQL and Redis at scrape time. There are no
per-process counters: gunicorn workers and Celery processes would each hold their own and disagree;
every scrape answers from the same rows the Observatory reads, whichever process serves it. It lives
in apps.runners, the top layer, because it reads traces and usage events (telemetry), orders
(trading) and jobs (runners).

Series (the recent window is METRICS_WINDOW_SECONDS, five minutes by default):
- tradeops_ticks_total{outcome,mode}: decision traces (one per tick) as stored: TRADE / NO_TRADE.
  A tick that failed before writing its trace is a FAILED or DEAD `tick` job, in tradeops_jobs.
- tradeops_ticks_recent{outcome,mode}: the same over the recent window.
- tradeops_tick_latency_recent_seconds: a summary (quantiles 0.5/0.9/0.99, count, sum) of the
  traces' latency over the recent window; no quantile samples when no tick ran in it.
- tradeops_queue_depth{queue}: messages waiting in the Celery queues `celery` and `backtests`
  (LLEN); tradeops_broker_up is 0 and no depth is exposed when Redis cannot be asked.
- tradeops_jobs{type,status}, tradeops_orders{status,mode}: rows by state.
- tradeops_provider_calls_total{provider,outcome}: every metered provider call (the hourly usage
  rollups, kept by a database trigger); tradeops_provider_calls_recent{provider,outcome}: the raw
  usage events over the recent window.
- tradeops_heartbeat_last_seen_timestamp_seconds / tradeops_heartbeat_age_seconds
  {component,instance}: Celery beat, workers and the queue probe (apps.telemetry.heartbeats).

Left out until they exist (never a made-up 0): the supervisor's last run and its breaker trips
(issue 12, items 3 and 5).

Access: a bearer token. Set METRICS_TOKEN in the environment and give the scraper
`authorization: {type: Bearer, credentials: <token>}`. Unset, the endpoint answers 404 saying how
to enable it; a missing token is 401, a wrong one 403 (the error envelope).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from apps.core.errors import error_response
from apps.runners.models import Job
from apps.telemetry.models import ComponentHeartbeat, DecisionTrace, IntegrationUsageEvent, IntegrationUsageRollup
from apps.trading.models import Order

QUEUES = ("celery", "backtests")
LATENCY_QUANTILES = (0.5, 0.9, 0.99)


class TradeOpsCollector:
    """Reads the database and the broker at each collect(): a handful of aggregate queries."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        since = now - timedelta(seconds=settings.METRICS_WINDOW_SECONDS)
        yield from self._ticks(since)
        yield self._tick_latency(since)
        yield from self._queues()
        yield self._jobs()
        yield self._orders()
        yield from self._provider_calls(since)
        yield from self._heartbeats(now)

    def _ticks(self, since: Any) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "tradeops_ticks", "Ticks, by the outcome their decision trace records.", labels=["outcome", "mode"]
        )
        recent = GaugeMetricFamily(
            "tradeops_ticks_recent",
            f"Ticks in the last {settings.METRICS_WINDOW_SECONDS} s, by outcome.",
            labels=["outcome", "mode"],
        )
        rows = (
            DecisionTrace.objects.values_list("outcome", "mode")
            .annotate(total=Count("id"), recent=Count("id", filter=Q(created_at__gte=since)))
            .order_by()
        )
        for outcome, mode, n_total, n_recent in rows:
            total.add_metric([outcome, mode], n_total)
            recent.add_metric([outcome, mode], n_recent)
        yield total
        yield recent

    def _tick_latency(self, since: Any) -> Metric:
        metric = Metric(
            "tradeops_tick_latency_recent_seconds",
            f"Tick latency (the decision trace's) over the last {settings.METRICS_WINDOW_SECONDS} s.",
            "summary",
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*), coalesce(sum(latency_ms), 0), "
                f"percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY latency_ms) "
                f"FROM {DecisionTrace._meta.db_table} WHERE created_at >= %s",
                [list(LATENCY_QUANTILES), since],
            )
            count, total_ms, quantiles = cursor.fetchone()
        for q, value_ms in zip(LATENCY_QUANTILES, quantiles or (), strict=False):
            metric.add_sample(metric.name, {"quantile": str(q)}, value_ms / 1000.0)
        metric.add_sample(f"{metric.name}_count", {}, count)
        metric.add_sample(f"{metric.name}_sum", {}, total_ms / 1000.0)
        return metric

    def _queues(self) -> Iterator[Metric]:
        from apps.core import health

        up = GaugeMetricFamily("tradeops_broker_up", "1 when Redis (the Celery broker) answered this scrape.")
        depth = GaugeMetricFamily("tradeops_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
        try:
            pipe = health.redis_client().pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
            lengths = pipe.execute()
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for queue, n in zip(QUEUES, lengths, strict=True):
            depth.add_metric([queue], int(n))
        yield up
        yield depth

    def _jobs(self) -> Metric:
        metric = GaugeMetricFamily("tradeops_jobs", "Background jobs, by type and state.", labels=["type", "status"])
        for job_type, status, n in Job.objects.values_list("type", "status").annotate(n=Count("id")).order_by():
            metric.add_metric([job_type, status], n)
        return metric

    def _orders(self) -> Metric:
        metric = GaugeMetricFamily(
            "tradeops_orders", "Orders, by state and mode (SIM or LIVE).", labels=["status", "mode"]
        )
        for status, mode, n in Order.objects.values_list("status", "mode").annotate(n=Count("id")).order_by():
            metric.add_metric([status, mode], n)
        return metric

    def _provider_calls(self, since: Any) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "tradeops_provider_calls",
            "Calls to external providers, by outcome (ok or error).",
            labels=["provider", "outcome"],
        )
        rows = (
            IntegrationUsageRollup.objects.filter(granularity=IntegrationUsageRollup.COARSE_SECONDS)
            .values_list("provider")
            .annotate(calls=Sum("calls"), errors=Sum("errors"))
            .order_by()
        )
        for provider, calls, errors in rows:
            total.add_metric([provider, IntegrationUsageEvent.Status.OK], calls - errors)
            total.add_metric([provider, IntegrationUsageEvent.Status.ERROR], errors)
        recent = GaugeMetricFamily(
            "tradeops_provider_calls_recent",
            f"Calls to external providers in the last {settings.METRICS_WINDOW_SECONDS} s, by outcome.",
            labels=["provider", "outcome"],
        )
        window = IntegrationUsageEvent.objects.filter(created_at__gte=since)
        for provider, status, n in window.values_list("provider", "status").annotate(n=Count("id")).order_by():
            recent.add_metric([provider, status], n)
        yield total
        yield recent

    def _heartbeats(self, now: Any) -> Iterator[Metric]:
        labels = ["component", "instance"]
        seen = GaugeMetricFamily(
            "tradeops_heartbeat_last_seen_timestamp_seconds",
            "When a scheduler process last reported (Unix time).",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "tradeops_heartbeat_age_seconds", "Seconds since a scheduler process last reported.", labels=labels
        )
        for component, instance, last_seen in ComponentHeartbeat.objects.values_list(
            "component", "instance", "last_seen_at"
        ):
            seen.add_metric([component, instance], last_seen.timestamp())
            age.add_metric([component, instance], max(0.0, (now - last_seen).total_seconds()))
        yield seen
        yield age


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TradeOpsCollector())
    return registry


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    expected = settings.METRICS_TOKEN
    if not expected:
        return error_response(
            status=404,
            error_code="NOT_FOUND",
            message="The metrics endpoint is off: no scrape token is set.",
            suggested_fix="Set METRICS_TOKEN in TradeOps' environment, restart it, and give Prometheus that "
            "token as a bearer credential.",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return error_response(
            status=401,
            error_code="AUTHENTICATION_REQUIRED",
            message="The metrics endpoint needs the scrape token.",
            suggested_fix="Send the header 'Authorization: Bearer <METRICS_TOKEN>' "
            "(Prometheus: authorization.credentials).",
        )
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return error_response(
            status=403,
            error_code="PERMISSION_DENIED",
            message="The scrape token is not the one TradeOps expects.",
            suggested_fix="Give Prometheus the current METRICS_TOKEN value.",
        )
    body = exposition.generate_latest(_registry())
    return HttpResponse(body, content_type=exposition.CONTENT_TYPE_LATEST)
