from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from apps.integrations import selectors

EXIT_CODES = {"OK": 0, "DEGRADED": 1, "BLOCKED": 2}


class Command(BaseCommand):
    help = "Print the system status JSON. Exit 0 OK, 1 DEGRADED, 2 BLOCKED."

    def handle(self, *args: Any, **options: Any) -> None:
        status = selectors.system_status()
        self.stdout.write(json.dumps(status, indent=2, default=str))
        raise SystemExit(EXIT_CODES[status["status"]])
