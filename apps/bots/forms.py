"""The bot pages' create and edit forms: what the operator typed, turned into the same arguments
the API gives the services (bot_create, bot_update), and the services' field errors put back beside
the inputs they are about. Validation itself is the services' (one set of rules for the page and
the API); a value that is not a number is passed through as typed so the service names it."""

from __future__ import annotations

import re
from typing import Any

from django.http import QueryDict

from apps.bots.models import Bot
from apps.trading import catalogue as strategies

CREATE_FIELDS = ("name", "strategy_key", "instrument", "timeframe", "data_provider", "venue", "broker_account")
_INT = re.compile(r"^[+-]?\d+$")


def parse_number(raw: str) -> int | float | str | None:
    """'' → None (unset / back to the default), '20' → 20, '2.5' → 2.5, anything else as typed."""
    text = (raw or "").strip()
    if not text:
        return None
    if _INT.match(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def _limit_value(spec: strategies.RiskLimitSpec, raw: str) -> Any:
    if spec.kind in (int, float):
        return parse_number(raw)
    items = [item.strip() for item in (raw or "").split(",") if item.strip()]
    return items or None


def create_arguments(data: QueryDict) -> dict[str, Any]:
    """bot_create's keyword arguments from the New bot form (parameters: the strategy's defaults)."""
    values: dict[str, Any] = {name: data.get(name, "").strip() for name in CREATE_FIELDS}
    limits = {}
    for name, spec in strategies.RISK_LIMITS.items():
        value = _limit_value(spec, data.get(f"risk_limits.{name}", ""))
        if value is not None:
            limits[name] = value
    values["risk_limits"] = limits
    return values


def update_arguments(bot: Bot, data: QueryDict) -> dict[str, Any]:
    """bot_update's keyword arguments from the edit form: every parameter and risk limit shown, an
    emptied parameter back to its default, an emptied limit removed (a merge-patch null)."""
    strategy = strategies.strategy_for(bot.strategy_key)
    parameters = {}
    if strategy is not None:
        for spec in strategy.parameters:
            key = f"parameters.{spec.name}"
            if key in data:
                parameters[spec.name] = parse_number(data.get(key, ""))
    limits = {}
    for name, spec in strategies.RISK_LIMITS.items():
        key = f"risk_limits.{name}"
        if key in data:
            limits[name] = _limit_value(spec, data.get(key, ""))
    return {"parameters": parameters, "risk_limits": limits, "reason": data.get("reason", "").strip()}


def field_errors(fields: dict[str, Any]) -> dict[str, list[str]]:
    """A BotValidationError's `fields` ({"parameters": {"fast_period": [...]}, "name": [...]}) as
    one flat map keyed like the inputs' names ("parameters.fast_period", "name")."""
    out: dict[str, list[str]] = {}
    for name, problems in fields.items():
        if isinstance(problems, dict):
            for inner, inner_problems in problems.items():
                out[f"{name}.{inner}"] = [str(p) for p in inner_problems]
        else:
            out[name] = [str(p) for p in problems]
    return out


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def parameter_rows(bot: Bot, *, posted: QueryDict | None, errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    strategy = strategies.strategy_for(bot.strategy_key)
    if strategy is None:
        return []
    rows = []
    for spec in strategy.parameters:
        key = f"parameters.{spec.name}"
        rows.append(
            {
                "key": key,
                "name": spec.name,
                "value": posted.get(key, "") if posted is not None else _shown(bot.parameters.get(spec.name)),
                "help": f"{spec.help}; {spec.minimum} to {spec.maximum}, default {spec.default}",
                "step": "1" if spec.kind is int else "any",
                "errors": errors.get(key, []),
            }
        )
    return rows


def risk_limit_rows(
    current: dict[str, Any], *, posted: QueryDict | None, errors: dict[str, list[str]]
) -> list[dict[str, Any]]:
    rows = []
    for name, spec in strategies.RISK_LIMITS.items():
        key = f"risk_limits.{name}"
        rows.append(
            {
                "key": key,
                "name": name,
                "value": posted.get(key, "") if posted is not None else _shown(current.get(name)),
                "help": spec.help,
                "numeric": spec.kind in (int, float),
                "step": "1" if spec.kind is int else "any",
                "errors": errors.get(key, []),
            }
        )
    return rows


def create_choices() -> dict[str, Any]:
    return {
        "strategies": [(s.key, s.label, s.description) for s in strategies.STRATEGIES.values()],
        "instruments": list(strategies.INSTRUMENTS.items()),
        "timeframes": list(strategies.TIMEFRAMES),
        "data_providers": list(Bot.DataProvider.values),
        "venues": list(Bot.Venue.values),
        "default_timeframe": Bot._meta.get_field("timeframe").default,
    }
