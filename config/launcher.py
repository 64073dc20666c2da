"""`make run`: the whole system in one command.

Starts the embedded PostgreSQL/Redis when DATABASE_URL/REDIS_URL are unset, migrates, creates
the periodic tasks and (first run) the admin user, then runs web, worker, backtests and beat from the
Procfile under honcho. Ctrl-C (or SIGTERM) stops the processes and then the embedded services
that this run started; services that were already running are left as they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from config import embedded

BASE_DIR = embedded.BASE_DIR


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True, env=env, cwd=BASE_DIR)


def _env(port: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env["TRADEOPS_PORT"] = port
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


READY_TIMEOUT_SECONDS = 180


def _announce_when_ready(url: str, honcho: subprocess.Popen[bytes]) -> None:
    """One line once /api/health answers 200 (the web process serves and reaches PostgreSQL and
    Redis), or one line saying it did not."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and honcho.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}api/health", timeout=2) as response:
                if response.status == 200:
                    print(f"[tradeops] TradeOps is ready: {url}  (API: {url}api/docs/)", flush=True)
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    if honcho.poll() is None:
        print(
            f"[tradeops] not ready after {READY_TIMEOUT_SECONDS} s: {url}api/health does not answer 200; "
            "see the web lines above.",
            flush=True,
        )


def main() -> int:
    port = os.environ.get("PORT", "8000")
    env = _env(port)
    started_pg, started_redis = embedded.up()
    honcho: subprocess.Popen[bytes] | None = None

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        want_pg, want_redis = embedded.wanted()
        for name, wanted, started in (
            ("PostgreSQL", want_pg, started_pg),
            ("Redis", want_redis, started_redis),
        ):
            where = f"embedded under {embedded.var_dir()}" if wanted else "from the URL in the environment"
            print(f"[tradeops] {name}: {'started' if started else 'already running'} ({where})", flush=True)
        _manage("migrate", "--noinput", env=env)
        _manage("setup_periodic_tasks", env=env)
        _manage("ensure_admin", env=env)
        url = f"http://127.0.0.1:{port}/"
        print(f"[tradeops] TradeOps is starting on {url}")
        print(
            "[tradeops] Ctrl-C stops web, worker, backtests, beat and the embedded services this run started.",
            flush=True,
        )
        # start_new_session: honcho and its children get Ctrl-C from us, in order, not from the tty.
        honcho = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(BASE_DIR / "Procfile"), "-d", str(BASE_DIR)],
            env=env,
            start_new_session=True,
        )
        threading.Thread(target=_announce_when_ready, args=(url, honcho), daemon=True).start()
        return honcho.wait()
    except KeyboardInterrupt:
        print("\n[tradeops] stopping…", flush=True)
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"[tradeops] start-up step failed: {' '.join(map(str, exc.cmd[1:]))}", file=sys.stderr)
        return exc.returncode or 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if honcho is not None and honcho.poll() is None:
            # honcho forwards SIGTERM to web, worker, backtests and beat and waits for them.
            honcho.send_signal(signal.SIGTERM)
            try:
                honcho.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
                honcho.wait()
        embedded.down(postgres=started_pg, redis=started_redis)
        if started_pg or started_redis:
            print("[tradeops] embedded services stopped; data kept under", embedded.var_dir(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
