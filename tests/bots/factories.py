from __future__ import annotations

import factory
from factory.django import DjangoModelFactory

from apps.bots.models import Bot
from apps.trading import catalogue as strategies


class BotFactory(DjangoModelFactory):
    """A valid LAB bot on sim with complete parameters and risk limits. It writes the row directly
    (no config-version row, no audit): for tests of what services do with an existing bot."""

    class Meta:
        model = Bot
        skip_postgeneration_save = True

    class Params:
        # Everything PAPER→LIVE checks that TradeOps can know today: a real venue and account,
        # every risk limit. The broker's verification and the paper evidence are not on the row.
        live_ready = factory.Trait(stage=Bot.Stage.PAPER, venue=Bot.Venue.TRADOVATE, broker_account="DEMO-0042")

    name = factory.Sequence(lambda n: f"bot {n:03d}")
    strategy_key = "trend_following"
    parameters = factory.LazyFunction(lambda: strategies.STRATEGIES["trend_following"].defaults())
    instrument = "MES"
    timeframe = "5m"
    venue = Bot.Venue.SIM
    broker_account = ""
    stage = Bot.Stage.LAB
    risk_limits = factory.LazyFunction(
        lambda: {"max_position_contracts": 1, "max_daily_loss": 250.0, "max_orders_per_day": 10}
    )
