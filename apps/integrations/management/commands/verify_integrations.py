from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.integrations import registry, services


class Command(BaseCommand):
    help = "Verify the named providers (default: every configured one). Exit 1 if any fails."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("providers", nargs="*", help="Provider names (see the registry).")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args: Any, providers: list[str], as_json: bool, **options: Any) -> None:
        unknown = [p for p in providers if p not in registry.PROVIDERS]
        if unknown:
            raise CommandError(f"Unknown provider(s): {', '.join(unknown)}. Known: {', '.join(registry.PROVIDERS)}")
        results = services.integration_verify_all(providers=providers or None)
        if as_json:
            self.stdout.write(json.dumps([r.as_dict() for r in results], indent=2, default=str))
        else:
            if not results:
                self.stdout.write("No provider is configured; see `manage.py keys_needed`.")
            for r in results:
                if r.ok:
                    self.stdout.write(self.style.SUCCESS(f"✔ {r.provider:<11} ok in {r.latency_ms} ms {r.details}"))
                else:
                    self.stdout.write(self.style.ERROR(f"✘ {r.provider:<11} {r.error_code}: {r.message}"))
                    self.stdout.write(f"    fix: {r.suggested_fix}")
        if any(not r.ok for r in results):
            raise SystemExit(1)
