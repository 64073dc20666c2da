"""proof_of_use_count_24h is exact at the window's edges, from the rollup plus the partial bucket."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.integrations.selectors import integration_status_list
from apps.telemetry.models import IntegrationUsageEvent, IntegrationUsageRollup

pytestmark = pytest.mark.django_db


def _event(provider: str, at: object, status: str = "ok") -> IntegrationUsageEvent:
    return IntegrationUsageEvent(
        provider=provider, operation="bars", status=status, latency_ms=1.0, trace_id="t", created_at=at
    )


def test_the_24h_count_is_exact_at_both_edges() -> None:
    now = timezone.now()
    cutoff = now - timedelta(hours=24)
    times = [
        cutoff - timedelta(seconds=1),  # just outside
        cutoff + timedelta(seconds=1),  # just inside, in the partial first bucket
        cutoff + timedelta(minutes=7),  # inside, a later bucket
        now - timedelta(hours=3),
        now - timedelta(seconds=1),
        now - timedelta(days=3),  # far outside
    ]
    # One bulk INSERT: the statement-level trigger aggregates it in one pass.
    IntegrationUsageEvent.objects.bulk_create([_event("polygon", t) for t in times])
    row = next(r for r in integration_status_list(now=now) if r["provider"] == "polygon")
    assert row["proof_of_use_count_24h"] == 4
    assert IntegrationUsageRollup.objects.filter(provider="polygon", granularity=300).count() >= 4


def test_the_count_is_exact_for_any_window_start() -> None:
    """Events spread over 30 h, one every 7 minutes; for many window positions the fast count
    equals a plain COUNT over the events."""
    base = timezone.now()
    events = [_event("groq", base - timedelta(minutes=7 * i, seconds=i)) for i in range(260)]
    IntegrationUsageEvent.objects.bulk_create(events)
    for shift_minutes in (0, 3, 17, 61, 119, 333):
        now = base - timedelta(minutes=shift_minutes)
        expected = IntegrationUsageEvent.objects.filter(
            provider="groq", created_at__gte=now - timedelta(hours=24), created_at__lte=now
        ).count()
        row = next(r for r in integration_status_list(now=now) if r["provider"] == "groq")
        future = IntegrationUsageEvent.objects.filter(provider="groq", created_at__gt=now).count()
        assert row["proof_of_use_count_24h"] - future == expected


def test_the_rollup_counts_errors_and_matches_the_events() -> None:
    now = timezone.now()
    IntegrationUsageEvent.objects.bulk_create(
        [_event("databento", now - timedelta(minutes=m), "error" if m % 3 == 0 else "ok") for m in range(60)]
    )
    for granularity in (300, 3600):
        rollup = IntegrationUsageRollup.objects.filter(provider="databento", granularity=granularity)
        assert sum(r.calls for r in rollup) == 60
        assert sum(r.errors for r in rollup) == 20


def test_a_provider_never_called_counts_zero_and_says_never() -> None:
    row = next(r for r in integration_status_list() if r["provider"] == "twilio")
    assert row["proof_of_use_count_24h"] == 0  # a real zero: no call was ever recorded
    assert row["last_used_at"] is None and row["last_verified_at"] is None
