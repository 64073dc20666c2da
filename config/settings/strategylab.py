"""The strategy lab (apps/strategylab): how big an experiment may be, how many of its best
in-sample parameter sets are re-run out of sample, and the AI review's length.

- LAB_MAX_RUNS: the most backtests an experiment's in-sample search may fan out (its own
  `max_runs` may be lower, never higher).
- LAB_TOP_K: how many of the best in-sample sets are re-run out of sample, unless the experiment
  names its own `top_k` (at most LAB_MAX_TOP_K).
- LAB_MAX_SPACE_VALUES: the most values one min/max/step range may expand to.
- LAB_DEFAULT_MAX_DAILY_LOSS: the daily loss limit (USD) of an experiment that names no risk
  limits (with one contract and the orders a day its strategy can send); the risk engine refuses
  to trade without limits, and a graduated bot keeps the experiment's.
- LAB_REVIEW_MAX_TOKENS: the length of the AI review asked for.
"""

from __future__ import annotations

from config.env import env

LAB_MAX_RUNS = env.int("LAB_MAX_RUNS", default=2000)
LAB_TOP_K = env.int("LAB_TOP_K", default=10)
LAB_MAX_TOP_K = env.int("LAB_MAX_TOP_K", default=100)
LAB_MAX_SPACE_VALUES = env.int("LAB_MAX_SPACE_VALUES", default=1000)
LAB_REVIEW_MAX_TOKENS = env.int("LAB_REVIEW_MAX_TOKENS", default=800)
LAB_DEFAULT_MAX_DAILY_LOSS = env.float("LAB_DEFAULT_MAX_DAILY_LOSS", default=500.0)
