"""Why market data cannot be served. Each is an ApplicationError with a SPEC error code, so the API
envelope and a tick's NO_TRADE trace carry the same code, reason and suggested fix."""

from __future__ import annotations

from typing import Any

from apps.core.exceptions import ApplicationError


class MarketDataRequestInvalid(ApplicationError):
    """The caller asked for something that is not a valid question (unknown instrument, end in the future...)."""

    status_code = 400
    error_code = "VALIDATION_ERROR"
    default_suggested_fix = "Correct the fields named in `fields` and retry."

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, extra={"fields": {field: [message]}})


class DataUnavailable(ApplicationError):
    """The bars cannot be had: the provider failed or is not configured, answered nothing while the
    market was open, or there are fewer bars than asked. `reason` says which; when a provider error
    is the cause, its error code (and `missing_env_vars` for a missing key) are kept in the details."""

    status_code = 409
    error_code = "DATA_UNAVAILABLE"
    default_suggested_fix = "Check the bot's data provider on the Connections page, then retry."

    def __init__(self, message: str, *, reason: str, suggested_fix: str | None = None, **details: Any) -> None:
        self.reason = reason
        super().__init__(
            message,
            suggested_fix=suggested_fix,
            extra={"reason": reason, **{k: v for k, v in details.items() if v is not None}},
        )


class DataStale(ApplicationError):
    """The newest bars that should exist by now (market hours say the market traded) are not there yet."""

    status_code = 409
    error_code = "DATA_STALE"
    default_suggested_fix = (
        "The provider has not delivered the latest bar yet: retry shortly. If it persists, check the provider's "
        "status and MARKET_DATA_STALE_AFTER_BARS."
    )

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, extra={"reason": "stale", **details})


class MarketClosed(ApplicationError):
    status_code = 409
    error_code = "MARKET_CLOSED"
    default_suggested_fix = "Nothing to do: the market is closed; the next tick after it opens will trade."

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, extra=details)


class ProviderSymbolUnsupported(DataUnavailable):
    """The bot's provider has no symbol for this instrument (e.g. MCL on Polygon/Massive)."""

    def __init__(self, instrument: str, provider: str, why: str) -> None:
        super().__init__(
            f"{provider} does not serve {instrument} in TradeOps: {why}",
            reason="provider_does_not_cover",
            suggested_fix=f"Use another data provider for {instrument} bots (databento covers every instrument).",
            instrument=instrument,
            provider=provider,
        )


class BarPriceOffTick(DataUnavailable):
    """A stored price is not a whole number of the instrument's ticks: the bar is wrong, and nothing
    computed over it in integer ticks can be trusted."""

    def __init__(self, *, instrument: str, timeframe: str, ts: str, field: str, price: str, tick_size: str) -> None:
        super().__init__(
            f"The stored {instrument} {timeframe} bar at {ts} has {field} {price}, which is not a whole number of "
            f"{instrument} ticks ({tick_size}); the bar is wrong, so nothing is computed over it.",
            reason="price_not_on_tick",
            suggested_fix=(
                "Correct the bar in the store (or delete it and import the right one with `manage.py import_bars`), "
                "then retry."
            ),
            instrument=instrument,
            timeframe=timeframe,
            bar_ts=ts,
            field=field,
            price=price,
            tick_size=tick_size,
        )
