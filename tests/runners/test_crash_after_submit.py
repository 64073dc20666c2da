"""RELIABILITY J1: a worker SIGKILLed between the broker's accept and the order's status update.
The order row (committed before the send) is found on the re-run, so nothing is sent again, and
reconcile settles it from the broker: exactly one order at the venue, with our client_order_id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from apps.bots.models import Bot
from apps.integrations.tradovate import client as tradovate
from apps.integrations.tradovate.client import TradovateClient
from apps.runners.services.runners import bot_reconcile
from apps.trading import services
from apps.trading.models import AccountRisk, Order
from tests.bots.factories import BotFactory
from tests.runners.crash_plan import plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_sigkill_after_the_broker_accepts_leaves_exactly_one_order(provider_stub: Any) -> None:
    tradovate.clear_token_cache()
    broker = provider_stub("tradovate")
    bot = BotFactory(stage=Bot.Stage.LIVE, venue=Bot.Venue.TRADOVATE, broker_account="DEMO123457")
    AccountRisk.objects.create(venue="tradovate", account="DEMO123457", max_contracts=4)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.subprocess_settings"}
    env["TRADEOPS_TEST_DB_NAME"] = connection.settings_dict["NAME"]
    done = subprocess.run(
        [sys.executable, "-m", "tests.runners.crash_submit", str(bot.pk)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert "accepted" in done.stdout and "not reached" not in done.stdout
    order = Order.objects.get()
    assert order.status == Order.Status.PENDING_SUBMIT and not order.venue_order_id  # the update died
    assert len(broker.placed) == 1 and broker.placed[0]["clOrdId"] == order.client_order_id

    # The tick is delivered again to a new worker: the same intent finds its row; nothing is sent.
    again = services.order_submit(plan(bot.pk), killed=lambda: False, venue=TradovateClient.for_bot(bot.pk))
    assert not again.created and len(broker.placed) == 1

    report = bot_reconcile(bot=bot, trigger="manual", actor_label="system:test")
    assert report.status == "FIXED", report.report
    order.refresh_from_db()
    assert order.status == Order.Status.FILLED and order.venue_order_id
    assert len(broker.placed) == 1
    tradovate.clear_token_cache()
