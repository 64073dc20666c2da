from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from apps.core.management.commands.setup_periodic_tasks import PERIODIC_TASKS

pytestmark = pytest.mark.django_db


def test_it_creates_every_declared_task_once(db: Any) -> None:
    call_command("setup_periodic_tasks", stdout=StringIO())
    call_command("setup_periodic_tasks", stdout=StringIO())
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {spec.name for spec in PERIODIC_TASKS} <= names
    assert PeriodicTask.objects.filter(name=PERIODIC_TASKS[0].name).count() == 1


def test_it_keeps_an_operator_pause(db: Any) -> None:
    call_command("setup_periodic_tasks", stdout=StringIO())
    PeriodicTask.objects.filter(name=PERIODIC_TASKS[0].name).update(enabled=False)
    call_command("setup_periodic_tasks", stdout=StringIO())
    assert PeriodicTask.objects.get(name=PERIODIC_TASKS[0].name).enabled is False


def test_it_disables_a_retired_task(db: Any) -> None:
    from django_celery_beat.models import IntervalSchedule

    every = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="tradeops:retired", task="apps.gone.tasks.x", interval=every)
    call_command("setup_periodic_tasks", stdout=StringIO())
    assert PeriodicTask.objects.get(name="tradeops:retired").enabled is False


def test_every_declared_task_is_registered_with_celery() -> None:
    from config.celery import app

    app.loader.import_default_modules()
    for spec in PERIODIC_TASKS:
        assert spec.task in app.tasks, spec.task
