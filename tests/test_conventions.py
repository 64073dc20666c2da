"""House rules that a grep can hold (STYLE.md R13, SPEC §1)."""

from __future__ import annotations

import re
from pathlib import Path

APPS = Path(__file__).resolve().parents[1] / "apps"


def _sources() -> list[Path]:
    return [p for p in APPS.rglob("*.py") if "migrations" not in p.parts]


def test_tasks_are_enqueued_on_commit_only() -> None:
    bare = re.compile(r"\.(delay|apply_async)\(")
    offenders = [
        f"{p.relative_to(APPS.parent)}:{n}"
        for p in _sources()
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if bare.search(line)
    ]
    assert offenders == [], "use delay_on_commit / apply_async_on_commit (R13)"


def test_nothing_calls_supabase() -> None:
    pattern = re.compile(r"supabase\.functions\.invoke|functions\.supabase\.co|createClient\(", re.I)
    offenders = [str(p) for p in _sources() if pattern.search(p.read_text())]
    assert offenders == []
