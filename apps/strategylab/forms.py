"""The New experiment form of the Lab page: what the operator typed, turned into the request body
POST /api/strategy-lab/experiments takes, and the service's field errors put back beside the inputs
they are about, in words.

The form checks only what a browser form cannot carry as the API does (a choice left empty, a
range typed in part, a date and time without its zone); every other rule is the service's
(apps.strategylab.services.experiment_validate), so the page and the API refuse the same things.
A number that is not one is passed through as typed, so the service names it. The parsing of
numbers, lists of values and UTC times is the Backtests forms' (apps.backtests.forms)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from apps.backtests.forms import grid_values, parse_number, parse_utc
from apps.core.templatetags.observatory import field_label

WINDOW_MODES = ("split", "walk_forward")
RANGE_PARTS = ("min", "max", "step")

LABELS = {
    "name": "Name",
    "strategy_key": "Strategy",
    "instruments": "Instruments",
    "timeframe": "Bars",
    "parameter_space": "Parameter space",
    "train": "In-sample window",
    "train.start": "In-sample start",
    "train.end": "In-sample end",
    "test": "Out-of-sample window",
    "test.start": "Out-of-sample start",
    "test.end": "Out-of-sample end",
    "walk_forward": "Walk-forward",
    "walk_forward.folds": "Folds",
    "walk_forward.start": "Walk-forward start",
    "walk_forward.end": "Walk-forward end",
    "walk_forward.test_fraction": "Out-of-sample share",
    "objective": "Rank by",
    "max_runs": "Most in-sample runs",
    "top_k": "Re-run out of sample",
    "fill_model": "Fill model",
    "fill_model.slippage_ticks": "Slippage",
    "fill_model.commission_per_contract": "Commission per contract",
    "initial_capital": "Initial capital",
    "risk_limits": "Risk limits",
    "non_field_errors": "The request",
}

# API names the service's messages use, in the words of the form's labels.
_WORDS = (
    ("train.start", "the in-sample start"),
    ("train.end", "the in-sample end"),
    ("test.start", "the out-of-sample start"),
    ("test.end", "the out-of-sample end"),
    ("test_fraction", "the out-of-sample share"),
    ("walk_forward", "walk-forward"),
    ("max_runs", "the most in-sample runs"),
    ("top_k", "the re-run count"),
)


def _range_key(strategy: str, parameter: str, part: str) -> str:
    return f"space.{strategy}.{parameter}.{part}"


def request_body(
    posted: Mapping[str, Any], *, strategies: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(the API request body, the form's own errors keyed like the inputs). The parameter space is
    read from the chosen strategy's inputs: per parameter a list of values ("5, 10, 20") or a range
    (min, max and step); a parameter left empty keeps the strategy's default. The windows are a
    train/test split or walk-forward folds, as chosen."""
    errors: dict[str, list[str]] = {}
    body: dict[str, Any] = {"name": (posted.get("name") or "").strip()}
    if not body["name"]:
        errors["name"] = ["give the experiment a name."]
    key = (posted.get("strategy_key") or "").strip()
    if not key:
        errors["strategy_key"] = ["choose a strategy."]
    body["strategy_key"] = key or None
    space: dict[str, Any] = {}
    spec = strategies.get(key)
    for parameter in spec.parameters if spec is not None else ():
        input_key = f"space.{key}.{parameter.name}"
        values = grid_values(posted.get(f"{input_key}.values"))
        parts = {part: parse_number(posted.get(_range_key(key, parameter.name, part))) for part in RANGE_PARTS}
        typed = [part for part, value in parts.items() if value is not None]
        if values and typed:
            errors[input_key] = ["give a list of values or a range (min, max, step), not both."]
        elif values:
            space[parameter.name] = values
        elif typed and len(typed) < len(RANGE_PARTS):
            missing = [part for part in RANGE_PARTS if part not in typed]
            errors[input_key] = [f"a range needs min, max and step: {' and '.join(missing)} missing."]
        elif typed:
            space[parameter.name] = parts
    if spec is not None and not space and not any(k.startswith("space.") for k in errors):
        errors["parameter_space"] = ["give at least one parameter a list of values or a range to search."]
    body["parameter_space"] = space
    instruments = [i.strip() for i in posted.getlist("instruments")] if hasattr(posted, "getlist") else []
    instruments = [i for i in instruments if i]
    if not instruments:
        errors["instruments"] = ["tick at least one instrument."]
    body["instruments"] = instruments
    body["timeframe"] = (posted.get("timeframe") or "").strip() or None

    mode = posted.get("window_mode") if posted.get("window_mode") in WINDOW_MODES else "split"
    if mode == "split":
        for window in ("train", "test"):
            body[window] = {part: _time(posted, f"{window}.{part}", errors) for part in ("start", "end")}
    else:
        folds = parse_number(posted.get("walk_forward.folds"))
        walk: dict[str, Any] = {part: _time(posted, f"walk_forward.{part}", errors) for part in ("start", "end")}
        if folds is None:
            errors["walk_forward.folds"] = ["give the number of folds (2 to 20)."]
        walk["folds"] = folds
        fraction = parse_number(posted.get("walk_forward.test_fraction"))
        if fraction is not None:
            walk["test_fraction"] = fraction
        body["walk_forward"] = walk

    objective = (posted.get("objective") or "").strip()
    if objective:
        body["objective"] = objective
    for name in ("max_runs", "top_k"):
        value = parse_number(posted.get(name))
        if value is not None:
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


def _time(posted: Mapping[str, Any], name: str, errors: dict[str, list[str]]) -> Any:
    value = parse_utc(posted.get(name))
    if value is None:
        errors[name] = ["choose a date and time (UTC)."]
    elif isinstance(value, str):
        errors[name] = ["must be a date and time, e.g. 2025-12-15 14:00 (UTC)."]
    return value


def _messages(problems: Any) -> list[str]:
    """Every message under a field's errors, however deep: a nested entry is prefixed with its
    name ("fold 2 train: …")."""
    if isinstance(problems, Mapping):
        out = []
        for inner, inner_problems in problems.items():
            prefix = "" if inner in ("non_field_errors", "window") else f"{field_label(inner).lower()}: "
            out.extend(prefix + m for m in _messages(inner_problems))
        return out
    if isinstance(problems, list | tuple):
        return [m for p in problems for m in _messages(p)]
    return [str(problems)]


def field_errors(
    fields: Mapping[str, Any],
    *,
    strategy_key: str | None,
    parameter_names: Any = (),
    strategy_labels: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """An ExperimentValidationError's `fields` keyed like the New experiment form's inputs: a
    parameter's to its inputs ("space.trend_following.fast_period"), a window's start or end to its
    input ("train.start", "walk_forward.folds"); API names in the messages (parameters, strategy
    keys, other fields) replaced by their words."""
    names = sorted(parameter_names, key=len, reverse=True)
    strategies = dict(strategy_labels or {})

    def words(message: str) -> str:
        text = message
        for api, said in _WORDS:
            text = text.replace(api, said)
        for key, name in strategies.items():
            text = re.sub(rf"\b{re.escape(key)}\b", name, text)
        for name in names:
            text = re.sub(rf"\b{re.escape(name)}\b", field_label(name).lower(), text)
        return text

    out: dict[str, list[str]] = {}

    def add(key: str, problems: Any) -> None:
        out.setdefault(key, []).extend(words(m) for m in _messages(problems))

    parts_of = {
        "train": ("start", "end"),
        "test": ("start", "end"),
        "walk_forward": ("folds", "test_fraction"),
        "fill_model": ("slippage_ticks", "commission_per_contract"),
    }
    for name, problems in fields.items():
        if name == "parameter_space" and isinstance(problems, Mapping):
            for inner, inner_problems in problems.items():
                if inner in names and strategy_key:
                    add(f"space.{strategy_key}.{inner}", inner_problems)
                elif inner == "non_field_errors":
                    add("parameter_space", inner_problems)
                else:
                    add("parameter_space", {inner: inner_problems})
        elif name in parts_of and isinstance(problems, Mapping):
            for inner, inner_problems in problems.items():
                if inner in parts_of[name]:
                    add(f"{name}.{inner}", inner_problems)
                elif name == "walk_forward" and inner == "span" and isinstance(inner_problems, Mapping):
                    for part, part_problems in inner_problems.items():
                        add(f"walk_forward.{part}" if part in ("start", "end") else "walk_forward", part_problems)
                else:
                    add(name, {inner: inner_problems})
        else:
            add(name, problems)
    return out


def error_label(key: str) -> str:
    """The words an error line starts with: the input's label."""
    if key in LABELS:
        return LABELS[key]
    if key.startswith("space."):
        return field_label(key.rsplit(".", 1)[-1])
    return field_label(key)
