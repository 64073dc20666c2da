#!/usr/bin/env python
from __future__ import annotations

import os
import sys


def _warn_if_embedded_services_are_down() -> None:
    from config import embedded

    want_pg, want_redis = embedded.wanted()
    down = [
        name
        for name, wanted, running in (
            ("PostgreSQL", want_pg, embedded.postgres_running),
            ("Redis", want_redis, embedded.redis_running),
        )
        if wanted and not running()
    ]
    if down:
        print(
            f"TradeOps: the embedded {' and '.join(down)} under {embedded.var_dir()} "
            f"{'is' if len(down) == 1 else 'are'} not running. Start the system with `make run` "
            "(or only the servers with `make services-up`), or set DATABASE_URL / REDIS_URL.",
            file=sys.stderr,
        )


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.core.management import execute_from_command_line

    if len(sys.argv) > 1 and sys.argv[1] not in {"help", "--help", "-h", "check"}:
        _warn_if_embedded_services_are_down()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
