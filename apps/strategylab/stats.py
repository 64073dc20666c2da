"""How likely a strategy lab's winner is luck, and the warnings a candidate carries (SPEC §10,
issue 11). Pure: numpy and the standard library, no database, no Django, no clock; every result
carries the inputs it was computed from so the experiment page can show them.

- `sharpe(returns)`: the per-period Sharpe ratio, mean / sample standard deviation (n − 1).
- `deflated_sharpe(returns=, trial_sharpes=)`: the deflated Sharpe ratio of the best candidate
  given how many trials the search made (Bailey and López de Prado, "The Deflated Sharpe Ratio",
  2014): the probability that its true Sharpe ratio is above the best one that pure luck would
  have produced over that many trials.
- `pbo(performance, slices=)`: the probability of backtest overfitting by combinatorially
  symmetric cross-validation (Bailey, Borwein, López de Prado and Zhu, "The Probability of
  Backtest Overfitting", 2015): how often the trial that is best in sample ranks in the bottom
  half out of sample.
- `overfit_warnings(...)`: the candidate's warnings (out-of-sample degradation, too few
  out-of-sample trades, a fragile optimum, a result carried by one trade), and `NOT_JUDGED` for
  each check whose figure is unknown: an unknown never passes silently.

When a figure cannot be computed, `deflated_sharpe` and `pbo` still return their result (never
None) with `probability` None and `reason` saying why in operator words, and the inputs that are
known filled in; never a made-up 0. A deflated Sharpe ratio that cannot be computed is reported as
`likely_luck` True: without the figure nothing shows the winner is more than luck (fail closed).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

EULER_GAMMA = 0.5772156649015329  # the Euler–Mascheroni constant γ
_NORMAL = statistics.NormalDist()
# A sample variance at or below this share of the mean square counts as zero: the series is
# constant and whatever variance is left is floating-point rounding (a Sharpe ratio over it would
# only measure that rounding).
_RELATIVE_ZERO_VARIANCE = 1e-12
# PBO works the combinations in chunks of about this many (combination, trial) cells, so a
# 10,000-trial search does not hold 12,870 × 10,000 figures at once.
_PBO_CHUNK_CELLS = 1_000_000


# --- the Sharpe ratio ------------------------------------------------------------------------------


def sharpe(returns: Sequence[float] | np.ndarray) -> float | None:
    """Mean / sample standard deviation (ddof = 1) of the per-period returns, not annualised.
    None with fewer than 2 observations, a value that is not a finite number, or returns that do
    not vary (zero standard deviation)."""
    values = np.asarray(returns, dtype=float)
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        return None
    variance = float(np.var(values, ddof=1))
    if variance <= _RELATIVE_ZERO_VARIANCE * float(np.mean(values**2)) or variance == 0.0:
        return None
    return float(np.mean(values)) / math.sqrt(variance)


# --- the deflated Sharpe ratio -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio of the best candidate and what it was computed from.

    probability: the DSR, 0–1: the probability that the candidate's true per-period Sharpe ratio
        is above `expected_max_sharpe`; None when it cannot be computed (see `reason`).
    sharpe: the candidate's per-period Sharpe ratio (SR̂, not annualised).
    expected_max_sharpe: SR0, the highest Sharpe ratio expected from `trials` trials of no skill.
    trials: N, every trial of the search (trials without a Sharpe ratio included).
    trials_without_sharpe: the trials whose Sharpe ratio is unknown (no trades, flat returns).
    observations: T, the number of per-period returns of the candidate.
    skewness, kurtosis: of the candidate's returns (population moments; kurtosis not excess,
        3 for a normal distribution).
    trial_sharpe_variance: V[SR_n], the sample variance (n − 1) of the known trial Sharpe ratios;
        None with a single trial (SR0 is then 0: the plain probabilistic Sharpe ratio).
    threshold: the probability below which the winner is called likely luck.
    likely_luck: probability < threshold, or the probability is unknown.
    reason: why the probability is None, in operator words; None when it was computed.
    """

    probability: float | None
    sharpe: float | None
    expected_max_sharpe: float | None
    trials: int
    observations: int
    skewness: float | None
    kurtosis: float | None
    trial_sharpe_variance: float | None
    likely_luck: bool
    reason: str | None
    threshold: float
    trials_without_sharpe: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def expected_max_sharpe(*, trials: int, variance: float) -> float:
    """SR0 = √V · ((1 − γ) · Φ⁻¹(1 − 1/N) + γ · Φ⁻¹(1 − 1/(N·e))): the expected maximum of N
    independent Sharpe ratio estimates of zero true Sharpe whose variance across trials is V
    (Bailey and López de Prado 2014, eq. 2, after the false strategy theorem). N = 1 → 0."""
    if trials < 1:
        raise ValueError("trials must be at least 1")
    if variance < 0:
        raise ValueError("variance must not be negative")
    if trials == 1:
        return 0.0
    n = float(trials)
    return math.sqrt(variance) * (
        (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n) + EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (n * math.e))
    )


def _moments(values: np.ndarray) -> tuple[float, float]:
    """Skewness m3 / m2^1.5 and (non-excess) kurtosis m4 / m2² from the population central moments,
    as in the paper."""
    deviations = values - values.mean()
    m2 = float(np.mean(deviations**2))
    m3 = float(np.mean(deviations**3))
    m4 = float(np.mean(deviations**4))
    return m3 / m2**1.5, m4 / m2**2


def deflated_sharpe(
    *,
    returns: Sequence[float] | np.ndarray,
    trial_sharpes: Sequence[float | None] | np.ndarray,
    threshold: float = 0.95,
) -> DeflatedSharpe:
    """The deflated Sharpe ratio (Bailey and López de Prado 2014) of the best candidate.

    returns: the candidate's per-period returns (the lab passes daily PnL / capital).
    trial_sharpes: the per-period Sharpe ratio of every trial of the search, the best included; a
        trial whose Sharpe ratio is unknown (None or not finite) still counts in N (the search made
        it; counting it raises SR0, the cautious side) but not in the variance.

        SR0 = √V[SR_n] · ((1 − γ) · Φ⁻¹(1 − 1/N) + γ · Φ⁻¹(1 − 1/(N·e)))
        DSR = Φ( (SR̂ − SR0) · √(T − 1) / √(1 − γ̂3 · SR̂ + (γ̂4 − 1)/4 · SR̂²) )

    with γ the Euler–Mascheroni constant, SR̂ = `sharpe(returns)`, γ̂3 and γ̂4 the skewness and
    (non-excess) kurtosis of the returns, T their number. With N = 1, SR0 = 0 and the DSR is the
    probabilistic Sharpe ratio against 0. Never returns None: a figure that cannot be computed
    gives probability None with the reason (and likely_luck True).
    """
    if not 0 < threshold < 1:
        raise ValueError("threshold must be between 0 and 1")
    values = np.asarray(returns, dtype=float).ravel()
    trial_values = [_finite(value) for value in trial_sharpes]
    known_trials = [value for value in trial_values if value is not None]
    trials = len(trial_values)
    result = {
        "probability": None,
        "sharpe": None,
        "expected_max_sharpe": None,
        "trials": trials,
        "trials_without_sharpe": trials - len(known_trials),
        "observations": int(values.size),
        "skewness": None,
        "kurtosis": None,
        "trial_sharpe_variance": None,
        "likely_luck": True,
        "threshold": threshold,
    }

    def unknown(reason: str) -> DeflatedSharpe:
        return DeflatedSharpe(**result, reason=reason)

    if not np.all(np.isfinite(values)):
        return unknown("Some of the candidate's daily returns are not numbers, so its Sharpe ratio is unknown.")
    if values.size < 2:
        return unknown("The candidate has fewer than 2 days of returns: a Sharpe ratio needs at least 2.")
    result["sharpe"] = candidate = sharpe(values)
    if candidate is None:
        return unknown("The candidate's returns do not vary from day to day, so it has no Sharpe ratio.")
    result["skewness"], result["kurtosis"] = skewness, kurtosis = _moments(values)
    if trials == 0:
        return unknown("No trial Sharpe ratios were given, so the number of trials the search made is unknown.")
    if trials == 1:
        variance = 0.0
    else:
        if len(known_trials) < 2:
            return unknown(
                "Fewer than 2 trials of the search have a Sharpe ratio, so how widely the trials vary "
                "(which sets the bar luck alone would reach) is unknown."
            )
        variance = float(np.var(known_trials, ddof=1))
        result["trial_sharpe_variance"] = variance
    result["expected_max_sharpe"] = bar = expected_max_sharpe(trials=trials, variance=variance)
    spread = 1 - skewness * candidate + (kurtosis - 1) / 4 * candidate**2
    if not spread > 0:
        return unknown(
            "The candidate's returns are so skewed that the test's error estimate breaks down "
            f"(1 − skewness × Sharpe + (kurtosis − 1)/4 × Sharpe² = {spread:.4g}, not above 0)."
        )
    z = (candidate - bar) * math.sqrt(values.size - 1) / math.sqrt(spread)
    result["probability"] = probability = _NORMAL.cdf(z)
    result["likely_luck"] = probability < threshold
    return DeflatedSharpe(**result, reason=None)


# --- the probability of backtest overfitting ----------------------------------------------------------


@dataclass(frozen=True)
class PBO:
    """The probability of backtest overfitting (CSCV) and what it was computed from.

    probability: the share of the combinations whose in-sample best trial ranks at or below the
        median out of sample (logit ≤ 0); None when it cannot be computed (see `reason`).
    combinations: C(S, S/2), the in-sample / out-of-sample splits tried.
    slices: S, the contiguous blocks the periods were cut into.
    trials: N, the columns of the performance matrix.
    periods: T, the rows given; periods_used: the rows used (the oldest T mod S rows are left out
        so every block has the same number of rows, as the paper's blocks do).
    logits: λ_c = ln(ω̄_c / (1 − ω̄_c)) for each combination, in the order of
        itertools.combinations(range(S), S/2) (the in-sample blocks).
    median_logit: the median of the logits.
    reason: why the probability is None, in operator words; None when it was computed.
    """

    probability: float | None
    combinations: int
    slices: int
    trials: int
    periods: int
    logits: list[float]
    median_logit: float | None
    reason: str | None
    periods_used: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _sharpe_for_ranking(total: np.ndarray, total_sq: np.ndarray, count: int) -> np.ndarray:
    """Per-trial Sharpe ratio (mean / sample std) from sums over `count` rows, for ranking only: a
    trial whose rows do not vary ranks as 0 when its mean is 0 (it earned nothing: a trial that
    did not trade) and as +inf / −inf for a riskless gain / loss."""
    mean = total / count
    variance = np.maximum(total_sq - total * mean, 0.0) / (count - 1)
    flat = variance <= _RELATIVE_ZERO_VARIANCE * (total_sq / count)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean / np.sqrt(variance)
    ratio[flat] = np.sign(mean[flat]) * np.inf
    ratio[flat & (mean == 0)] = 0.0
    return ratio


def pbo(performance: np.ndarray | Sequence[Sequence[float]], *, slices: int = 16) -> PBO:
    """The probability of backtest overfitting by combinatorially symmetric cross-validation
    (Bailey, Borwein, López de Prado and Zhu 2015).

    performance: T × N, one row per period (e.g. a trading day), one column per trial (e.g. its
    daily PnL). The rows are cut into S = `slices` contiguous blocks of equal size (the oldest
    T mod S rows are left out). For every choice of S/2 blocks as in-sample (the other S/2 are
    out-of-sample; C(S, S/2) combinations), the trial with the best in-sample Sharpe ratio (mean /
    sample std of its in-sample rows; the lowest column index on a tie) is ranked among all trials
    by out-of-sample Sharpe ratio: rank 1 the worst, N the best, tied trials sharing the average of
    the ranks they span (the paper's ranking; e.g. two trials tied for ranks 2 and 3 both get 2.5).
    ω̄ = rank / (N + 1), λ = ln(ω̄ / (1 − ω̄)), and PBO is the share of combinations with λ ≤ 0:
    the in-sample winner did no better than the median trial on the periods it was not picked on.

    Never returns None: with fewer periods than slices, fewer than 2 trials, fewer than 2 periods in
    each half or values that are not numbers, probability is None with the reason. `slices` must be
    an even number of at least 2 (a programming error otherwise: ValueError).
    """
    if slices < 2 or slices % 2:
        raise ValueError("slices must be an even number of at least 2")
    matrix = np.asarray(performance, dtype=float)
    if matrix.ndim != 2:
        raise ValueError("performance must be a T × N matrix (periods × trials)")
    periods, trials = matrix.shape
    combinations = math.comb(slices, slices // 2)

    def unknown(reason: str) -> PBO:
        return PBO(
            probability=None,
            combinations=combinations,
            slices=slices,
            trials=trials,
            periods=periods,
            logits=[],
            median_logit=None,
            reason=reason,
            periods_used=0,
        )

    if trials < 2:
        return unknown("Overfitting can only be measured across at least 2 trials; this search has fewer.")
    if periods < slices:
        return unknown(
            f"There are {periods} periods, fewer than the {slices} blocks the test cuts them into: "
            "use a longer window or fewer blocks."
        )
    rows = periods // slices
    if rows * slices // 2 < 2:
        return unknown(
            "Each half of the periods would hold a single period, too few for a Sharpe ratio: use a longer window."
        )
    if not np.all(np.isfinite(matrix)):
        return unknown("Some trials' figures are not numbers, so their Sharpe ratios cannot be ranked.")
    used = matrix[periods - rows * slices :].reshape(slices, rows, trials)
    block_sum = used.sum(axis=1)  # S × N
    block_sq = (used**2).sum(axis=1)
    half = slices // 2
    count = rows * half

    logits: list[float] = []
    size = max(1, _PBO_CHUNK_CELLS // (trials * half))
    for chosen in _chunks(itertools.combinations(range(slices), half), size):
        in_blocks = np.asarray(chosen)  # combinations × S/2
        out_blocks = np.asarray([[b for b in range(slices) if b not in c] for c in chosen])
        # Each half is summed from its own blocks in block order, the same additions for every
        # trial: two trials with the same figures on the out-of-sample periods get the same Sharpe
        # ratio to the last bit, so they tie as they should (a total minus the in-sample part would
        # round differently for each and break the tie at random).
        in_sample = _sharpe_for_ranking(block_sum[in_blocks].sum(axis=1), block_sq[in_blocks].sum(axis=1), count)
        out_sample = _sharpe_for_ranking(block_sum[out_blocks].sum(axis=1), block_sq[out_blocks].sum(axis=1), count)
        best = np.argmax(in_sample, axis=1)
        picked = out_sample[np.arange(len(chosen)), best][:, None]
        below = (out_sample < picked).sum(axis=1)
        tied = (out_sample == picked).sum(axis=1)  # the picked trial included
        rank = below + (tied + 1) / 2  # the average of ranks below+1 … below+tied
        relative = rank / (trials + 1)
        logits.extend(np.log(relative / (1 - relative)).tolist())
    return PBO(
        probability=sum(1 for value in logits if value <= 0) / len(logits),
        combinations=combinations,
        slices=slices,
        trials=trials,
        periods=periods,
        logits=logits,
        median_logit=float(np.median(logits)),
        reason=None,
        periods_used=rows * slices,
    )


def _chunks(items: Iterator[tuple[int, ...]], size: int) -> Iterator[list[tuple[int, ...]]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


# --- the candidate's warnings -------------------------------------------------------------------------

OOS_DEGRADED = "OOS_DEGRADED"
FEW_OOS_TRADES = "FEW_OOS_TRADES"
FRAGILE_OPTIMUM = "FRAGILE_OPTIMUM"
ONE_TRADE_CARRIES = "ONE_TRADE_CARRIES"
NOT_JUDGED = "NOT_JUDGED"

# Objectives where a lower figure is better (apps.backtests.selectors.OBJECTIVES "asc").
LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_pct"})
# The figure at which an objective neither wins nor loses: below it a neighbour "loses". Objectives
# without one (win rate, trades, drawdowns) are judged on the neighbours' median only.
BREAK_EVEN: dict[str, float] = {
    "expectancy": 0.0,
    "net_pnl": 0.0,
    "gross_pnl": 0.0,
    "sharpe": 0.0,
    "sortino": 0.0,
    "profit_factor": 1.0,
}
# The objectives in operator words (as the backtest pages name them).
OBJECTIVE_WORDS: dict[str, str] = {
    "expectancy": "expectancy (net per trade)",
    "net_pnl": "net PnL",
    "gross_pnl": "gross PnL",
    "profit_factor": "profit factor",
    "win_rate": "win rate",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "trades": "number of trades",
    "max_drawdown": "max drawdown",
    "max_drawdown_pct": "max drawdown (% of the peak)",
}


@dataclass(frozen=True)
class WarningThresholds:
    """When a candidate's warnings fire. The lab builds it from settings with `from_mapping`.

    oos_min_fraction (0.5): OOS_DEGRADED when the out-of-sample objective is below this fraction
        of the in-sample one (or turns non-positive from positive). For a lower-is-better objective
        (drawdowns): when the out-of-sample figure is above the in-sample one divided by it.
    min_oos_trades (30, as the backtests' min_trades): FEW_OOS_TRADES below this many
        out-of-sample trades.
    fragile_min_fraction (0.5): FRAGILE_OPTIMUM when the median in-sample objective of the
        candidate's grid neighbours is below this fraction of the candidate's (drawdowns: above
        the candidate's divided by it).
    fragile_losing_share (0.5): FRAGILE_OPTIMUM when more than this share of the neighbours with
        a figure lose (objective below its break-even: 0, or 1 for the profit factor).
    one_trade_max_share (0.5): ONE_TRADE_CARRIES when the largest winning out-of-sample trade is
        more than this share of the out-of-sample net PnL (or the net PnL without it is not above 0).
    """

    oos_min_fraction: float = 0.5
    min_oos_trades: int = 30
    fragile_min_fraction: float = 0.5
    fragile_losing_share: float = 0.5
    one_trade_max_share: float = 0.5

    def __post_init__(self) -> None:
        for name in ("oos_min_fraction", "fragile_min_fraction"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be above 0 and at most 1")
        for name in ("fragile_losing_share", "one_trade_max_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 0 and below 1")
        if self.min_oos_trades < 1:
            raise ValueError("min_oos_trades must be at least 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> WarningThresholds:
        """From a settings dict (numbers or decimal strings); unknown keys are an error."""
        values = dict(values or {})
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown overfit warning thresholds: {', '.join(unknown)}")
        return cls(**{k: (int(v) if names[k].type in ("int", int) else float(v)) for k, v in values.items()})


@dataclass(frozen=True)
class Warning:  # the name the lab's interface uses (shadows the builtin, which this module does not need)
    """One overfit warning: `code`, an operator-facing `message` (what, why, what to do) and the
    `figures` it was judged on."""

    code: str
    message: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "figures": dict(self.figures)}


OverfitWarning = Warning


def _finite(value: Any) -> float | None:
    """A metric figure (decimal string, Decimal, int or float) as a float; None when it is null
    or not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def _figure(metrics: Mapping[str, Any], key: str) -> tuple[float | None, str]:
    """The figure and, when it is unknown, why (the metrics' own `unknown` reason when given)."""
    value = _finite(metrics.get(key))
    if value is not None:
        return value, ""
    reason = (metrics.get("unknown") or {}).get(key)
    if reason:
        return None, str(reason)
    if metrics.get(key) is None:
        return None, "the backtest has no figure for it"
    return None, f"{metrics.get(key)!r} is not a number"


def _not_judged(check: str, what: str, figure: str, reason: str, window: str) -> Warning:
    return Warning(
        NOT_JUDGED,
        f"Cannot judge {what}: the {window} {OBJECTIVE_WORDS.get(figure, figure.replace('_', ' '))} is unknown "
        f"({reason}). Treat this candidate as unproven on this point until a backtest gives that figure.",
        {"check": check, "figure": figure, "window": window, "reason": reason},
    )


def _fmt(value: float) -> str:
    """1,234.5 / 700 / 0.9650 → "1,234.5", "700", "0.965": two decimals at most from 1 up, four
    significant digits below."""
    if abs(value) < 1:
        return f"{value:.4g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def overfit_warnings(
    *,
    in_sample: Mapping[str, Any],
    out_of_sample: Mapping[str, Any],
    objective: str,
    neighbours: Sequence[float | str | None],
    trades_pnl: Sequence[float | str | Decimal],
    thresholds: WarningThresholds = WarningThresholds(),  # noqa: B008 - frozen, so a shared default is safe
    lower_is_better: bool | None = None,
) -> list[Warning]:
    """The candidate's overfit warnings, in the order of the checks below; [] when it is clean.

    in_sample, out_of_sample: the candidate's metrics (apps/backtests/metrics.py: decimal strings
        or null, with `unknown` {figure: reason}) in its training and its test window.
    objective: the metric the search ranked by; lower_is_better defaults to the objective being a
        drawdown (LOWER_IS_BETTER).
    neighbours: the in-sample objective of each parameter set next to the candidate in the grid
        (the lab decides which are next to it); None for a neighbour without a figure.
    trades_pnl: the net PnL of each of the candidate's out-of-sample trades.

    Checks: OOS_DEGRADED (objective in and out of sample), FEW_OOS_TRADES (out-of-sample trades),
    FRAGILE_OPTIMUM (in-sample objective against the neighbours'), ONE_TRADE_CARRIES
    (out-of-sample net PnL against its largest winning trade). A check whose figure is unknown
    gives NOT_JUDGED naming the check and the figure instead, never silence.
    """
    lower = objective in LOWER_IS_BETTER if lower_is_better is None else lower_is_better
    words = OBJECTIVE_WORDS.get(objective, objective.replace("_", " "))
    warnings: list[Warning] = []

    # OOS_DEGRADED
    is_value, is_reason = _figure(in_sample, objective)
    oos_value, oos_reason = _figure(out_of_sample, objective)
    if is_value is None:
        warnings.append(
            _not_judged(OOS_DEGRADED, "how the result held out of sample", objective, is_reason, "in-sample")
        )
    elif oos_value is None:
        warnings.append(
            _not_judged(OOS_DEGRADED, "how the result held out of sample", objective, oos_reason, "out-of-sample")
        )
    else:
        fraction = thresholds.oos_min_fraction
        if lower:
            degraded = oos_value * fraction > is_value
            how = f"rose to {_fmt(oos_value)} from {_fmt(is_value)} in sample"
        else:
            # A flip from a gain to none (out of sample at or below 0) is always below the fraction.
            flipped = is_value > 0 and oos_value <= 0
            degraded = is_value > 0 and oos_value < fraction * is_value
            how = f"fell to {_fmt(oos_value)} from {_fmt(is_value)} in sample" + (
                (", from a gain to a loss" if oos_value < 0 else ", from a gain to nothing") if flipped else ""
            )
        if degraded:
            warnings.append(
                Warning(
                    OOS_DEGRADED,
                    f"Out of sample the {words} {how}: the parameters fit the bars they were tuned on far "
                    "better than new ones, a sign of overfitting. Judge the candidate on its out-of-sample "
                    "figures only, and test it on another window before paper trading it.",
                    {
                        "objective": objective,
                        "in_sample": is_value,
                        "out_of_sample": oos_value,
                        "min_fraction": fraction,
                        "lower_is_better": lower,
                    },
                )
            )

    # FEW_OOS_TRADES
    trades, trades_reason = _figure(out_of_sample, "trades")
    if trades is None:
        warnings.append(
            _not_judged(FEW_OOS_TRADES, "whether there were enough trades", "trades", trades_reason, "out-of-sample")
        )
    elif trades < thresholds.min_oos_trades:
        count = f"Only {int(trades)}" if trades else "No"
        warnings.append(
            Warning(
                FEW_OOS_TRADES,
                f"{count} trades out of sample, fewer than the {thresholds.min_oos_trades} needed to tell "
                "skill from chance. Lengthen the out-of-sample window or use more instruments before trusting "
                "this candidate.",
                {"trades": int(trades), "min_trades": thresholds.min_oos_trades},
            )
        )

    # FRAGILE_OPTIMUM
    known = [value for value in (_finite(v) for v in neighbours) if value is not None]
    if is_value is None:
        warnings.append(
            _not_judged(FRAGILE_OPTIMUM, "whether the optimum is fragile", objective, is_reason, "in-sample")
        )
    elif not known:
        reason = (
            "no parameter set next to it in the grid was tried"
            if not neighbours
            else "none of the parameter sets next to it in the grid has that figure"
        )
        warnings.append(
            Warning(
                NOT_JUDGED,
                f"Cannot judge whether the optimum is fragile: {reason}. A result that cannot be compared with "
                "nearby parameters may be a lone lucky point; widen the grid around it.",
                {"check": FRAGILE_OPTIMUM, "figure": objective, "window": "in-sample", "reason": reason},
            )
        )
    else:
        median = float(np.median(known))
        fraction = thresholds.fragile_min_fraction
        # Drawdowns: the neighbours' median is far above the candidate's; otherwise far below it.
        far = median * fraction > is_value if lower else is_value > 0 and median < fraction * is_value
        even = None if lower else BREAK_EVEN.get(objective)
        losing = sum(1 for value in known if even is not None and value < even)
        many_lose = even is not None and losing / len(known) > thresholds.fragile_losing_share
        if far or many_lose:
            why = []
            if far:
                why.append(f"the median {words} of its {len(known)} grid neighbours is {_fmt(median)}")
            if many_lose:
                why.append(f"{losing} of its {len(known)} grid neighbours lose")
            warnings.append(
                Warning(
                    FRAGILE_OPTIMUM,
                    f"A lone best point: its in-sample {words} is {_fmt(is_value)}, but " + " and ".join(why) + ". "
                    "A small change in the parameters loses the edge, so it is likely a fit to noise. Prefer a "
                    "candidate whose neighbours also do well.",
                    {
                        "objective": objective,
                        "in_sample": is_value,
                        "neighbours_median": median,
                        "neighbours": len(neighbours),
                        "neighbours_without_figure": len(neighbours) - len(known),
                        "neighbours_losing": losing if even is not None else None,
                        "min_fraction": fraction,
                        "max_losing_share": thresholds.fragile_losing_share,
                    },
                )
            )

    # ONE_TRADE_CARRIES
    net, net_reason = _figure(out_of_sample, "net_pnl")
    pnls = [value for value in (_finite(v) for v in trades_pnl) if value is not None]
    if net is None:
        warnings.append(
            _not_judged(
                ONE_TRADE_CARRIES, "whether one trade carries the result", "net_pnl", net_reason, "out-of-sample"
            )
        )
    elif net > 0 and (not pnls or len(pnls) != len(trades_pnl)):
        reason = "the trades' PnL was not given" if not pnls else "some trades have no PnL figure"
        warnings.append(
            Warning(
                NOT_JUDGED,
                f"Cannot judge whether one trade carries the result: {reason}. Check the out-of-sample trades "
                "list before trusting the net PnL.",
                {"check": ONE_TRADE_CARRIES, "figure": "trades", "window": "out-of-sample", "reason": reason},
            )
        )
    elif net > 0:
        largest = max(pnls)
        rest = net - largest
        share = largest / net
        # Without the trade the net PnL is not above 0 exactly when its share is 100 % or more, which
        # is always above one_trade_max_share (below 1).
        if largest > 0 and share > thresholds.one_trade_max_share:
            warnings.append(
                Warning(
                    ONE_TRADE_CARRIES,
                    f"One trade carries the result: the largest winning trade made {_fmt(largest)} of the "
                    f"{_fmt(net)} out-of-sample net PnL ({share:.0%}); without it the net PnL is {_fmt(rest)}. "
                    "One lucky trade is not an edge: look for a candidate whose gains are spread over many trades.",
                    {
                        "net_pnl": net,
                        "largest_win": largest,
                        "net_pnl_without_largest": rest,
                        "largest_share": share,
                        "max_share": thresholds.one_trade_max_share,
                    },
                )
            )
    return warnings
