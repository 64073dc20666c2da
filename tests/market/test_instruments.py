"""Instrument specs and provider symbols, including the Polygon/Massive front-month roll rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.market import instruments
from apps.market.exceptions import ProviderSymbolUnsupported
from apps.trading.catalogue import INSTRUMENTS as BOT_INSTRUMENTS
from apps.trading.catalogue import TIMEFRAMES as BOT_TIMEFRAMES
from tests.market.helpers import ct


def test_every_root_of_the_bots_catalogue_has_a_spec() -> None:
    assert set(BOT_INSTRUMENTS) == set(instruments.INSTRUMENTS)
    assert set(BOT_TIMEFRAMES) == set(instruments.TIMEFRAMES)


@pytest.mark.parametrize(
    ("root", "tick", "tick_value", "exchange"),
    [
        ("ES", "0.25", "12.50", "XCME"),
        ("MES", "0.25", "1.25", "XCME"),
        ("NQ", "0.25", "5.00", "XCME"),
        ("MNQ", "0.25", "0.50", "XCME"),
        ("M2K", "0.10", "0.50", "XCME"),
        ("MYM", "1", "0.50", "XCBT"),
        ("MGC", "0.10", "1.00", "XCEC"),
        ("MCL", "0.01", "1.00", "XNYM"),
    ],
)
def test_contract_specs(root: str, tick: str, tick_value: str, exchange: str) -> None:
    spec = instruments.INSTRUMENTS[root]
    assert spec.tick_size == Decimal(tick)
    assert spec.tick_value == Decimal(tick_value)
    assert spec.exchange == exchange
    assert spec.databento_symbol == f"{root}.c.0"


def test_equity_index_roots_trade_on_the_cme_globex_equity_calendar() -> None:
    for root in ("ES", "MES", "NQ", "MNQ", "M2K", "MYM"):
        assert instruments.INSTRUMENTS[root].calendar == "CME Globex Equity"


def test_the_front_quarterly_contract_rolls_8_days_before_the_third_friday() -> None:
    # December 2025: third Friday the 19th, roll Thursday the 11th (from the 17:00 CT open on the 10th).
    assert instruments.front_contract("ES", ct(2025, 12, 10, 16, 59)).polygon_ticker == "ESZ5"
    assert instruments.front_contract("ES", ct(2025, 12, 10, 17, 0)).polygon_ticker == "ESH6"
    assert instruments.front_contract("MES", ct(2025, 10, 1, 10, 0)).polygon_ticker == "MESZ5"
    contract = instruments.front_contract("NQ", ct(2026, 1, 5, 10, 0))
    assert (contract.code, contract.year, contract.expiry.isoformat()) == ("H", 2026, "2026-03-20")


def test_polygon_symbols_are_cut_at_the_roll() -> None:
    pieces = instruments.provider_symbol_ranges("ES", "polygon", ct(2025, 12, 10, 10, 0), ct(2025, 12, 11, 10, 0))
    assert [(s, a, b) for s, a, b in pieces] == [
        ("ESZ5", ct(2025, 12, 10, 10, 0), ct(2025, 12, 10, 17, 0)),
        ("ESH6", ct(2025, 12, 10, 17, 0), ct(2025, 12, 11, 10, 0)),
    ]
    assert instruments.provider_symbol("ES", "databento", ct(2025, 12, 10, 10, 0)) == "ES.c.0"


def test_metals_and_energy_are_refused_on_polygon_with_a_clear_error() -> None:
    with pytest.raises(ProviderSymbolUnsupported) as caught:
        instruments.provider_symbol("MCL", "polygon", ct(2025, 12, 10, 10, 0))
    assert caught.value.error_code == "DATA_UNAVAILABLE"
    assert caught.value.extra["reason"] == "provider_does_not_cover"
    assert "databento" in caught.value.suggested_fix


def test_a_symbol_is_found_by_root_or_databento_continuous_symbol() -> None:
    assert instruments.from_symbol("mes").root == "MES"
    assert instruments.from_symbol("NQ.c.0").root == "NQ"
    assert instruments.from_symbol("XX") is None
