"""The symbol each venue trades an instrument under, at a moment (the front quarterly contract
under the market app's roll rule). Tradovate names a contract root + month code + the year's last
digit (`MESZ6`); Ironbeam `<MIC>:<root>.<month code><2-digit year>` (`XCME:MES.Z26`, PROVIDERS.md §2).
The SIM venue trades the instrument itself, on the market data's continuous series."""

from __future__ import annotations

from datetime import datetime

from apps.market import instruments


def venue_symbol(instrument: str, venue: str, at: datetime) -> str:
    """Raises ValueError for an unknown instrument, or one whose contracts are not modelled for a broker."""
    spec = instruments.get(instrument)
    if spec is None:
        raise ValueError(f"unknown instrument {instrument!r}")
    if venue == "sim":
        return spec.root
    contract = instruments.front_contract(spec, at)
    if venue == "tradovate":
        return f"{spec.root}{contract.code}{contract.year % 10}"
    if venue == "ironbeam":
        return f"{spec.exchange}:{spec.root}.{contract.code}{contract.year % 100:02d}"
    raise ValueError(f"unknown venue {venue!r}")
