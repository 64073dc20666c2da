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


# --- New matrix ------------------------------------------------------------------------------------

MATRIX_LABELS = {
    **LABELS,
    "instruments": "Instruments",
    "instrument": "Instruments",
    "windows": "Windows",
    "grid": "Grid",
    "objective": "Rank by",
}


def grid_values(raw: str | None) -> list[int | float | str]:
    """'5, 10,20' → [5, 10, 20]; '' → [] (not given: the base value); a value that is not a number
    is kept as typed, so the service names it."""
    values = []
    for part in (raw or "").split(","):
        number = parse_number(part)
        if number is not None:
            values.append(number)
    return values


def window_rows(posted: Mapping[str, Any]) -> list[dict[str, str]]:
    """The window rows the form sent (windows.<n>.start / windows.<n>.end), in their order, as typed."""
    indexes = sorted(
        {int(m.group(1)) for name in posted if (m := re.match(r"^windows\.(\d{1,4})\.(start|end)$", name))}
    )
    return [
        {
            "start": (posted.get(f"windows.{i}.start") or "").strip(),
            "end": (posted.get(f"windows.{i}.end") or "").strip(),
        }
        for i in indexes
    ]


def matrix_request_body(
    posted: Mapping[str, Any], *, strategy_keys: Any, bot_strategies: Mapping[int, str]
) -> tuple[dict[str, Any], dict[str, list[str]], list[int]]:
    """(the body POST /api/backtests/matrix takes, the form's own errors keyed like the inputs, the
    form row of each window sent). From a bot: its id (its strategy's grid inputs are read); from
    a strategy: the strategy and bar size (its parameters' base values are the defaults). Then the
    grid (one comma-separated input per parameter; empty: the base value), the instruments ticked
    (none, from a bot: the bot's), the windows (rows left empty are ignored), the objective and the
    costs."""
    errors: dict[str, list[str]] = {}
    source = posted.get("source") or "strategy"
    body: dict[str, Any] = {}
    key = ""
    if source == "bot":
        raw = (posted.get("bot_id") or "").strip()
        if not raw:
            errors["bot_id"] = ["choose the bot whose configuration the matrix varies."]
        body["bot_id"] = int(raw) if _INT.match(raw) else raw or None
        key = bot_strategies.get(body["bot_id"], "") if isinstance(body["bot_id"], int) else ""
    else:
        key = (posted.get("strategy_key") or "").strip()
        if not key:
            errors["strategy_key"] = ["choose a strategy."]
        body["strategy_key"] = key or None
        body["parameters"] = {}
        body["timeframe"] = (posted.get("timeframe") or "").strip() or None
    grid: dict[str, list[Any]] = {}
    if key in strategy_keys:
        prefix = f"grid.{key}."
        for name, value in posted.items():
            if name.startswith(prefix) and (values := grid_values(value)):
                grid[name.removeprefix(prefix)] = values
    body["grid"] = grid
    instruments = [i.strip() for i in posted.getlist("instruments")] if hasattr(posted, "getlist") else []
    instruments = [i for i in instruments if i]
    if instruments:
        body["instruments"] = instruments
    elif source != "bot":
        errors["instruments"] = ["tick at least one instrument."]
    windows: list[dict[str, Any]] = []
    rows: list[int] = []
    for row, window in enumerate(window_rows(posted)):
        if not window["start"] and not window["end"]:
            continue
        sent: dict[str, Any] = {}
        for name in ("start", "end"):
            value = parse_utc(window[name])
            if value is None:
                errors[f"windows.{row}.{name}"] = ["choose a date and time (UTC)."]
            elif isinstance(value, str):
                errors[f"windows.{row}.{name}"] = ["must be a date and time, e.g. 2025-12-15 14:00 (UTC)."]
            sent[name] = value
        windows.append(sent)
        rows.append(row)
    if not windows:
        errors["windows"] = ["give at least one window: its start and its end."]
    body["windows"] = windows
    objective = (posted.get("objective") or "").strip()
    if objective:
        body["objective"] = objective
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
    return body, errors, rows


def matrix_field_errors(
    fields: Mapping[str, Any],
    *,
    strategy_key: str | None,
    parameter_names: Any = (),
    strategy_labels: Mapping[str, str] | None = None,
    window_rows: list[int] | None = None,
) -> dict[str, list[str]]:
    """A matrix BacktestValidationError's `fields` keyed like the New matrix form's inputs: a grid
    parameter's to its input ("grid.trend_following.fast_period"), a window's (named by its index
    in the body) to the form row it came from ("windows.2.end"), the base instrument's to the
    instruments; parameter names and strategy keys in its messages replaced by their words."""
    names = sorted(parameter_names, key=len, reverse=True)
    strategies = dict(strategy_labels or {})
    rows = list(window_rows or [])

    def words(message: Any) -> str:
        text = str(message)
        for key, name in strategies.items():
            text = re.sub(rf"\b{re.escape(key)}\b", name, text)
        for name in names:
            text = re.sub(rf"\b{re.escape(name)}\b", field_label(name).lower(), text)
        return text

    def row_of(index: Any) -> int:
        position = int(index) if str(index).isdigit() else 0
        return rows[position] if position < len(rows) else position

    out: dict[str, list[str]] = {}
    for name, problems in fields.items():
        if name == "grid" and isinstance(problems, Mapping):
            for inner, inner_problems in problems.items():
                out[f"grid.{strategy_key}.{inner}"] = [words(p) for p in inner_problems]
        elif name == "windows" and isinstance(problems, Mapping):
            for index, found in problems.items():
                for part, part_problems in found.items():
                    where = f"windows.{row_of(index)}" + ("" if part == "non_field_errors" else f".{part}")
                    out.setdefault(where, []).extend(words(p) for p in part_problems)
        elif name in ("start", "end") and not isinstance(problems, Mapping):
            out.setdefault(f"windows.{row_of(0)}.{name}", []).extend(words(p) for p in problems)
        elif isinstance(problems, Mapping):
            for inner, inner_problems in problems.items():
                out[f"{name}.{inner}"] = [words(p) for p in inner_problems]
        elif name == "instrument":
            if "instruments" not in fields:
                out.setdefault("instruments", []).extend(words(p) for p in problems)
        else:
            out.setdefault(name, []).extend(words(p) for p in problems)
    return out


def matrix_error_label(key: str) -> str:
    """The words a New matrix error line starts with."""
    if key in MATRIX_LABELS:
        return MATRIX_LABELS[key]
    if key.startswith("windows."):
        parts = key.split(".")
        row = int(parts[1]) + 1 if parts[1].isdigit() else parts[1]
        return f"Window {row}" + (f" {parts[2]}" if len(parts) > 2 else "")
    if key.startswith("grid."):
        return field_label(key.rsplit(".", 1)[-1])
    return error_label(key)
