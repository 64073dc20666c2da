"""Market data: the freshness and fetching rules of the historical-data service (apps/market/services.py)."""

from __future__ import annotations

from config.env import env

# How many of the newest expected bars may still be missing before the data counts as stale
# (DATA_STALE). 0: at a tick at `end` the bar that closed at `end` must be there.
MARKET_DATA_STALE_AFTER_BARS = env.int("MARKET_DATA_STALE_AFTER_BARS", default=0)
# A provider's answer is taken as final (a minute it did not return had no trades) only for bars
# that closed at least this long before the answer; younger ones are asked again later.
MARKET_DATA_SETTLE_SECONDS = env.int("MARKET_DATA_SETTLE_SECONDS", default=120)
# The same range is not asked of the provider again within this many seconds (all workers: the
# fetch log is in PostgreSQL); a failure inside the window is answered from the log.
MARKET_DATA_REFETCH_SECONDS = env.int("MARKET_DATA_REFETCH_SECONDS", default=15)
# An empty answer for a settled stretch of open market at least this long is DATA_UNAVAILABLE
# (wrong symbol, dataset or entitlement), not "no trades"; shorter quiet stretches are accepted.
MARKET_DATA_MAX_EMPTY_OPEN_MINUTES = env.int("MARKET_DATA_MAX_EMPTY_OPEN_MINUTES", default=30)
# The most bars one request may ask for, and the most provider calls one request may make
# (larger backfills: `manage.py import_bars`).
MARKET_DATA_MAX_BARS = env.int("MARKET_DATA_MAX_BARS", default=5000)
MARKET_DATA_MAX_FETCHES_PER_REQUEST = env.int("MARKET_DATA_MAX_FETCHES_PER_REQUEST", default=12)
# How long a request waits for another worker that is fetching the same instrument.
MARKET_DATA_FETCH_LOCK_SECONDS = env.float("MARKET_DATA_FETCH_LOCK_SECONDS", default=20.0)
# Within this many hours of now, the stretch after the last bar of an answer is never taken as
# "no trades": a provider whose data lags (Databento's historical feed, an outage) leaves those
# bars unresolved, so the newest are DATA_STALE and asked again. Older history is settled as answered.
MARKET_DATA_RECENT_HOURS = env.int("MARKET_DATA_RECENT_HOURS", default=24)
# The provider missing bars are fetched from when no bot names one (a backtest of a strategy);
# a bot's own requests use the bot's data_provider.
MARKET_DATA_DEFAULT_PROVIDER = env.str("MARKET_DATA_DEFAULT_PROVIDER", default="databento")
