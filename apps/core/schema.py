"""drf-spectacular hooks."""

from __future__ import annotations

from typing import Any


def drop_trailing_slash_twins(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """Collections are served at `/api/bots` and `/api/bots/`; the schema documents the SPEC path
    (no trailing slash) once."""
    paths = {endpoint[0] for endpoint in endpoints}
    return [e for e in endpoints if not (e[0].endswith("/") and e[0].rstrip("/") in paths)]
