"""Creates or updates every beat entry TradeOps needs (run on deploy; `make run` runs it).

The schedule is data, in code, here. Operators may pause an entry in the admin; this command
keeps their `enabled` choice for existing entries and disables `tradeops:` entries no longer
declared, so a retired task cannot keep firing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

PREFIX = "tradeops:"


@dataclass(frozen=True)
class PeriodicSpec:
    name: str
    task: str
    every_seconds: int
    description: str
    queue: str | None = None


PERIODIC_TASKS: tuple[PeriodicSpec, ...] = (
    PeriodicSpec(
        name=f"{PREFIX}queue-probe",
        task="apps.telemetry.tasks.telemetry_queue_probe",
        every_seconds=30,
        description="Proves beat → broker → worker end to end and records queue latency.",
    ),
    PeriodicSpec(
        name=f"{PREFIX}job-watchdog",
        task="apps.runners.tasks.job_watchdog",
        every_seconds=15,
        description="Requeues jobs whose lease expired (worker lost), dead-letters them after max_attempts.",
    ),
    PeriodicSpec(
        name=f"{PREFIX}tick-dispatch",
        task="apps.runners.tasks.tick_dispatch",
        every_seconds=10,
        description="One tick job per RUNNING runner for its last closed bar (unique per runner and bar).",
    ),
    PeriodicSpec(
        name=f"{PREFIX}reconcile-sweep",
        task="apps.runners.tasks.reconcile_sweep",
        every_seconds=300,
        description="Reconciles every running bot's orders and position against its venue (a job per bot).",
    ),
    PeriodicSpec(
        name=f"{PREFIX}alert-sms",
        task="apps.integrations.tasks.alert_sms_dispatch",
        every_seconds=15,
        description="Texts open CRITICAL alerts through Twilio (once each, throttled, bounded retries).",
    ),
    PeriodicSpec(
        name=f"{PREFIX}lab-advance",
        task="apps.strategylab.tasks.experiment_advance_all",
        every_seconds=60,
        description="Safety net: moves on every running lab experiment whose runs have all closed.",
    ),
)


class Command(BaseCommand):
    help = "Create or update the periodic tasks (django-celery-beat) that TradeOps declares."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        declared = set()
        for spec in PERIODIC_TASKS:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=spec.every_seconds, period=IntervalSchedule.SECONDS
            )
            _, created = PeriodicTask.objects.update_or_create(
                name=spec.name,
                defaults={
                    "task": spec.task,
                    "interval": interval,
                    "crontab": None,
                    "description": spec.description,
                    "queue": spec.queue,
                },
                create_defaults={
                    "task": spec.task,
                    "interval": interval,
                    "description": spec.description,
                    "queue": spec.queue,
                    "enabled": True,
                },
            )
            declared.add(spec.name)
            self.stdout.write(f"{'created' if created else 'updated'} {spec.name} every {spec.every_seconds}s")
        retired = PeriodicTask.objects.filter(name__startswith=PREFIX, enabled=True).exclude(name__in=declared)
        for name in retired.values_list("name", flat=True):
            self.stdout.write(f"disabled {name} (no longer declared)")
        if retired.update(enabled=False):
            PeriodicTasks.update_changed()  # bulk updates skip the signal beat listens to
