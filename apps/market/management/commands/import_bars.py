from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.market import imports, instruments, services
from apps.market.instruments import TIMEFRAMES


class Command(BaseCommand):
    help = (
        "Load bars from a CSV or Databento DBN file (.dbn, .dbn.zst) into the bar store, all or nothing. "
        "Idempotent: bars already stored with the same values are counted, not written again. "
        "Accepted forms: see apps/market/imports.py."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--symbol", required=True, help="Instrument root (MES) or Databento continuous (MES.c.0).")
        parser.add_argument("--timeframe", required=True, choices=TIMEFRAMES)
        parser.add_argument(
            "--provider",
            choices=("csv", "dbn"),
            default=None,
            help="File format (default: from the file name or its first bytes).",
        )
        parser.add_argument(
            "--keep-stored",
            action="store_true",
            help="Import even if some bars differ from stored ones: keep the stored bars, record the conflicts.",
        )
        parser.add_argument(
            "--no-coverage",
            action="store_true",
            help="Do not record the file's span as complete (a provider may then be asked for its gaps).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        timeframe: str = options["timeframe"]
        spec = instruments.from_symbol(options["symbol"])
        if spec is None:
            raise CommandError(
                f"Unknown symbol {options['symbol']!r}; known roots: {', '.join(instruments.INSTRUMENTS)}."
            )
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        fmt = options["provider"] or imports.detect_format(path)
        if fmt == "dbn" and timeframe not in imports.DBN_SCHEMAS.values():
            raise CommandError(f"DBN files hold ohlcv-1m or ohlcv-1h bars; {timeframe} is aggregated by TradeOps.")
        try:
            parsed = (imports.parse_dbn if fmt == "dbn" else imports.parse_csv)(
                path, instrument=spec, timeframe=timeframe
            )
        except imports.ImportFileInvalid as exc:
            raise CommandError(f"{path}: {exc}") from exc
        try:
            result = services.bars_import(
                instrument=spec.root,
                timeframe=timeframe,
                bars=parsed.bars,
                source=fmt,
                keep_stored=options["keep_stored"],
                record_coverage=not options["no_coverage"],
            )
        except services.ImportConflict as exc:
            lines = [
                f"  {c['ts'].isoformat()}: stored {c['stored']} ({c['stored_source']}), file {c['offered']}"
                for c in exc.conflicts[:20]
            ]
            raise CommandError(f"{path}: {exc.message}\n" + "\n".join(lines) + f"\n{exc.suggested_fix}") from exc
        first, last = parsed.bars[0].ts, parsed.bars[-1].ts
        self.stdout.write(
            f"{path.name}: {result.rows} {spec.root} {timeframe} bars from {first:%Y-%m-%d %H:%M} to "
            f"{last:%Y-%m-%d %H:%M} UTC ({fmt}{', symbol ' + parsed.symbol if parsed.symbol else ''})."
        )
        summary = (
            f"imported {result.inserted}, already stored {result.identical} (skipped as duplicates), "
            f"conflicts {len(result.conflicts)} (stored bars kept)."
        )
        if result.inserted == 0:
            self.stdout.write(self.style.WARNING(f"Nothing new: {summary}"))
        else:
            self.stdout.write(self.style.SUCCESS(summary.capitalize()))
        for c in result.conflicts[:20]:
            self.stdout.write(f"  conflict {c['ts'].isoformat()}: stored {c['stored']}, file {c['offered']}")
        if result.covered:
            a, b = result.covered
            self.stdout.write(f"Recorded as complete: [{a:%Y-%m-%d %H:%M}, {b:%Y-%m-%d %H:%M}) UTC.")
