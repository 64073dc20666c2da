"""The pure trading layer against the bots catalogue, and its place in the dependency order."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from apps.trading import risk
from apps.trading import strategies as trading
from apps.trading.catalogue import (
    REQUIRED_RISK_LIMITS,
    RISK_LIMITS,
    STARTER_PACK,
    STRATEGIES,
    missing_risk_limits,
    parameter_errors,
)
from tests.trading.helpers import SERIES, TICK

TRADING = Path(trading.__file__).resolve().parent


def test_every_catalogue_strategy_has_a_decide_function() -> None:
    assert set(trading.STRATEGIES) == set(STRATEGIES) == set(trading.PARAMETERS)


@pytest.mark.parametrize("key", sorted(STRATEGIES))
def test_it_takes_exactly_the_catalogue_parameters(key: str) -> None:
    spec = STRATEGIES[key]
    assert trading.PARAMETERS[key] == tuple(p.name for p in spec.parameters)
    defaults = spec.defaults()
    decision = trading.decide(key, SERIES, defaults, 0, tick_size=TICK)
    assert decision.strategy_key == key and decision.reason_codes[0] != "INSUFFICIENT_BARS"
    with pytest.raises(trading.StrategyInputError, match="INVALID_PARAMETERS"):
        trading.decide(key, SERIES, {**defaults, "leverage": 3}, 0, tick_size=TICK)
    for name in defaults:
        partial = {k: v for k, v in defaults.items() if k != name}
        with pytest.raises(trading.StrategyInputError, match="INVALID_PARAMETERS"):
            trading.decide(key, SERIES, partial, 0, tick_size=TICK)


@pytest.mark.parametrize("key", sorted(STRATEGIES))
def test_it_accepts_the_catalogue_range_edges(key: str) -> None:
    spec = STRATEGIES[key]
    for edge in ("minimum", "maximum"):
        params = spec.defaults()
        for p in spec.parameters:
            params[p.name] = p.coerce(getattr(p, edge))
        _, errors = parameter_errors(spec, params)
        if errors:  # a cross-parameter rule (fast < slow, exit < entry) the catalogue refuses too
            with pytest.raises(trading.StrategyInputError):
                trading.decide(key, SERIES, params, 0, tick_size=TICK)
        else:
            trading.decide(key, SERIES, params, 0, tick_size=TICK)


@pytest.mark.parametrize("bot", STARTER_PACK, ids=lambda b: b["name"])
def test_the_starter_pack_decides_and_its_limits_are_the_ones_risk_reads(bot: dict) -> None:
    decision = trading.decide(bot["strategy_key"], SERIES, bot["parameters"], 0, tick_size=TICK)
    assert decision.bars_required == trading.required_bars(bot["strategy_key"], bot["parameters"])
    assert set(REQUIRED_RISK_LIMITS) <= set(bot["risk_limits"]) <= set(RISK_LIMITS)


def test_risk_reads_only_catalogue_limit_keys() -> None:
    source = Path(risk.__file__).read_text()
    read = {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)}
    assert set(RISK_LIMITS) <= read
    assert {"max_position_contracts", "max_daily_loss", "max_orders_per_day"} == set(REQUIRED_RISK_LIMITS)
    assert set(RISK_LIMITS) - set(REQUIRED_RISK_LIMITS) == {"max_order_notional"}


def test_an_optional_limit_never_blocks_live_by_its_absence_but_a_bad_one_does() -> None:
    required = {"max_position_contracts": 1, "max_daily_loss": 100.0, "max_orders_per_day": 20}
    assert missing_risk_limits(required) == []
    assert missing_risk_limits({**required, "max_order_notional": 0}) == ["max_order_notional"]
    assert missing_risk_limits({"max_order_notional": 50000}) == list(REQUIRED_RISK_LIMITS)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", ["indicators.py", "strategies.py", "risk.py"])
def test_the_pure_modules_import_no_django_and_nothing_above_trading(module: str) -> None:
    imported = _imports(TRADING / module)
    assert not {n for n in imported if n == "django" or n.startswith("django.")}
    allowed_apps = ("apps.core", "apps.telemetry", "apps.integrations", "apps.market", "apps.trading")
    apps_imported = {n for n in imported if n.startswith("apps.")}
    assert {n for n in apps_imported if not n.startswith(allowed_apps)} == set(), (
        "dependency direction: core < telemetry < integrations < market < trading < …"
    )


def test_no_trading_module_imports_a_higher_app() -> None:
    higher = ("apps.backtests", "apps.bots", "apps.strategylab", "apps.runners")
    for path in TRADING.rglob("*.py"):
        assert not {n for n in _imports(path) if n.startswith(higher)}, path


def test_no_code_reaches_a_broker_except_through_the_risk_engine() -> None:
    """RELIABILITY R12: placing an order at a venue happens in one place, after the risk check and
    the persisted row (apps/trading/services.py); the broker clients define it, nothing else calls it."""
    import re
    from pathlib import Path

    apps_dir = Path(__file__).resolve().parents[2] / "apps"
    callers = sorted(
        str(path.relative_to(apps_dir))
        for path in apps_dir.rglob("*.py")
        if re.search(r"\.(place_order|place_bracket|flatten)\(", path.read_text())
        and not str(path.relative_to(apps_dir)).startswith("integrations/")
    )
    assert callers == ["trading/services.py"], callers
