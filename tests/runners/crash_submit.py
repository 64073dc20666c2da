"""Run by tests/runners/test_crash_after_submit.py in its own process: submit one LIVE order and
SIGKILL this process the moment the broker has accepted it, before the order row is updated."""

from __future__ import annotations

import os
import signal
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.subprocess_settings")
django.setup()

from apps.integrations.orders import OrderRequest, PlacedOrder  # noqa: E402
from apps.integrations.tradovate.client import TradovateClient  # noqa: E402
from apps.trading import services  # noqa: E402
from tests.runners.crash_plan import plan  # noqa: E402


class DiesAfterTheBrokerAccepts(TradovateClient):
    def place_order(self, request: OrderRequest) -> PlacedOrder:
        placed = super().place_order(request)
        print(f"accepted {placed.broker_order_id}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no status update, the transaction dies with us
        return placed


if __name__ == "__main__":
    bot_id = int(sys.argv[1])
    services.order_submit(plan(bot_id), killed=lambda: False, venue=DiesAfterTheBrokerAccepts.for_bot(bot_id))
    print("not reached", flush=True)
