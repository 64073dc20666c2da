"""A backtest's figures, its equity curve and its verdict, from the engine's result (SPEC §9). Pure:
no database, no clock; the thresholds come from settings (BACKTEST_CLASSIFICATION) unless given.

`summarize(result, initial_capital=, start=, end=)` answers
`{"metrics", "equity_curve", "classification", "days"}`.

Metrics (the names of SPEC §9; money in USD and ratios as decimal strings, `trades` an integer):
- net_pnl: the sum of the trades' PnL, net of their fees. Every fill belongs to a trade: a
  position still open at the end of the window is closed as an `END` trade by the engine.
- fees: the commissions of the trades; gross_pnl = net_pnl + fees (the PnL at the fill prices).
- slippage: what the fills cost against their reference prices (SIM fill model). It is already
  inside the fill prices, so inside gross_pnl: shown apart, not subtracted again.
- trades: closed trades. win_rate: the share with net PnL > 0. expectancy: net_pnl / trades.
- profit_factor: the winners' net PnL over the losers' (absolute); a trade at exactly 0 is in neither.
- max_drawdown: the largest fall, in USD, of the equity from its running peak, close by close
  (equity = capital + realized PnL − fees + the open position's PnL at each window bar's close;
  the capital at `start` is the first peak). max_drawdown_pct: the largest such fall as a
  percentage of the peak it fell from (the two maxima may be different falls).
- sharpe, sortino: of the daily returns of the equity, annualised by √252, risk-free rate 0. A
  day is a CME trade date (apps.market.instruments.trade_date: a session opening at 17:00 CT
  belongs to the next day) of a bar's close; a day's equity is the equity at its last bar's
  close, and its return is against the previous day's (the first day's: against the capital).
  Days without bars (weekends, holidays) have no return. sharpe = mean / sample standard
  deviation (n − 1) × √252; sortino = mean / downside deviation × √252, the downside deviation
  being √(mean of min(r, 0)²) over every day (target 0).
- exposure: the share of the window's bars that closed with a position.
- unknown: `{metric: reason}` for each figure above that is `null`; the same shape as the
  `unknown` of GET /api/bots/{id}/performance. A figure that cannot be computed is null with its
  reason, never 0: no trades (win_rate, profit_factor, expectancy), no losing trade
  (profit_factor), no bars in the window (max_drawdown, max_drawdown_pct, exposure, sharpe,
  sortino), fewer than 2 trading days, equity unchanged from day to day (sharpe, sortino), no
  losing day (sortino), equity at or below zero at a day's close (sharpe, sortino).

days: the CME trade dates with at least one bar in the window.

equity_curve: `[{"ts", "equity"}]`, at most MAX_CURVE_POINTS points: the capital at `start`, then the
equity at each window bar's close (ts ISO 8601 UTC, equity a decimal string to the cent). Longer
series are cut into equal buckets of consecutive points that keep their lowest and highest point
(the first and the last point are always kept), so the highest and lowest equity, and each
bucket's peak and trough, survive (a line through averages or every k-th point would flatten them).

classification: `{"verdict", "reasons", "thresholds"}` (see `classify` and config/settings/backtests.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from apps.market.instruments import trade_date
from apps.trading.engine import EngineResult

PROMOTABLE, MARGINAL, REJECTED = "PROMOTABLE", "MARGINAL", "REJECTED"
MAX_CURVE_POINTS = 2000
TRADING_DAYS_PER_YEAR = 252
# Daily returns whose sample standard deviation is below this count as constant: a Sharpe ratio
# over them would only measure floating-point noise.
ZERO_VARIANCE = 1e-12
CENT = Decimal("0.01")
RATIO = Decimal("0.0001")
THRESHOLD_KEYS = ("min_trades", "min_trading_days", "min_profit_factor", "min_expectancy", "max_drawdown_pct")


def summarize(
    result: EngineResult,
    *,
    initial_capital: Decimal,
    start: datetime,
    end: datetime,
    thresholds: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The figures, equity curve, verdict and trading days of one backtest over [start, end)."""
    initial_capital = Decimal(initial_capital)
    if not initial_capital > 0:
        raise ValueError("initial_capital must be above 0")
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise ValueError("start and end must be timezone-aware with start < end")
    close_ts = np.asarray(result.close_ts, dtype=np.int64)
    equity = np.asarray(result.equity, dtype=np.float64)
    position = np.asarray(result.position, dtype=np.int64)
    if not len(close_ts) == len(equity) == len(position):
        raise ValueError("close_ts, equity and position must have one value per window bar")
    if len(close_ts) and (np.any(np.diff(close_ts) <= 0) or close_ts[0] <= start.timestamp()):
        raise ValueError("bar closes must increase and come after start")
    if not np.all(np.isfinite(equity)):
        raise ValueError(f"equity is not a finite number at the close of bar {int(np.argmin(np.isfinite(equity)))}")

    day_of_bar = trade_dates(close_ts)
    # The closes increase, so their trade dates never decrease: a new date is a change.
    days = int(np.count_nonzero(np.diff(day_of_bar))) + 1 if len(day_of_bar) else 0
    unknown: dict[str, str] = {}
    metrics = _trade_metrics(result, unknown)
    metrics.update(_equity_metrics(equity, position, day_of_bar, initial_capital, unknown))
    metrics["unknown"] = unknown
    return {
        "metrics": metrics,
        "equity_curve": equity_curve(close_ts, equity, start=start, initial_capital=initial_capital),
        "classification": classify(metrics, days=days, initial_capital=initial_capital, thresholds=thresholds),
        "days": days,
    }


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _ratio(value: Decimal | float) -> str:
    return str(Decimal(repr(value) if isinstance(value, float) else value).quantize(RATIO))


def _trade_sums(result: EngineResult) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, int, int]:
    """(net, fees, slippage, won, lost, trades, winners) of the result's trades, exact. A kernel run's
    from its integer columns (Columns.money: the same values, without building a Decimal a trade);
    otherwise from the trades, with exact decimal sums over lists (sum over a list runs in C; a
    generator costs a frame a trade)."""
    columns = result.columns
    money = columns.money() if columns is not None else None
    if money is not None:
        k, pnl, fee, slip = money

        def usd(units: Any) -> Decimal:
            return Decimal(int(units)).scaleb(-k)

        return (
            usd(pnl.sum()),
            usd(fee.sum()),
            usd(slip.sum()),
            usd(pnl[pnl > 0].sum()),
            -usd(pnl[pnl < 0].sum()),
            len(pnl),
            int(np.count_nonzero(pnl > 0)),
        )
    trades = result.trades
    pnls = [t.pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    return (
        sum(pnls, Decimal(0)),
        sum([t.fees for t in trades], Decimal(0)),
        sum([t.slippage for t in trades], Decimal(0)),
        sum(wins, Decimal(0)),
        -sum([p for p in pnls if p < 0], Decimal(0)),
        len(pnls),
        len(wins),
    )


def _trade_metrics(result: EngineResult, unknown: dict[str, str]) -> dict[str, Any]:
    net, fees, slippage, won, lost, n, winners = _trade_sums(result)
    out: dict[str, Any] = {
        "net_pnl": _money(net),
        "gross_pnl": _money(net + fees),
        "fees": _money(fees),
        "slippage": _money(slippage),
        "trades": n,
        "win_rate": None,
        "profit_factor": None,
        "expectancy": None,
    }
    if n == 0:
        for name in ("win_rate", "profit_factor", "expectancy"):
            unknown[name] = "no trades in the window"
        return out
    out["win_rate"] = _ratio(Decimal(winners) / n)
    out["expectancy"] = _money(net / n)
    if lost == 0:
        unknown["profit_factor"] = "no losing trade, so there is no loss to divide by"
    else:
        out["profit_factor"] = _ratio(won / lost)
    return out


def _equity_metrics(
    equity: np.ndarray, position: np.ndarray, day_of_bar: np.ndarray, capital: Decimal, unknown: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(("max_drawdown", "max_drawdown_pct", "sharpe", "sortino", "exposure"))
    if len(equity) == 0:
        for name in out:
            unknown[name] = "no bars in the window"
        return out
    series = np.concatenate(([float(capital)], equity))
    peak = np.maximum.accumulate(series)
    fall = peak - series
    out["max_drawdown"] = _money(Decimal(repr(float(fall.max()))))
    # The capital is the first peak and it is > 0, so every peak is > 0.
    out["max_drawdown_pct"] = str(Decimal(repr(float((fall / peak).max() * 100))).quantize(CENT))
    out["exposure"] = _ratio(Decimal(int(np.count_nonzero(position))) / len(position))
    sharpe, sortino, why, why_sortino = _daily_ratios(equity, day_of_bar, float(capital))
    for name, value, reason in (("sharpe", sharpe, why), ("sortino", sortino, why_sortino or why)):
        if value is None:
            unknown[name] = reason
        else:
            out[name] = _ratio(value)
    return out


def daily_returns(equity: np.ndarray, day_of_bar: np.ndarray, capital: float) -> np.ndarray | None:
    """Each trading day's return (its last close against the previous day's, the first against the
    capital); None when the equity was at or below zero at a day's close (a return from there means
    nothing)."""
    last_of_day = np.append(np.flatnonzero(day_of_bar[1:] != day_of_bar[:-1]), len(day_of_bar) - 1)
    closes = equity[last_of_day]
    previous = np.concatenate(([capital], closes[:-1]))
    if np.any(previous <= 0):
        return None
    return closes / previous - 1.0


def _daily_ratios(
    equity: np.ndarray, day_of_bar: np.ndarray, capital: float
) -> tuple[float | None, float | None, str, str]:
    returns = daily_returns(equity, day_of_bar, capital)
    if returns is None:
        reason = "the equity fell to zero or below at a day's close, so daily returns are undefined"
        return None, None, reason, ""
    if len(returns) < 2:
        return None, None, f"{len(returns)} trading day, at least 2 are needed for daily returns to vary", ""
    std = float(returns.std(ddof=1))
    if std < ZERO_VARIANCE:
        return None, None, "the equity did not change from one trading day to the next", ""
    mean = float(returns.mean())
    scale = math.sqrt(TRADING_DAYS_PER_YEAR)
    sharpe = mean / std * scale
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside < ZERO_VARIANCE:
        return sharpe, None, "", "no losing trading day, so there is no downside deviation"
    return sharpe, mean / downside * scale, "", ""


def trade_dates(close_ts: np.ndarray) -> np.ndarray:
    """The CME trade date (as a date ordinal) of each epoch-second close, as
    apps.market.instruments.trade_date answers it. The trade date changes at 17:00 CT and Chicago's
    offset at 02:00 local, both whole UTC hours, so it is constant within a UTC hour: it is
    computed once per distinct hour (about 17,000 for a million one-minute bars), and remembered
    (_hour_trade_date: the runs of a matrix close their bars in the same hours)."""
    close_ts = np.asarray(close_ts, dtype=np.int64)
    if len(close_ts) == 0:
        return np.zeros(0, dtype=np.int64)
    hour = close_ts // 3600
    if np.all(hour[1:] >= hour[:-1]):  # closes in order (as summarize has checked): runs of one hour
        firsts = np.flatnonzero(np.concatenate(([True], hour[1:] != hour[:-1])))
        hours = hour[firsts]
        inverse = np.repeat(np.arange(len(firsts)), np.diff(np.append(firsts, len(hour))))
    else:
        hours, inverse = np.unique(hour, return_inverse=True)
    ordinals = np.fromiter(map(_hour_trade_date, hours.tolist()), dtype=np.int64, count=len(hours))
    return ordinals[inverse.reshape(-1)]


@functools.lru_cache(maxsize=1 << 17)  # about 15 years of hours; a few MB
def _hour_trade_date(hour: int) -> int:
    """The trade date's ordinal of the UTC hour `hour` (hours since the epoch)."""
    return trade_date(datetime.fromtimestamp(hour * 3600, UTC)).toordinal()


def _iso(epochs: np.ndarray) -> list[str]:
    """ISO 8601 UTC with a Z of each epoch second (datetime.isoformat's text, built by numpy)."""
    text = np.datetime_as_string(np.asarray(epochs, dtype=np.int64).astype("datetime64[s]"), unit="s")
    return [f"{t}Z" for t in text.tolist()]


def _first_of_each(values: np.ndarray, los: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each bucket i starting at los[i] (buckets in order, covering values[los[0]:]), the first
    index in it whose value equals target[i] (every bucket holds its target)."""
    sizes = np.diff(np.append(los, len(values)))
    hits = np.flatnonzero(values[los[0] :] == np.repeat(target, sizes)) + los[0]
    return hits[np.searchsorted(hits, los)]


def downsample_indices(values: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices (ascending) of at most `max_points` of `values` that keep the first, the last, and the
    lowest and highest of each of (max_points − 2) // 2 equal buckets of the points between (the
    first lowest and the first highest of a bucket, as argmin and argmax pick them; vectorised
    over the buckets: reduceat finds each bucket's extremes, then the first index holding them)."""
    n = len(values)
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    if n <= max_points:
        return np.arange(n)
    buckets = (max_points - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)  # interior points 1 .. n-2
    los = edges[:-1]
    interior = values[: n - 1]  # the buckets end at n - 1 (the last point is kept apart)
    lows = _first_of_each(interior, los, np.minimum.reduceat(interior[los[0] :], los - los[0]))
    highs = _first_of_each(interior, los, np.maximum.reduceat(interior[los[0] :], los - los[0]))
    keep = np.unique(np.concatenate(([0], lows, highs, [n - 1])))
    return keep.astype(np.int64)


def equity_curve(
    close_ts: np.ndarray,
    equity: np.ndarray,
    *,
    start: datetime,
    initial_capital: Decimal,
    max_points: int = MAX_CURVE_POINTS,
) -> list[dict[str, str]]:
    """The capital at `start`, then the equity at each bar's close, downsampled (extremes kept)."""
    ts = np.concatenate(([int(start.timestamp())], np.asarray(close_ts, dtype=np.int64)))
    values = np.concatenate(([float(initial_capital)], np.asarray(equity, dtype=np.float64)))
    keep = downsample_indices(values, max_points)
    return [{"ts": t, "equity": f"{v:.2f}"} for t, v in zip(_iso(ts[keep]), values[keep].tolist(), strict=True)]


def thresholds_resolve(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """settings.BACKTEST_CLASSIFICATION with `overrides` on top, checked and typed: counts as int,
    the others as Decimal. A loss can never be promotable, so the minimum profit factor is at
    least 1 and the minimum expectancy at least 0."""
    from django.conf import settings  # read here: the module stays importable without settings

    raw = {**getattr(settings, "BACKTEST_CLASSIFICATION", {}), **(overrides or {})}
    unknown_keys = sorted(set(raw) - set(THRESHOLD_KEYS))
    missing = [k for k in THRESHOLD_KEYS if k not in raw]
    if unknown_keys or missing:
        raise ValueError(f"classification thresholds: unknown {unknown_keys}, missing {missing}")
    out: dict[str, Any] = {}
    for key in ("min_trades", "min_trading_days"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"classification threshold {key} must be a whole number ≥ 0, not {value!r}")
        out[key] = value
    floors = {"min_profit_factor": Decimal(1), "min_expectancy": Decimal(0), "max_drawdown_pct": Decimal(0)}
    for key, floor in floors.items():
        try:
            value = Decimal(str(raw[key]))
        except InvalidOperation:
            raise ValueError(f"classification threshold {key} must be a number, not {raw[key]!r}") from None
        if not value.is_finite() or value < floor or (key == "max_drawdown_pct" and value == 0):
            relation = "above" if key == "max_drawdown_pct" else "at least"
            raise ValueError(f"classification threshold {key} must be {relation} {floor}, not {raw[key]!r}")
        out[key] = value
    return out


def _fmt_usd(value: Decimal) -> str:
    return f"{value:,.2f} USD"


def _reason(code: str, threshold: str, verdict: str, message: str) -> dict[str, str]:
    return {"code": code, "threshold": threshold, "verdict": verdict, "message": message}


def classify(
    metrics: Mapping[str, Any],
    *,
    days: int,
    initial_capital: Decimal,
    thresholds: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The verdict on a backtest's metrics (as `summarize` writes them) against the thresholds.

    Each threshold that fails is a reason: `code`, `threshold` (its settings key), `verdict` (the
    verdict that failure leads to on its own) and `message` (in words, with the figure and what is
    needed). The sample-size thresholds (min_trades, min_trading_days) lead to MARGINAL: there is
    too little evidence. The result thresholds (min_profit_factor, min_expectancy,
    max_drawdown_pct) lead to REJECTED: the evidence says no. A figure a threshold needs that
    could not be computed fails it (never a pass) as MARGINAL: there is no evidence either way.
    The verdict is the worst of the reasons; PROMOTABLE when there is none. Figures are compared
    as shown (rounded), so a message never contradicts the number it quotes.
    """
    limits = thresholds_resolve(thresholds)
    unknown = metrics.get("unknown") or {}
    reasons: list[dict[str, str]] = []

    trades = int(metrics["trades"])
    if trades < limits["min_trades"]:
        reasons.append(
            _reason("TOO_FEW_TRADES", "min_trades", MARGINAL, f"{trades} trades, {limits['min_trades']} needed")
        )
    if days < limits["min_trading_days"]:
        reasons.append(
            _reason(
                "TOO_FEW_TRADING_DAYS",
                "min_trading_days",
                MARGINAL,
                f"{days} trading days, {limits['min_trading_days']} needed",
            )
        )

    need_pf = limits["min_profit_factor"]
    if metrics.get("profit_factor") is None:
        why = unknown.get("profit_factor", "not computed")
        reasons.append(
            _reason(
                "PROFIT_FACTOR_UNKNOWN",
                "min_profit_factor",
                MARGINAL,
                f"the profit factor cannot be computed ({why}); at least {need_pf} needed",
            )
        )
    else:
        pf = Decimal(metrics["profit_factor"])
        if pf < need_pf:
            loss = " (the losing trades outweigh the winning ones)" if pf < 1 else ""
            reasons.append(
                _reason(
                    "PROFIT_FACTOR_TOO_LOW",
                    "min_profit_factor",
                    REJECTED,
                    f"profit factor {pf}{loss}, at least {need_pf} needed",
                )
            )

    need_exp = limits["min_expectancy"]
    needed_exp = f"more than {_fmt_usd(need_exp)}" if need_exp == 0 else f"at least {_fmt_usd(need_exp)}"
    if metrics.get("expectancy") is None:
        why = unknown.get("expectancy", "not computed")
        reasons.append(
            _reason(
                "EXPECTANCY_UNKNOWN",
                "min_expectancy",
                MARGINAL,
                f"the expectancy cannot be computed ({why}); {needed_exp} per trade needed",
            )
        )
    else:
        expectancy = Decimal(metrics["expectancy"])
        if expectancy <= 0 or expectancy < need_exp:
            loss = " (the trades lose money on average)" if expectancy < 0 else ""
            reasons.append(
                _reason(
                    "EXPECTANCY_TOO_LOW",
                    "min_expectancy",
                    REJECTED,
                    f"expectancy {_fmt_usd(expectancy)} per trade{loss}, {needed_exp} needed",
                )
            )

    limit_pct = limits["max_drawdown_pct"]
    if metrics.get("max_drawdown") is None:
        why = unknown.get("max_drawdown", "not computed")
        reasons.append(
            _reason(
                "DRAWDOWN_UNKNOWN",
                "max_drawdown_pct",
                MARGINAL,
                f"the maximum drawdown cannot be computed ({why}); at most {limit_pct}% of the capital allowed",
            )
        )
    else:
        drawdown = Decimal(metrics["max_drawdown"])
        pct = (drawdown / Decimal(initial_capital) * 100).quantize(CENT)
        if pct > limit_pct:
            reasons.append(
                _reason(
                    "DRAWDOWN_TOO_DEEP",
                    "max_drawdown_pct",
                    REJECTED,
                    f"maximum drawdown {_fmt_usd(drawdown)}, {pct}% of the {_fmt_usd(Decimal(initial_capital))} "
                    f"capital; at most {limit_pct}% allowed",
                )
            )

    verdicts = {r["verdict"] for r in reasons}
    verdict = REJECTED if REJECTED in verdicts else MARGINAL if verdicts else PROMOTABLE
    return {
        "verdict": verdict,
        "reasons": reasons,
        "thresholds": {k: v if isinstance(v, int) else str(v) for k, v in limits.items()},
    }
