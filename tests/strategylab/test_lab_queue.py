"""An experiment's runs go to the backtests queue (never the ticks' queue), with the backtest time
limit: published once the start commits, one message per run."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from apps.backtests.models import Backtest
from tests.strategylab.conftest import start

# The broker fixture keeps both queues empty around the test.


@pytest.fixture
def broker(real_celery: Any) -> Iterator[Any]:
    with real_celery.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete("backtests", "celery")
        yield client
        client.delete("backtests", "celery")


@pytest.mark.django_db(transaction=True)
def test_every_run_is_published_to_the_backtests_queue(broker: Any, token_client: Any, settings: Any) -> None:
    experiment_id = start(token_client("operator"))
    messages = [json.loads(raw) for raw in broker.lrange("backtests", 0, -1)]
    published = [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]
    runs = Backtest.objects.filter(lab_run__experiment_id=experiment_id)
    assert sorted(published) == sorted(runs.values_list("job_id", flat=True)) and len(published) == 4
    assert {m["headers"]["timelimit"][0] for m in messages} == {settings.BACKTEST_JOB_TIME_LIMIT_SECONDS}
    assert broker.llen("celery") == 0
