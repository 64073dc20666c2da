"""`manage.py import_bars`: CSV and Databento DBN (plain and zstd), strict and all-or-nothing,
idempotent, and the imported span served without asking a provider."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import databento_dbn as dbn
import pytest
from django.core.management import CommandError, call_command

from apps.market import services
from apps.market.models import Bar, BarConflict, BarCoverage
from tests.market.helpers import FakeBarSource

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 12, 16, 15, 0, tzinfo=UTC)  # Tuesday 09:00 CT
HEADER = "ts,open,high,low,close,volume\n"
ROWS = [
    "2025-12-16T15:00:00Z,6000.25,6001.00,5999.75,6000.50,120",
    "2025-12-16T15:01:00+00:00,6000.50,6002.00,6000.25,6001.75,80",
    "1765897320,6001.75,6002.25,6001.00,6001.25,95",  # epoch seconds: 15:02
    "1765897380000000000,6001.25,6001.50,6000.00,6000.25,60",  # epoch ns: 15:03
]


def _write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _import(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_bars", str(path), "--symbol", "MES", "--timeframe", "1m", *args, stdout=out)
    return out.getvalue()


def test_a_good_csv_is_imported_and_a_second_import_adds_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "\n".join(ROWS) + "\n")
    output = _import(path)
    assert "Imported 4, already stored 0" in output
    bars = list(Bar.objects.filter(instrument="MES", timeframe="1m").order_by("ts"))
    assert [b.ts for b in bars] == [T0 + timedelta(minutes=m) for m in range(4)]
    assert (bars[0].open, bars[0].close, bars[0].volume, bars[0].source) == (
        Decimal("6000.25"),
        Decimal("6000.50"),
        120,
        "csv",
    )
    coverage = BarCoverage.objects.get()
    assert (coverage.start, coverage.end) == (T0, T0 + timedelta(minutes=4))

    again = _import(path)
    assert "Nothing new" in again and "already stored 4 (skipped as duplicates)" in again
    assert Bar.objects.count() == 4


def test_imported_history_is_served_without_a_provider_call(tmp_path: Path) -> None:
    _import(_write(tmp_path, HEADER + "\n".join(ROWS) + "\n"))
    source = FakeBarSource()
    got = services.bars(
        "MES",
        "1m",
        end=T0 + timedelta(minutes=4),
        count=4,
        provider="databento",
        now=T0 + timedelta(days=1),
        source=source,
    )
    assert [b.close for b in got] == [Decimal("6000.50"), Decimal("6001.75"), Decimal("6001.25"), Decimal("6000.25")]
    assert source.calls == []


def test_a_bad_row_is_reported_by_line_and_nothing_is_written(tmp_path: Path) -> None:
    bad = [
        *ROWS[:2],
        "2025-12-16T15:02:00Z,6001.75,6000.00,6001.00,6001.25,95",  # high below low
        "2025-12-16 15:03:00,6001.25,6001.50,6000.00,6000.25,60",  # no UTC offset
        "2025-12-16T15:04:30Z,1,2,1,2,1",  # not on a minute
        "2025-12-16T15:01:00Z,6000.50,6002.00,6000.25,6001.75,80",  # repeats line 3
        "2025-12-16T15:06:00Z,abc,2,1,2,1",
        "2025-12-16T15:07:00Z,1,2,1,2,-5",
    ]
    with pytest.raises(CommandError) as caught:
        _import(_write(tmp_path, HEADER + "\n".join(bad) + "\n"))
    message = str(caught.value)
    for line in ("line 4:", "line 5:", "line 6:", "line 7: time 2025-12-16T15:01:00+00:00 repeats line 3", "line 8:"):
        assert line in message
    assert "line 9: volume '-5'" in message and "nothing was imported" in message
    assert Bar.objects.count() == 0 and BarCoverage.objects.count() == 0


def test_a_header_without_the_needed_columns_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no ts"):
        _import(_write(tmp_path, "time,o,h,l,c,v\n1,2,3,4,5,6\n"))


def test_a_row_that_differs_from_the_store_aborts_unless_keep_stored(tmp_path: Path) -> None:
    _import(_write(tmp_path, HEADER + ROWS[0] + "\n"))
    changed = ROWS[0].replace("6000.50,120", "6000.75,120")
    path = _write(tmp_path, HEADER + changed + "\n" + ROWS[1] + "\n", "changed.csv")
    with pytest.raises(CommandError, match="differ from bars already stored"):
        _import(path)
    assert Bar.objects.count() == 1
    output = _import(path, "--keep-stored")
    assert "Imported 1" in output and "conflicts 1" in output
    assert Bar.objects.get(ts=T0).close == Decimal("6000.50")  # the stored bar was kept
    assert BarConflict.objects.get().offered["close"] == "6000.750000000"


def test_a_databento_csv_export_with_fixed_point_prices(tmp_path: Path) -> None:
    text = (
        "ts_event,rtype,publisher_id,instrument_id,open,high,low,close,volume,symbol\n"
        "1765897200000000000,33,1,42,6000250000000,6001000000000,5999750000000,6000500000000,120,MES.c.0\n"
    )
    _import(_write(tmp_path, text))
    bar = Bar.objects.get()
    assert (bar.ts, bar.open, bar.high) == (T0, Decimal("6000.25"), Decimal("6001.00"))
    other = text.replace("MES.c.0", "NQ.c.0")
    with pytest.raises(CommandError, match="is not MES"):
        _import(_write(tmp_path, other, "nq.csv"))


def _dbn_bytes(*, schema: object = dbn.Schema.OHLCV_1M, symbol: str = "MES.c.0", minutes: int = 3) -> bytes:
    start_ns = int(T0.timestamp()) * 10**9
    meta = dbn.Metadata(
        dataset="GLBX.MDP3",
        start=start_ns,
        stype_in=dbn.SType.CONTINUOUS,
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=schema,
        symbols=[symbol],
    )
    records = b"".join(
        bytes(
            dbn.OHLCVMsg(
                dbn.RType.OHLCV_1M,
                1,
                42,
                start_ns + m * 60 * 10**9,
                6000_250000000 + m * 250000000,
                6001_000000000 + m * 250000000,
                5999_750000000 + m * 250000000,
                6000_500000001,  # 1e-9 precision survives the round trip
                100 + m,
            )
        )
        for m in range(minutes)
    )
    return meta.encode() + records


def test_a_dbn_file_round_trips_with_1e9_precision(tmp_path: Path) -> None:
    path = tmp_path / "mes.dbn"
    path.write_bytes(_dbn_bytes())
    output = _import(path)
    assert "Imported 3" in output and "symbol MES.c.0" in output
    bars = list(Bar.objects.order_by("ts"))
    assert [(b.ts, b.open, b.close, b.volume, b.source) for b in bars] == [
        (T0 + timedelta(minutes=m), Decimal("6000.25") + Decimal("0.25") * m, Decimal("6000.500000001"), 100 + m, "dbn")
        for m in range(3)
    ]
    assert "Nothing new" in _import(path)


def test_a_zstd_compressed_dbn_file_is_read(tmp_path: Path) -> None:
    compressed = io.BytesIO()
    transcoder = dbn.Transcoder(compressed, dbn.Encoding.DBN, dbn.Compression.ZSTD)
    transcoder.write(_dbn_bytes(minutes=2))
    transcoder.flush()
    path = tmp_path / "mes.dbn.zst"
    path.write_bytes(compressed.getvalue())
    assert path.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert "Imported 2" in _import(path)


def test_a_dbn_file_of_another_schema_or_instrument_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hourly.dbn"
    path.write_bytes(_dbn_bytes(schema=dbn.Schema.OHLCV_1H))
    with pytest.raises(CommandError, match="schema is ohlcv-1h"):
        _import(path)
    other = tmp_path / "nq.dbn"
    other.write_bytes(_dbn_bytes(symbol="NQH6"))
    with pytest.raises(CommandError, match="symbol NQH6 is not MES"):
        _import(other)
    garbage = tmp_path / "garbage.dbn"
    garbage.write_bytes(b"DBN\x03not really")
    with pytest.raises(CommandError, match="not a readable DBN file|not a DBN file"):
        _import(garbage)
    assert Bar.objects.count() == 0
