"""The starter pack's max_orders_per_day fits its strategies: it is what each strategy can send in a
trading day (apps/trading/catalogue.py ORDERS_PER_BAR × the bars of a trade date, from the market
calendar), ordinary generated days use a small part of it, and a day built to churn as hard as
the strategy can still fits.

The day is run bar by bar with the pure pieces a SIM tick uses, in the tick's order: working orders
fill on the bar (apps.trading.fills), the position is protected (apps.trading.stops; a new stop is
tried on its entry's fill bar), then the strategy decides at the close (apps.trading.strategies).
Every order counts, as risk counts them: entries, reversals, exits and protective stops."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.market import instruments
from apps.market.bars import MarketBar
from apps.trading import fills, stops, strategies
from apps.trading.catalogue import ORDERS_PER_BAR, STARTER_PACK, max_orders_per_day_for

MINUTES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}
# A bar's typical move, in points per sqrt(minute): MES moves ~1.6 points a minute on an ordinary
# day (a ~60-point day); MNQ about four times as much.
SIGMA = {"MES": 1.6, "MNQ": 6.5}


Bar = MarketBar  # a closed bar as the market app serves it


def _on_grid(value: float, tick: Decimal) -> Decimal:
    return (Decimal(str(value)) / tick).to_integral_value() * tick


def generated_day(seed: int, count: int, timeframe: str, instrument: str, *, spikes: float = 0) -> list[Bar]:
    """A seeded random walk: `count` bars whose moves have the instrument's ordinary size. With
    `spikes`, that share of the bars has wicks eight times as long: stops are hit, signals turn."""
    rng = random.Random(seed)
    tick = instruments.get(instrument).tick_size  # type: ignore[union-attr]
    sigma = SIGMA[instrument] * MINUTES[timeframe] ** 0.5
    price, out = 5000.0, []
    start = datetime(2025, 1, 6, tzinfo=UTC)
    for i in range(count):
        close = price + rng.gauss(0, sigma)
        wick = sigma / 2 * (8 if rng.random() < spikes else 1)
        high = max(price, close) + abs(rng.gauss(0, wick))
        low = min(price, close) - abs(rng.gauss(0, wick))
        o, h, lo, c = (_on_grid(v, tick) for v in (price, high, low, close))
        out.append(Bar(start + i * timedelta(minutes=MINUTES[timeframe]), o, max(h, o, c), min(lo, o, c), c, 100))
        price = close
    return out


def orders_in_a_day(key: str, parameters: dict, bars: list[Bar], first: int, instrument: str) -> list[int]:
    """Orders the strategy sends on each of bars[first:] (deciding at its close), as a SIM runner would."""
    spec = instruments.get(instrument)
    assert spec is not None
    position, entry_stop, per_bar = 0, None, []
    working: list[tuple[str, str, int, Decimal | None, int]] = []  # (kind, side, qty, stop price, from bar)
    for i in range(first, len(bars)):
        bar, sent = bars[i], 0
        for _ in range(3):  # settle, protect, settle the new stop on its entry's fill bar, protect
            left = []
            for kind, side, qty, price, since in working:
                fill = fills.sim_fill(
                    side=side, quantity=qty, order_type="STOP" if kind == "stop" else "MARKET",
                    bar_open=bar.open, bar_high=bar.high, bar_low=bar.low, tick_size=spec.tick_size,
                    point_value=spec.point_value, stop_price=price if kind == "stop" else None,
                ) if since <= i else None  # fmt: skip
                if fill is None:
                    left.append((kind, side, qty, price, since))
                    continue
                position += qty if side == "BUY" else -qty
                if kind == "entry":
                    entry_stop = price
            working = left
            planned = stops.protection_plan(
                position=position,
                stop_price=entry_stop,
                stops=[stops.WorkingStop(str(n), w[1], w[2], w[3]) for n, w in enumerate(working) if w[0] == "stop"],
                in_flight=[str(n) for n, w in enumerate(working) if w[0] != "stop"],
            )
            working = [w for n, w in enumerate(working) if str(n) not in planned.cancel]
            if planned.place is None:
                break
            sent += 1
            working.append(("stop", planned.place.side, planned.place.quantity, planned.place.stop_price, i))
        made = strategies.decide(key, bars[: i + 1], parameters, position, tick_size=spec.tick_size)
        if made.side is not None:
            sent += 1  # the reversal or exit replaces the stop once accepted (SIM: at once)
            working = [w for w in working if w[0] != "stop"]
            working.append(("entry", made.side, made.order_quantity, made.stop_price, i + 1))
        per_bar.append(sent)
    return per_bar


def _bars_per_day(timeframe: str) -> int:
    return 23 * 60 // MINUTES[timeframe]  # CME Globex equity index: 17:00 to 16:00 CT


@pytest.mark.parametrize("bot", STARTER_PACK, ids=lambda b: b["name"])
def test_the_limit_is_what_the_strategy_can_send_in_a_trading_day(bot: dict) -> None:
    limit = bot["risk_limits"]["max_orders_per_day"]
    assert limit == max_orders_per_day_for(bot["instrument"], bot["timeframe"])
    assert limit == ORDERS_PER_BAR * _bars_per_day(bot["timeframe"])


@pytest.mark.parametrize("bot", STARTER_PACK, ids=lambda b: b["name"])
def test_ordinary_days_use_a_small_part_of_the_limit(bot: dict) -> None:
    key, parameters, timeframe = bot["strategy_key"], bot["parameters"], bot["timeframe"]
    warmup = strategies.required_bars(key, parameters)
    day = _bars_per_day(timeframe)
    counts = [
        sum(orders_in_a_day(key, parameters, generated_day(seed, warmup + day, timeframe, bot["instrument"]),
                            warmup, bot["instrument"]))
        for seed in range(12)
    ]  # fmt: skip
    assert min(counts) > 0  # the days trade: the check below is not vacuous
    # With a margin of four: an ordinary day never comes near the limit.
    assert max(counts) * 4 <= bot["risk_limits"]["max_orders_per_day"], counts


@pytest.mark.parametrize("bot", STARTER_PACK, ids=lambda b: b["name"])
def test_wild_days_never_send_more_than_two_orders_a_bar_and_fit(bot: dict) -> None:
    key, parameters, timeframe, instrument = bot["strategy_key"], bot["parameters"], bot["timeframe"], bot["instrument"]
    warmup = strategies.required_bars(key, parameters)
    day = _bars_per_day(timeframe)
    busiest = 0
    for seed in range(12):
        bars = generated_day(seed, warmup + day, timeframe, instrument, spikes=0.3)
        per_bar = orders_in_a_day(key, parameters, bars, warmup, instrument)
        assert max(per_bar) <= ORDERS_PER_BAR  # the ceiling the limit is built from
        assert sum(per_bar) <= bot["risk_limits"]["max_orders_per_day"]
        busiest = max(busiest, *per_bar)
    assert busiest == ORDERS_PER_BAR  # bars that send two do happen: the ceiling is not slack
