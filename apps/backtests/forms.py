"""The New backtest form of the Backtests page: what the operator typed, turned into the request
body POST /api/backtests takes, and the service's field errors put back beside the inputs they are
about, in words.

The form checks only what a browser form cannot carry as the API does (a choice left empty, a date
and time without its zone); every other rule is the service's (apps.backtests.services
backtest_validate), so the page and the API refuse the same things. A number that is not one is
passed through as typed, so the service names it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from apps.core.templatetags.observatory import field_label

SOURCES = ("bot", "strategy")
_INT = re.compile(r"^[+-]?\d+$")
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends

LABELS = {
    "bot_id": "Bot",
    "strategy_key": "Strategy",
    "instrument": "Instrument",
    "timeframe": "Bars",
    "start": "Start",
    "end": "End",
    "fill_model": "Fill model",
    "fill_model.slippage_ticks": "Slippage",
    "fill_model.commission_per_contract": "Commission per contract",
    "initial_capital": "Initial capital",
    "risk_limits": "Risk limits",
    "parameters": "Parameters",
    "non_field_errors": "The request",
}


def parse_number(raw: str | None) -> int | float | str | None:
    """'' → None (not given: the default), '20' → 20, '2.5' → 2.5, anything else as typed."""
    text = (raw or "").strip()
    if not text:
        return None
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_utc(raw: str | None) -> datetime | str | None:
    """A datetime-local value read as UTC ('2025-12-15T14:00'); '' → None; a full ISO 8601 time with
    its zone is taken as it is; anything else is returned as typed (the service names it)."""
    text = (raw or "").strip()
    if not text:
        return None
    for fmt in (DATETIME_FORMAT, f"{DATETIME_FORMAT}:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    return text


def request_body(posted: Mapping[str, Any], *, strategy_keys: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the API request body, the form's own errors keyed like the inputs). From a bot: its id, the
    window and the costs; from a strategy: the strategy with the parameters typed for it (empty
    ones take the strategy's defaults), the instrument and bar size, the window and the costs."""
    errors: dict[str, list[str]] = {}
    source = posted.get("source") or "strategy"
    body: dict[str, Any] = {}
    if source == "bot":
        raw = (posted.get("bot_id") or "").strip()
        if not raw:
            errors["bot_id"] = ["choose the bot to backtest."]
        body["bot_id"] = int(raw) if _INT.match(raw) else raw or None
    else:
        key = (posted.get("strategy_key") or "").strip()
        if not key:
            errors["strategy_key"] = ["choose a strategy."]
        body["strategy_key"] = key or None
        parameters = {}
        if key in strategy_keys:
            prefix = f"parameters.{key}."
            for name, value in posted.items():
                if name.startswith(prefix) and (number := parse_number(value)) is not None:
                    parameters[name.removeprefix(prefix)] = number
        body["parameters"] = parameters
        instrument = (posted.get("instrument") or "").strip()
        if not instrument:
            errors["instrument"] = ["choose an instrument."]
        body["instrument"] = instrument or None
        body["timeframe"] = (posted.get("timeframe") or "").strip() or None
    for name in ("start", "end"):
        value = parse_utc(posted.get(name))
        if value is None:
            errors[name] = ["choose a date and time (UTC)."]
        elif isinstance(value, str):
            errors[name] = ["must be a date and time, e.g. 2025-12-15 14:00 (UTC)."]
        body[name] = value
    fill_model = {}
    for name in ("slippage_ticks", "commission_per_contract"):
        value = parse_number(posted.get(f"fill_model.{name}"))
        if value is not None:
            fill_model[name] = value if name == "slippage_ticks" else str(value)
    if fill_model:
        body["fill_model"] = fill_model
    capital = parse_number(posted.get("initial_capital"))
    if capital is not None:
        body["initial_capital"] = str(capital)
    return body, errors


def field_errors(
    fields: Mapping[str, Any], *, strategy_key: str | None, parameter_names: Any = ()
) -> dict[str, list[str]]:
    """A BacktestValidationError's `fields` ({"parameters": {"fast_period": [...]}, "end": [...]})
    keyed like the form's inputs ("parameters.trend_following.fast_period", "end"), with the
    parameter names in its messages replaced by their labels."""
    names = sorted(parameter_names, key=len, reverse=True)

    def words(message: Any) -> str:
        text = str(message)
        for name in names:
            text = re.sub(rf"\b{re.escape(name)}\b", field_label(name).lower(), text)
        return text

    out: dict[str, list[str]] = {}
    for name, problems in fields.items():
        if isinstance(problems, Mapping):
            for inner, inner_problems in problems.items():
                key = f"parameters.{strategy_key}.{inner}" if name == "parameters" else f"{name}.{inner}"
                out[key] = [words(p) for p in inner_problems]
        else:
            out[name] = [words(p) for p in problems]
    return out


def error_label(key: str) -> str:
    """The words an error line starts with: the input's label."""
    if key in LABELS:
        return LABELS[key]
    if key.startswith("parameters."):
        return field_label(key.rsplit(".", 1)[-1])
    if key.startswith("risk_limits."):
        return field_label(key.removeprefix("risk_limits."))
    return field_label(key)
