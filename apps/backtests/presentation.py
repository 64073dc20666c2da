"""A backtest's stored result in an operator's words, for its page (pure: the row's JSON in, plain
dicts out; no database).

The API answers figures as SPEC §9 names them (`win_rate` "0.5833", `null` with a reason in
`metrics.unknown`); a page shows "58.3 %", "1.43", "−250.00 USD", and a figure that could not be
computed as "—" with its reason, never 0. Decision reason codes become words; the code stays in
the element's title for whoever maintains the strategy."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.core.templatetags.observatory import field_label as label

# The figures of SPEC §9 in the order a desk reads them: the money, then the trades, then the risk.
# (metric, label, kind, what it means)
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("net_pnl", "Net PnL", "usd", "after fees and slippage"),
    ("gross_pnl", "Gross PnL", "usd", "before fees"),
    ("fees", "Fees", "usd", "commissions paid"),
    ("slippage", "Slippage", "usd", "already inside the fill prices"),
    ("trades", "Trades", "count", "closed trades, an open one at the end included"),
    ("win_rate", "Win rate", "share", "trades that made money"),
    ("profit_factor", "Profit factor", "ratio", "money won over money lost"),
    ("expectancy", "Expectancy", "usd", "net per trade"),
    ("max_drawdown", "Max drawdown", "usd", "deepest fall of the equity from a peak"),
    ("sharpe", "Sharpe", "ratio", "daily returns, annualised"),
    ("sortino", "Sortino", "ratio", "downside only, annualised"),
    ("exposure", "Exposure", "share", "bars with a position open"),
)

VERDICT_WORDS = {
    "PROMOTABLE": ("Promotable", "ok", "Every threshold passed: this result is evidence for promotion to PAPER."),
    "MARGINAL": ("Marginal", "warn", "Not enough evidence either way: see the reasons."),
    "REJECTED": ("Rejected", "bad", "The result fails a threshold that says no: see the reasons."),
}

STATUS_WORDS = {
    "QUEUED": "Queued",
    "RUNNING": "Running",
    "SUCCEEDED": "Finished",
    "FAILED": "Failed",
    "CANCELLED": "Cancelled",
}

# Why a bar's close did or did not trade, for each reason code the engine counts (apps.trading:
# the strategies' codes, the engine's MARKET_CLOSED and the risk checks' codes).
REASON_WORDS: dict[str, str] = {
    "INSUFFICIENT_BARS": "not enough bars yet for the strategy (warm-up)",
    "NO_SIGNAL": "no signal",
    "ZERO_VOLATILITY": "prices did not move, so the strategy has no signal",
    "TREND_UP": "trend up (fast average above the slow one)",
    "TREND_DOWN": "trend down (fast average below the slow one)",
    "BREAKOUT_UP": "closed above the recent range",
    "BREAKOUT_DOWN": "closed below the recent range",
    "ZSCORE_ABOVE_ENTRY": "price far above its mean",
    "ZSCORE_BELOW_ENTRY": "price far below its mean",
    "ZSCORE_REVERTED": "price back near its mean",
    "IN_POSITION": "already holding the position the strategy wants",
    "ZERO_ATR": "no room for a stop (the ATR was zero), so no entry",
    "MARKET_CLOSED": "the market was closed at the bar's close",
    "RISK_INVALID_INTENT": "refused by risk: the order was not valid",
    "RISK_POSITION_MISMATCH": "refused by risk: the position did not match the order's",
    "RISK_KILLED": "refused by risk: the bot was killed",
    "RISK_HALTED": "refused by risk: trading halted after repeated refusals",
    "RISK_REDUCING_ONLY": "refused by risk: only orders that reduce the position were allowed",
    "RISK_TRADING_STATE_UNKNOWN": "refused by risk: the trading state was unknown",
    "RISK_LIMIT_MISSING": "refused by risk: a required risk limit is not set",
    "RISK_MAX_ORDER_SIZE": "refused by risk: the order was larger than allowed",
    "RISK_MAX_POSITION": "refused by risk: the position would exceed its limit",
    "RISK_MAX_DAILY_LOSS": "refused by risk: the day's loss limit was reached",
    "RISK_DAILY_PNL_UNKNOWN": "refused by risk: the day's PnL was unknown",
    "RISK_ORDER_RATE": "refused by risk: too many orders (per day or per minute)",
    "RISK_DUPLICATIVE": "refused by risk: the same order was just sent",
    "RISK_PRICE_COLLAR": "refused by risk: the price was too far from the market",
    "RISK_NO_REFERENCE_PRICE": "refused by risk: no recent price to check the order against",
    "RISK_ACCOUNT_AGGREGATE": "refused by risk: the account's contract limit would be exceeded",
    "RISK_ACCOUNT_EXPOSURE_UNKNOWN": "refused by risk: the account's exposure was unknown",
    "RISK_RESTRICTED": "refused by risk: the instrument is restricted",
    "RISK_MAX_NOTIONAL": "refused by risk: the order's value was larger than allowed",
    "RISK_ACCOUNT_NOTIONAL": "refused by risk: the account's value limit would be exceeded",
    "RISK_NOTIONAL_UNKNOWN": "refused by risk: the order's value could not be computed",
}

OUTCOME_WORDS = {"TRADE": "Traded", "NO_TRADE": "Did not trade"}


def reason_words(code: str) -> str:
    """A reason code in words; an unknown code (a newer strategy's) as its own words, never hidden."""
    return REASON_WORDS.get(code) or code.replace("_", " ").lower()


def _decimal(value: Any) -> Decimal | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def money(value: Any) -> str:
    """'-1234.5' → '−1,234.50 USD' (a real minus sign, thousands separated)."""
    number = _decimal(value)
    if number is None:
        return str(value)
    sign = "−" if number < 0 else ""
    return f"{sign}{abs(number):,.2f} USD"


def _shown(value: Any, kind: str) -> str:
    number = _decimal(value)
    if number is None:
        return str(value)
    if kind == "usd":
        return money(number)
    if kind == "share":
        return f"{number * 100:.1f} %"
    if kind == "ratio":
        sign = "−" if number < 0 else ""
        return f"{sign}{abs(number):.2f}"
    return f"{int(number):,}"


def metric_cards(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One card per SPEC §9 figure: `value` shown in words, or None with `reason` when the figure
    is null (its reason from `metrics.unknown`), and `tone` (good / bad / "") for the sign of money."""
    unknown = metrics.get("unknown") or {}
    cards = []
    for key, name, kind, meaning in METRICS:
        raw = metrics.get(key)
        card: dict[str, Any] = {"key": key, "label": name, "meaning": meaning, "value": None, "reason": "", "tone": ""}
        if raw is None:
            card["reason"] = unknown.get(key) or "not computed for this backtest"
        else:
            card["value"] = _shown(raw, kind)
            number = _decimal(raw)
            if key in ("net_pnl", "gross_pnl", "expectancy") and number is not None and number != 0:
                card["tone"] = "ok" if number > 0 else "bad"
            if key == "max_drawdown" and metrics.get("max_drawdown_pct") is not None:
                card["detail"] = f"{_pct(metrics['max_drawdown_pct'])} % of the peak it fell from"
        cards.append(card)
    return cards


def _pct(value: Any) -> str:
    number = _decimal(value)
    return str(value) if number is None else f"{number:.2f}"


def verdict(classification: Mapping[str, Any]) -> dict[str, Any] | None:
    """The verdict, its words and tone, and each reason's message (in words already)."""
    code = classification.get("verdict")
    if not code:
        return None
    name, tone, meaning = VERDICT_WORDS.get(code, (str(code).capitalize(), "warn", ""))
    return {
        "code": code,
        "label": name,
        "tone": tone,
        "meaning": meaning,
        "reasons": [
            {"message": r.get("message", ""), "leads_to": VERDICT_WORDS.get(r.get("verdict", ""), ("", "", ""))[0]}
            for r in classification.get("reasons") or []
        ],
        "thresholds": [
            {"label": THRESHOLD_WORDS.get(k, label(k)), "value": v}
            for k, v in (classification.get("thresholds") or {}).items()
        ],
    }


THRESHOLD_WORDS = {
    "min_trades": "Trades, at least",
    "min_trading_days": "Trading days, at least",
    "min_profit_factor": "Profit factor, at least",
    "min_expectancy": "Expectancy per trade (USD), above and at least",
    "max_drawdown_pct": "Max drawdown (% of the capital), at most",
}


def decision_rows(decisions: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """Counts by outcome then reason, largest first: [{"outcome", "total", "reasons": [{"code",
    "words", "count"}]}], traded first."""
    rows = []
    for outcome in ("TRADE", "NO_TRADE"):
        counts = decisions.get(outcome) or {}
        reasons = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        rows.append(
            {
                "outcome": OUTCOME_WORDS[outcome],
                "total": sum(counts.values()),
                "reasons": [{"code": c, "words": reason_words(c), "count": n} for c, n in reasons],
            }
        )
    return rows


def parameter_rows(parameters: Mapping[str, Any], specs: Any = None) -> list[dict[str, Any]]:
    """The parameters backtested, labelled; with the strategy's specs, in its order and with each
    parameter's meaning."""
    rows = []
    seen = set()
    for spec in specs or ():
        if spec.name in parameters:
            rows.append({"label": label(spec.name), "value": parameters[spec.name], "help": spec.help})
            seen.add(spec.name)
    for name, value in parameters.items():
        if name not in seen:
            rows.append({"label": label(name), "value": value, "help": ""})
    return rows


def _when(value: Any) -> str:
    """An ISO 8601 time as the pages write times: 2025-12-15 15:00 UTC."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def error_view(error: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A FAILED backtest's envelope for its page: the code, message, what to do, trace id, and the
    details an operator acts on (the gaps of missing bars, the variables a provider lacks)."""
    if not error:
        return None
    return {
        "code": error.get("error_code") or "INTERNAL_ERROR",
        "message": error.get("message") or "The backtest failed without saying why.",
        "fix": error.get("suggested_fix") or "",
        "trace_id": error.get("trace_id") or "",
        "gaps": [
            {"start": _when(g.get("start")), "end": _when(g.get("end")), "slots": g.get("slots")}
            for g in error.get("gaps") or []
        ],
        "gaps_total": error.get("gaps_total"),
        "missing_env_vars": list(error.get("missing_env_vars") or []),
    }


SIDE_WORDS = {"LONG": "Long", "SHORT": "Short"}
EXIT_WORDS = {"STOP": "Protective stop", "SIGNAL": "Strategy signal", "END": "End of the window"}


def price(value: Any) -> str:
    """A stored price without the column's padding: 5501.250000000 → 5501.25, 5500 → 5500.00."""
    number = _decimal(value)
    if number is None:
        return str(value)
    text = format(number.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def trade_row(trade: Any) -> dict[str, Any]:
    """One trade of the trade table, in words."""
    pnl = _decimal(trade.pnl)
    return {
        "seq": trade.seq,
        "side": SIDE_WORDS.get(trade.side, trade.side),
        "long": trade.side == "LONG",
        "quantity": trade.quantity,
        "entry_ts": trade.entry_ts,
        "entry_price": price(trade.entry_price),
        "exit_ts": trade.exit_ts,
        "exit_price": price(trade.exit_price),
        "exit_reason": EXIT_WORDS.get(trade.exit_reason, trade.exit_reason),
        "pnl": money(trade.pnl),
        "tone": "" if pnl is None or pnl == 0 else "ok" if pnl > 0 else "bad",
        "fees": money(trade.fees),
    }


# --- the matrix ----------------------------------------------------------------------------------

# What a matrix may rank its runs by (apps.backtests.selectors.OBJECTIVES), in words: (label, kind,
# what it means). The direction ("highest first" or "lowest first") comes from OBJECTIVES.
_METRIC_WORDS = {key: (name, kind, meaning) for key, name, kind, meaning in METRICS}
OBJECTIVE_WORDS: dict[str, tuple[str, str, str]] = {
    **_METRIC_WORDS,
    "max_drawdown_pct": ("Max drawdown (% of the peak)", "pct", "deepest fall of the equity, in % of its peak"),
}


def objective_label(key: str) -> str:
    return OBJECTIVE_WORDS.get(key, (label(key), "", ""))[0]


def objective_choices(objectives: Mapping[str, str]) -> list[tuple[str, str]]:
    """(key, words) for each objective a matrix may be ranked by: "Expectancy — net per trade,
    highest first"."""
    out = []
    for key, direction in objectives.items():
        name, _, meaning = OBJECTIVE_WORDS.get(key, (label(key), "", ""))
        order = "lowest first" if direction == "asc" else "highest first"
        out.append((key, f"{name} — {meaning}, {order}" if meaning else f"{name}, {order}"))
    return out


def objective_value(key: str, value: Any) -> str | None:
    """A run's figure for the objective, as its card shows it; None when it has none."""
    if value is None:
        return None
    kind = OBJECTIVE_WORDS.get(key, ("", "ratio", ""))[1]
    if kind == "pct":
        return f"{_pct(value)} %"
    return _shown(value, kind)


def parameter_value(value: Any) -> str:
    """A parameter's value as typed: 5, 1.5, 2 (a whole float without its .0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def matrix_run_row(run: Any, *, varying: list[str], objective: str) -> dict[str, Any]:
    """One run of a matrix as a line of its ranked table: rank (None unless it finished), the
    values of the parameters that vary, instrument, window, the objective's figure (or why it has
    none), net PnL, trades, verdict, and a failed run's error."""
    metrics = run.metrics or {}
    raw = metrics.get(objective)
    unknown = (metrics.get("unknown") or {}).get(objective)
    net = metrics.get("net_pnl")
    return {
        "run": run,
        "backtest": run,
        "rank": getattr(run, "rank", None),
        "status": STATUS_WORDS.get(run.status, run.status),
        "open": run.status in ("QUEUED", "RUNNING"),
        "percent": round((run.progress or 0) * 100),
        "values": [parameter_value((run.parameters or {}).get(name)) for name in varying],
        "objective": objective_value(objective, raw),
        "objective_reason": unknown or ("" if raw is not None else "no figure for it in this run"),
        "net_pnl": money(net) if net is not None else None,
        "net_tone": _tone(net),
        "trades": metrics.get("trades"),
        "verdict": verdict(run.classification or {}),
        "error": error_view(run.error),
    }


def _tone(value: Any) -> str:
    number = _decimal(value) if value is not None else None
    return "" if number is None or number == 0 else "ok" if number > 0 else "bad"


def skipped_rows(skipped: Mapping[str, Any], parameter_names: Any = (), varying: Any = None) -> dict[str, Any]:
    """The grid combinations the strategy's own rules refused, in words: {"count", "examples":
    [{"parameters": "Fast period 30, Slow period 20", "reason": "fast period must be smaller than
    slow period"}], "more"} (the matrix stores the first few and the count). With `varying`, only
    the parameters the grid varies are named (the others are the same in every combination)."""
    names = sorted(parameter_names, key=len, reverse=True)

    def words(text: str) -> str:
        for name in names:
            text = re.sub(rf"\b{re.escape(name)}\b", label(name).lower(), text)
        return text.rstrip(".")

    examples = [
        {
            "parameters": ", ".join(
                f"{label(k)} {parameter_value(v)}"
                for k, v in (e.get("parameters") or {}).items()
                if not varying or k in varying
            ),
            "reason": words(str(e.get("reason", ""))),
        }
        for e in skipped.get("examples") or []
    ]
    count = int(skipped.get("count") or 0)
    return {"count": count, "examples": examples, "more": max(count - len(examples), 0)}


# The most cells the page draws: a bigger pair of parameters is refused in words, not drawn.
HEATMAP_MAX_CELLS = 2500
HEATMAP_AGGREGATES = {
    "best": "the best run",
    "mean": "the mean of the runs",
    "worst": "the worst run",
}


def _same(value: Any, text: Any) -> bool:
    """A grid value (5, 1.5) against the text a run's parameters hold for it ("5", "1.5")."""
    a, b = _decimal(value), _decimal(text)
    return a is not None and b is not None and a == b


def heatmap(
    *,
    objective: str,
    lowest_first: bool,
    x_values: list[Any],
    y_values: list[Any] | None,
    cells: list[Mapping[str, Any]],
    aggregate: str = "best",
) -> dict[str, Any]:
    """The objective over two parameters of the grid as rows of cells, colour-scaled from the worst
    figure shown (red) to the best (green): each cell the `aggregate` ("best", "mean", "worst") of
    the finished runs that share its two values (the other parameters, instruments and windows
    vary). A cell with no figure says why: its runs have not finished, failed or were cancelled,
    they have no figure for the objective, or the strategy's rules skipped the combination.
    `y_values` None: one row over x alone."""
    rows_y: list[Any] = list(y_values) if y_values is not None else [None]
    if len(x_values) * len(rows_y) > HEATMAP_MAX_CELLS:
        return {"too_big": True, "cells": len(x_values) * len(rows_y), "rows": [], "x_values": []}
    kind_name = objective_label(objective)

    def find(xv: Any, yv: Any) -> Mapping[str, Any] | None:
        for cell in cells:
            if _same(xv, cell.get("x")) and (yv is None or _same(yv, cell.get("y"))):
                return cell
        return None

    found = {(i, j): find(xv, yv) for j, yv in enumerate(rows_y) for i, xv in enumerate(x_values)}
    figures = [_decimal(c[aggregate]) for c in found.values() if c is not None and c.get(aggregate) is not None]
    figures = [f for f in figures if f is not None]
    low, high = (min(figures), max(figures)) if figures else (None, None)
    rows = []
    for j, yv in enumerate(rows_y):
        line = []
        for i, xv in enumerate(x_values):
            cell = found[(i, j)]
            figure = _decimal(cell.get(aggregate)) if cell is not None and cell.get(aggregate) is not None else None
            entry: dict[str, Any] = {
                "x": parameter_value(xv),
                "y": None if yv is None else parameter_value(yv),
                "text": "",
                "style": "",
                "why": "",
                "state": "empty",
            }
            if figure is not None and low is not None and high is not None:
                # 1 = the best figure shown, 0 = the worst; all equal: the middle of the scale.
                share = float((figure - low) / (high - low)) if high != low else 0.5
                if lowest_first:
                    share = 1 - share
                entry.update(
                    text=objective_value(objective, figure) or "",
                    style=f"background: hsl({round(share * 120)}, 65%, 80%)",
                    state="figure",
                    share=round(share, 3),
                )
                runs = cell["known"] if cell is not None else 0
                what = HEATMAP_AGGREGATES.get(aggregate, aggregate).capitalize()
                entry["why"] = f"{what} of {runs} finished run{'s' if runs != 1 else ''}"
                if aggregate != "mean" and cell is not None and cell.get("mean") is not None and runs > 1:
                    entry["why"] += f"; mean {objective_value(objective, cell['mean'])}"
            elif cell is None:
                entry.update(text="skipped", state="skipped", why="The strategy's rules refuse this combination.")
            elif cell.get("open"):
                entry.update(
                    text="…", state="open", why=f"{cell['open']} of its {cell['runs']} run(s) not finished yet."
                )
            elif cell.get("succeeded"):
                entry.update(text="—", state="unknown", why=f"Its finished runs have no {kind_name.lower()} figure.")
            else:
                entry.update(text="—", state="none", why="Its runs failed or were cancelled: no figure.")
            line.append(entry)
        rows.append({"y": None if yv is None else parameter_value(yv), "cells": line})
    return {
        "too_big": False,
        "x_values": [parameter_value(v) for v in x_values],
        "rows": rows,
        # The legend: the figures at the two ends of the colour scale.
        "worst": objective_value(objective, high if lowest_first else low) if figures else None,
        "best": objective_value(objective, low if lowest_first else high) if figures else None,
    }
