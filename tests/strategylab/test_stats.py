"""The lab's honesty statistics (apps/strategylab/stats.py): the deflated Sharpe ratio and the
probability of backtest overfitting against values worked by hand, pure noise coming out as luck, a
real edge coming out as skill, and the candidate's overfit warnings. Pure: no database."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from apps.strategylab import stats
from apps.strategylab.stats import (
    FEW_OOS_TRADES,
    FRAGILE_OPTIMUM,
    NOT_JUDGED,
    ONE_TRADE_CARRIES,
    OOS_DEGRADED,
    WarningThresholds,
    deflated_sharpe,
    overfit_warnings,
    pbo,
    sharpe,
)


def _phi(x: float) -> float:
    """The standard normal CDF through math.erfc, independent of statistics.NormalDist."""
    return 0.5 * math.erfc(-x / math.sqrt(2))


# --- the deflated Sharpe ratio, by hand -------------------------------------------------------------------


def _hand_returns() -> np.ndarray:
    """T = 250 daily returns with mean 0.001, skewness exactly 0 and kurtosis exactly 3:
    0.001 + d for the deviations d = 0 (130 days), ±0.01 (55 days each), ±0.02 (5 days each).

    Σd² = 110 × 0.01² + 10 × 0.02² = 0.011 + 0.004 = 0.015; Σd³ = 0 (symmetric) → skewness 0.
    m2 = 0.015 / 250 = 6e-5; m4 = (110 × 0.01⁴ + 10 × 0.02⁴) / 250 = (1.1e-6 + 1.6e-6) / 250 = 1.08e-8;
    kurtosis = m4 / m2² = 1.08e-8 / 3.6e-9 = 3.
    Sample std = √(0.015 / 249); SR̂ = 0.001 / √(0.015 / 249) = 0.1 × √(249 / 150) = 0.1 × √1.66
    = 0.12884098726725...
    """
    deviations = [0.0] * 130 + [0.01] * 55 + [-0.01] * 55 + [0.02] * 5 + [-0.02] * 5
    return 0.001 + np.array(deviations)


def test_the_hand_returns_have_the_moments_worked_by_hand() -> None:
    returns = _hand_returns()
    assert sharpe(returns) == pytest.approx(0.1 * math.sqrt(1.66), abs=1e-12)
    result = deflated_sharpe(returns=returns, trial_sharpes=[0.1])
    assert result.skewness == pytest.approx(0.0, abs=1e-9)
    assert result.kurtosis == pytest.approx(3.0, abs=1e-9)
    assert result.observations == 250


def test_deflated_sharpe_of_ten_trials_matches_the_value_worked_by_hand() -> None:
    # Trials: N = 10 Sharpe ratios [0.15, −0.15, 0.15, −0.15, 0, 0, 0, 0, 0, 0]: mean 0,
    # Σ(SR − mean)² = 4 × 0.0225 = 0.09, sample variance V = 0.09 / 9 = 0.01, √V = 0.1.
    #
    # SR0 = √V × ((1 − γ) Φ⁻¹(1 − 1/10) + γ Φ⁻¹(1 − 1/(10e))), γ = 0.5772156649015329
    #   Φ⁻¹(0.9)                          = 1.2815515655446004
    #   1 − 1/(10e) = 1 − 0.0367879441171 = 0.9632120558828557; Φ⁻¹(that) = 1.7892417645816279
    #   (1 − γ) × 1.2815515655446004 = 0.4227843350984671 × 1.2815515655446004 = 0.5418199265331737
    #   γ × 1.7892417645816279       = 0.5772156649015329 × 1.7892417645816279 = 1.0327783748125763
    #   sum = 1.5745983013457500;  SR0 = 0.1 × 1.57459830134575 = 0.157459830134575
    # Denominator: √(1 − γ̂3 SR̂ + (γ̂4 − 1)/4 SR̂²) = √(1 − 0 + (2/4) × 0.0166) = √1.0083 = 1.0041414243023739
    # z = (SR̂ − SR0) × √(T − 1) / denominator
    #   = (0.1288409872672513 − 0.157459830134575) × √249 / 1.0041414243023739
    #   = −0.0286188428673237 × 15.7797338380595 / 1.0041414243023739 = −0.4497351789996746
    # DSR = Φ(−0.4497351789996746) = 0.3264507010867316: the best of ten is more likely luck than not.
    assert _phi(1.2815515655446004) == pytest.approx(0.9, abs=1e-15)  # the quantiles above, checked
    assert _phi(1.7892417645816279) == pytest.approx(1 - 1 / (10 * math.e), abs=1e-15)

    trials = [0.15, -0.15, 0.15, -0.15, 0, 0, 0, 0, 0, 0]
    result = deflated_sharpe(returns=_hand_returns(), trial_sharpes=trials)

    assert result.trials == 10
    assert result.trial_sharpe_variance == pytest.approx(0.01, abs=1e-15)
    assert result.expected_max_sharpe == pytest.approx(0.157459830134575, abs=1e-12)
    assert result.probability == pytest.approx(0.3264507010867316, abs=1e-9)
    assert result.likely_luck is True
    assert result.reason is None


def test_a_single_trial_gives_the_probabilistic_sharpe_ratio_worked_by_hand() -> None:
    # N = 1 → SR0 = 0 (no selection among trials): the probabilistic Sharpe ratio against 0.
    # z = SR̂ × √249 / √1.0083 = 0.1288409872672513 × 15.7797338380595 / 1.0041414243023739
    #   = 2.02469138042235;  PSR = Φ(2.02469138042235) = 0.9785504678648882.
    result = deflated_sharpe(returns=_hand_returns(), trial_sharpes=[0.1288409872672513])

    assert result.expected_max_sharpe == 0.0
    assert result.trial_sharpe_variance is None
    assert result.probability == pytest.approx(0.9785504678648882, abs=1e-9)
    assert result.likely_luck is False
    # The same returns chosen out of ten trials are likely luck: the number of trials matters.
    assert deflated_sharpe(returns=_hand_returns(), trial_sharpes=[0.1] * 9 + [0.3]).likely_luck is True


def test_the_luck_threshold_is_an_argument() -> None:
    returns = _hand_returns()
    assert deflated_sharpe(returns=returns, trial_sharpes=[0.1], threshold=0.99).likely_luck is True
    assert deflated_sharpe(returns=returns, trial_sharpes=[0.1], threshold=0.97).likely_luck is False


def test_skewed_returns_with_fat_tails_lower_the_probability() -> None:
    # Same mean and standard deviation, but the deviation is one big loss day and many small gains:
    # negative skewness and high kurtosis widen the error of the Sharpe estimate.
    symmetric = _hand_returns()
    skewed = np.concatenate([np.full(249, 0.0015), [-0.12]])
    skewed = (skewed - skewed.mean()) / skewed.std(ddof=1) * symmetric.std(ddof=1) + symmetric.mean()
    normal = deflated_sharpe(returns=symmetric, trial_sharpes=[0.1])
    fat = deflated_sharpe(returns=skewed, trial_sharpes=[0.1])
    assert fat.sharpe == pytest.approx(normal.sharpe, rel=1e-9)
    assert fat.skewness < -10 and fat.kurtosis > 100
    assert fat.probability < normal.probability


# --- the deflated Sharpe ratio: noise and edge ------------------------------------------------------------


def _noise(seed: int, periods: int, trials: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.01, size=(periods, trials))


def test_the_best_of_a_hundred_noise_strategies_is_likely_luck() -> None:
    returns = _noise(11, 250, 100)
    trial_sharpes = [sharpe(returns[:, j]) for j in range(100)]
    best = int(np.argmax(trial_sharpes))

    result = deflated_sharpe(returns=returns[:, best], trial_sharpes=trial_sharpes)

    assert result.probability < 0.8
    assert result.likely_luck is True
    assert result.sharpe == pytest.approx(max(trial_sharpes))
    assert result.trials == 100
    # Taken alone (N = 1), the same best noise strategy would look significant: deflating for the
    # hundred trials is what exposes it.
    alone = deflated_sharpe(returns=returns[:, best], trial_sharpes=[result.sharpe])
    assert alone.probability > 0.95


def test_a_real_edge_among_noise_is_not_luck() -> None:
    returns = _noise(12, 250, 100)
    returns[:, 37] += 0.005  # a true drift of half a standard deviation a day
    trial_sharpes = [sharpe(returns[:, j]) for j in range(100)]
    best = int(np.argmax(trial_sharpes))

    result = deflated_sharpe(returns=returns[:, best], trial_sharpes=trial_sharpes)

    assert best == 37
    assert result.probability > 0.99
    assert result.likely_luck is False


# --- the deflated Sharpe ratio: what it cannot compute ----------------------------------------------------


@pytest.mark.parametrize(
    ("returns", "trial_sharpes", "words"),
    [
        ([0.01], [0.1, 0.2], "fewer than 2 days"),
        ([0.01, 0.01, 0.01], [0.1, 0.2], "do not vary"),
        ([0.01, float("nan"), 0.02], [0.1, 0.2], "not numbers"),
        ([0.01, 0.02, 0.0], [], "No trial"),
        ([0.01, 0.02, 0.0], [0.1, None, None], "Fewer than 2 trials"),
    ],
)
def test_an_uncomputable_deflated_sharpe_is_null_with_a_reason_and_counts_as_luck(
    returns: list[float], trial_sharpes: list[Any], words: str
) -> None:
    result = deflated_sharpe(returns=returns, trial_sharpes=trial_sharpes)
    assert result.probability is None
    assert words in result.reason
    assert result.likely_luck is True
    assert "_" not in result.reason


def test_trials_without_a_sharpe_still_count_as_trials() -> None:
    returns = _hand_returns()
    known = [0.15, -0.15, 0.15, -0.15, 0.0]
    with_unknown = deflated_sharpe(returns=returns, trial_sharpes=[*known, None, None, None, None, None])
    without = deflated_sharpe(returns=returns, trial_sharpes=known)
    assert with_unknown.trials == 10 and with_unknown.trials_without_sharpe == 5
    assert with_unknown.trial_sharpe_variance == without.trial_sharpe_variance
    # Ten trials set a higher bar than five with the same spread.
    assert with_unknown.expected_max_sharpe > without.expected_max_sharpe


def test_sharpe_is_mean_over_sample_std() -> None:
    assert sharpe([1.0, 3.0]) == pytest.approx(2.0 / math.sqrt(2.0))  # std of {1, 3} (n − 1) = √2
    assert sharpe([0.5]) is None
    assert sharpe([0.2, 0.2, 0.2]) is None
    assert sharpe([]) is None


# --- the probability of backtest overfitting, by hand -----------------------------------------------------

# T = 4 periods × N = 3 trials, S = 4 slices of one period each; 6 combinations of 2 in-sample slices.
HAND_MATRIX = [
    #  A   B  C
    [3, -1, 1],  # period 0
    [1, -2, 2],  # period 1
    [-1, 2, 0],  # period 2
    [-2, 3, 3],  # period 3
]
# The Sharpe ratio of two figures x, y is ((x + y)/2) / (|x − y|/√2) = (x + y) / (√2 |x − y|); the √2 is
# common to all, so the comparisons below use k = (x + y) / |x − y|.
#
#  in-sample  k: A      B      C   winner | out-of-sample  k: A     B     C   winner's rank ω̄ = r/4  λ = ln(ω̄/(1−ω̄))
#  {0,1}   4/2=2  −3/1=−3  3/1=3   C      | {2,3}  −3/1=−3   5/1=5  3/3=1   C: 2 of 3  0.50       ln 1 = 0
#  {0,2}   2/4=.5   1/3    1/1=1   C      | {1,3}  −1/3     1/5    5/1=5   C: 3       0.75       ln 3 = 1.0986
#  {0,3}   1/5=.2   2/4=.5 4/2=2   C      | {1,2}   0/2=0   0/4=0  2/2=1   C: 3       0.75       ln 3
#  {1,2}   0/2=0    0/4=0  2/2=1   C      | {0,3}   1/5     2/4    4/2=2   C: 3       0.75       ln 3
#  {1,3}  −1/3      1/5    5/1=5   C      | {0,2}   2/4     1/3    1/1=1   C: 3       0.75       ln 3
#  {2,3}  −3/1=−3   5/1=5  3/3=1   B      | {0,1}   4/2=2  −3/1=−3 3/1=3   B: 1       0.25       ln 1/3 = −1.0986
#
# λ ≤ 0 in 2 of 6 combinations ({0,1}: λ = 0; {2,3}: λ < 0) → PBO = 2/6 = 1/3.
# Logits sorted: −1.0986, 0, 1.0986 × 4 → median = 1.0986 (= ln 3).


def test_pbo_of_a_tiny_matrix_matches_the_six_combinations_worked_by_hand() -> None:
    result = pbo(np.array(HAND_MATRIX, dtype=float), slices=4)

    ln3 = math.log(3)
    assert result.combinations == 6
    assert result.slices == 4 and result.trials == 3 and result.periods == 4 and result.periods_used == 4
    assert result.logits == pytest.approx([0.0, ln3, ln3, ln3, ln3, -ln3], abs=1e-12)
    assert result.probability == pytest.approx(1 / 3, abs=1e-12)
    assert result.median_logit == pytest.approx(ln3, abs=1e-12)
    assert result.reason is None


def test_pbo_gives_tied_trials_the_average_of_their_ranks() -> None:
    # T = 4, N = 3, S = 2: slice 0 = periods 0–1, slice 1 = periods 2–3; 2 combinations.
    #        A     B     C
    # slice 0: [2,3] [0,1] [1,2] → Sharpe 2.5/0.7071, 0.5/0.7071, 1.5/0.7071 (std of two figures 1 apart)
    # slice 1: [0,1] [0,1] [2,3] → Sharpe 0.5/0.7071, 0.5/0.7071, 2.5/0.7071
    # In-sample slice 0: A wins. Out of sample A ties with B at the bottom: ranks 1 and 2 → 1.5 each;
    #   ω̄ = 1.5/4 = 0.375, λ = ln(0.375/0.625) = ln 0.6 = −0.5108.
    # In-sample slice 1: C wins. Out of sample C is 2nd of 3: ω̄ = 2/4, λ = 0.
    # PBO = 2/2 = 1.
    matrix = np.array([[2, 0, 1], [3, 1, 2], [0, 0, 2], [1, 1, 3]], dtype=float)

    result = pbo(matrix, slices=2)

    assert result.logits == pytest.approx([math.log(0.6), 0.0], abs=1e-12)
    assert result.probability == 1.0


def test_pbo_leaves_out_the_oldest_periods_that_do_not_fill_a_slice() -> None:
    garbage = [[1e6, -1e6, 5e5]]  # the oldest period: with T = 5 and S = 4 it is left out
    result = pbo(np.array(garbage + HAND_MATRIX, dtype=float), slices=4)
    assert result.periods == 5 and result.periods_used == 4
    assert result.probability == pytest.approx(1 / 3, abs=1e-12)


def test_pbo_in_chunks_equals_pbo_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    matrix = _noise(5, 120, 9)
    whole = pbo(matrix, slices=8)
    monkeypatch.setattr(stats, "_PBO_CHUNK_CELLS", 20)  # 2 combinations per chunk
    chunked = pbo(matrix, slices=8)
    assert chunked.logits == whole.logits
    assert chunked.probability == whole.probability


# --- the probability of backtest overfitting: noise and edge ----------------------------------------------


def test_pbo_of_pure_noise_is_about_one_half() -> None:
    # The in-sample winner among noise trials ranks anywhere out of sample: PBO ≈ 0.5. One seed
    # spreads widely (about 0.1–0.8 over seeds), so the mean over 20 seeded searches is checked.
    results = [pbo(_noise(100 + seed, 480, 50), slices=8) for seed in range(20)]
    mean = sum(r.probability for r in results) / len(results)
    assert 0.38 <= mean <= 0.62
    assert all(r.combinations == 70 and len(r.logits) == 70 for r in results)
    # With the default 16 slices too (12,870 combinations).
    default = pbo(_noise(7, 1000, 50))
    assert default.combinations == 12870 and default.slices == 16
    assert 0.2 <= default.probability <= 0.8


def test_pbo_of_a_real_edge_among_noise_is_low() -> None:
    returns = _noise(13, 1000, 50)
    returns[:, 21] += 0.005
    result = pbo(returns)
    assert result.probability < 0.05
    assert result.median_logit > 2  # the in-sample winner is near the top out of sample


# --- the probability of backtest overfitting: what it cannot compute --------------------------------------


def test_pbo_without_enough_periods_or_trials_is_null_with_a_reason() -> None:
    too_short = pbo(_noise(1, 10, 5), slices=16)
    assert too_short.probability is None and too_short.logits == []
    assert "10 periods" in too_short.reason and "16 blocks" in too_short.reason

    one_trial = pbo(_noise(1, 100, 1))
    assert one_trial.probability is None and "at least 2 trials" in one_trial.reason

    not_numbers = _noise(1, 100, 3)
    not_numbers[50, 1] = np.nan
    assert "not numbers" in pbo(not_numbers).reason

    assert "single period" in pbo(_noise(1, 2, 3), slices=2).reason


@pytest.mark.parametrize("slices", [0, 3, 15])
def test_pbo_needs_an_even_number_of_slices(slices: int) -> None:
    with pytest.raises(ValueError, match="even"):
        pbo(_noise(1, 100, 3), slices=slices)


# --- overfit warnings -------------------------------------------------------------------------------------


def _metrics(**figures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"expectancy": "40.00", "net_pnl": "2400.00", "trades": 60, "unknown": {}}
    base.update(figures)
    return base


def _spread_trades(net: float, count: int = 60) -> list[str]:
    """`count` trades summing to `net`, none more than a few % of it."""
    wins = [str(net / count * 2)] * (count // 2)
    losses = [str(0.0)] * (count - count // 2)
    return wins + losses


CLEAN: dict[str, Any] = {
    "in_sample": _metrics(expectancy="50.00", net_pnl="5000.00", trades=100),
    "out_of_sample": _metrics(),
    "objective": "expectancy",
    "neighbours": ["45.00", "42.50", "48.00", "38.00"],
    "trades_pnl": _spread_trades(2400.0),
}


def _warnings(**changes: Any) -> list[stats.Warning]:
    return overfit_warnings(**{**CLEAN, **changes})


def _codes(warnings: list[stats.Warning]) -> list[str]:
    return [w.code for w in warnings]


def test_a_clean_candidate_has_no_warning() -> None:
    assert _warnings() == []


def test_oos_degraded_when_the_out_of_sample_objective_falls_far_below_in_sample() -> None:
    warnings = _warnings(out_of_sample=_metrics(expectancy="10.00"))
    assert _codes(warnings) == [OOS_DEGRADED]
    assert warnings[0].figures["in_sample"] == 50.0 and warnings[0].figures["out_of_sample"] == 10.0
    assert "Out of sample" in warnings[0].message and "10" in warnings[0].message
    # At exactly the fraction (0.5 × 50 = 25) it does not fire; just below it does.
    assert OOS_DEGRADED not in _codes(_warnings(out_of_sample=_metrics(expectancy="25.00")))
    assert OOS_DEGRADED in _codes(_warnings(out_of_sample=_metrics(expectancy="24.99")))


def test_oos_degraded_when_the_sign_flips() -> None:
    flipped = _warnings(out_of_sample=_metrics(expectancy="-3.00"), thresholds=WarningThresholds(oos_min_fraction=0.01))
    assert _codes(flipped) == [OOS_DEGRADED]
    assert "from a gain to a loss" in flipped[0].message


def test_oos_degraded_for_a_drawdown_objective_when_the_drawdown_grows() -> None:
    base = {"in_sample": _metrics(max_drawdown="1000.00"), "objective": "max_drawdown", "neighbours": ["1100", "900"]}
    assert _codes(_warnings(**base, out_of_sample=_metrics(max_drawdown="2500.00"))) == [OOS_DEGRADED]
    assert _warnings(**base, out_of_sample=_metrics(max_drawdown="1500.00")) == []


def test_few_oos_trades() -> None:
    warnings = _warnings(out_of_sample=_metrics(trades=12, net_pnl="480.00"), trades_pnl=_spread_trades(480.0, 12))
    assert _codes(warnings) == [FEW_OOS_TRADES]
    assert warnings[0].figures == {"trades": 12, "min_trades": 30}
    assert _warnings(out_of_sample=_metrics(trades=30)) == []


def test_fragile_optimum_when_the_neighbours_median_is_far_below() -> None:
    warnings = _warnings(neighbours=["5.00", "3.00", "-2.00", "8.00", None])
    assert _codes(warnings) == [FRAGILE_OPTIMUM]
    figures = warnings[0].figures
    assert figures["neighbours_median"] == 4.0 and figures["neighbours"] == 5
    assert figures["neighbours_without_figure"] == 1


def test_fragile_optimum_when_most_neighbours_lose() -> None:
    # Profit factor 1.6 in sample; the neighbours' median 0.965 is above half of it (0.8), but 3 of 4
    # neighbours lose (below 1).
    warnings = _warnings(
        in_sample=_metrics(profit_factor="1.60"),
        out_of_sample=_metrics(profit_factor="1.40"),
        objective="profit_factor",
        neighbours=["0.95", "0.90", "0.98", "1.50"],
    )
    assert _codes(warnings) == [FRAGILE_OPTIMUM]
    assert warnings[0].figures["neighbours_losing"] == 3
    assert "3 of its 4 grid neighbours lose" in warnings[0].message


def test_one_trade_carries_when_without_it_there_is_no_profit() -> None:
    trades = ["1000.00"] + ["-20.00"] * 29 + ["10.00"] * 30  # net 1000 − 580 + 300 = 720
    warnings = _warnings(out_of_sample=_metrics(net_pnl="720.00"), trades_pnl=trades)
    assert _codes(warnings) == [ONE_TRADE_CARRIES]
    assert warnings[0].figures["largest_win"] == 1000.0
    assert warnings[0].figures["net_pnl_without_largest"] == pytest.approx(-280.0)


def test_one_trade_carries_when_it_is_most_of_the_profit() -> None:
    trades = ["600.00"] + ["10.00"] * 40 + ["0.00"] * 19  # net 1000, the largest 60 % of it
    warnings = _warnings(out_of_sample=_metrics(net_pnl="1000.00"), trades_pnl=trades)
    assert _codes(warnings) == [ONE_TRADE_CARRIES]
    assert warnings[0].figures["largest_share"] == pytest.approx(0.6)
    assert "60%" in warnings[0].message
    spread = ["400.00"] + ["10.00"] * 60  # net 1000, the largest 40 %
    assert _warnings(out_of_sample=_metrics(net_pnl="1000.00", trades=61), trades_pnl=spread) == []


def test_a_null_figure_is_not_judged_and_names_it() -> None:
    no_trades = {
        "expectancy": None,
        "net_pnl": "0.00",
        "trades": 0,
        "unknown": {"expectancy": "no trades in the window"},
    }
    warnings = _warnings(out_of_sample=no_trades, trades_pnl=[])
    assert _codes(warnings) == [NOT_JUDGED, FEW_OOS_TRADES]
    assert warnings[0].figures == {
        "check": OOS_DEGRADED,
        "figure": "expectancy",
        "window": "out-of-sample",
        "reason": "no trades in the window",
    }
    assert "Cannot judge" in warnings[0].message and "no trades in the window" in warnings[0].message


@pytest.mark.parametrize(
    ("changes", "check", "figure"),
    [
        ({"in_sample": _metrics(expectancy=None)}, OOS_DEGRADED, "expectancy"),
        ({"out_of_sample": _metrics(trades=None)}, FEW_OOS_TRADES, "trades"),
        ({"neighbours": []}, FRAGILE_OPTIMUM, "expectancy"),
        ({"neighbours": [None, None]}, FRAGILE_OPTIMUM, "expectancy"),
        ({"out_of_sample": _metrics(net_pnl=None)}, ONE_TRADE_CARRIES, "net_pnl"),
        ({"trades_pnl": []}, ONE_TRADE_CARRIES, "trades"),
        ({"out_of_sample": _metrics(expectancy="NaN")}, OOS_DEGRADED, "expectancy"),
    ],
)
def test_every_check_whose_figure_is_unknown_says_so(changes: dict[str, Any], check: str, figure: str) -> None:
    judged = [w for w in _warnings(**changes) if w.code == NOT_JUDGED]
    assert [(w.figures["check"], w.figures["figure"]) for w in judged][:1] == [(check, figure)]


def test_messages_are_for_operators() -> None:
    everything = _warnings(
        in_sample=_metrics(expectancy="50.00", net_pnl=None),
        out_of_sample=_metrics(expectancy="-5.00", net_pnl=None, trades=3),
        neighbours=["-1.00", "-2.00"],
    )
    assert set(_codes(everything)) == {OOS_DEGRADED, FEW_OOS_TRADES, FRAGILE_OPTIMUM, NOT_JUDGED}
    for warning in everything:
        assert "_" not in warning.message, warning.message  # no raw field names
        assert warning.message.endswith(".")
    assert all(isinstance(w.to_dict()["figures"], dict) for w in everything)


def test_thresholds_come_from_settings() -> None:
    thresholds = WarningThresholds.from_mapping({"min_oos_trades": "80", "oos_min_fraction": "0.7"})
    assert thresholds.min_oos_trades == 80 and thresholds.oos_min_fraction == 0.7
    assert WarningThresholds.from_mapping(None) == WarningThresholds()
    with pytest.raises(ValueError, match="unknown"):
        WarningThresholds.from_mapping({"min_trades": 10})
    with pytest.raises(ValueError, match="oos_min_fraction"):
        WarningThresholds(oos_min_fraction=0)
    assert _codes(_warnings(thresholds=thresholds)) == [FEW_OOS_TRADES]


def _pbo_by_brute_force(matrix: np.ndarray, slices: int) -> list[float]:
    """CSCV written out one combination at a time from the rows, for comparison."""
    blocks = np.split(matrix[len(matrix) % slices :], slices)
    logits = []
    for chosen in itertools.combinations(range(slices), slices // 2):
        in_rows = np.concatenate([blocks[b] for b in chosen])
        out_rows = np.concatenate([blocks[b] for b in range(slices) if b not in chosen])
        best = int(np.argmax([sharpe(in_rows[:, j]) for j in range(matrix.shape[1])]))
        out = [sharpe(out_rows[:, j]) for j in range(matrix.shape[1])]
        rank = sum(1 for v in out if v < out[best]) + (sum(1 for v in out if v == out[best]) + 1) / 2
        logits.append(math.log(rank / (matrix.shape[1] + 1) / (1 - rank / (matrix.shape[1] + 1))))
    return logits


def test_pbo_matches_the_combinations_worked_one_by_one() -> None:
    matrix = _noise(21, 62, 6)  # 62 periods in 6 slices: the oldest 2 are left out
    assert pbo(matrix, slices=6).logits == pytest.approx(_pbo_by_brute_force(matrix, 6), abs=1e-12)


def test_trials_alike_out_of_sample_tie_exactly() -> None:
    # Parameter sets that differ only on some days trade alike on the others. Trial 1 copies trial 0
    # except in slice 0, where it does better, so it wins whenever slice 0 is in sample; out of
    # sample (slices 1–3) it is trial 0 to the last figure, so the two must share their ranks.
    matrix = _noise(22, 40, 4) + 0.001
    matrix[:, 1] = matrix[:, 0]
    matrix[:10, 1] += np.linspace(0.003, 0.013, 10)
    result = pbo(matrix, slices=4)
    assert result.logits == pytest.approx(_pbo_by_brute_force(matrix, 4), abs=1e-12)
    ranks = {round(1 / (1 + math.exp(-value)) * 5, 9) for value in result.logits[:3]}  # slice 0 in sample
    assert all(rank % 1 == 0.5 for rank in ranks)  # average ranks of a tie: k + 0.5
