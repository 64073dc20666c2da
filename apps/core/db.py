"""Hot-path SQL. Django's cursors bind parameters client-side, so PostgreSQL plans every query
again; for the few queries on every request (token auth) or every status poll, planning costs
more than running. These helpers run hand-written SQL as server-side prepared statements on
Django's own connection (same transaction, same test isolation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection


@contextmanager
def prepared_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A cursor on Django's own connection and transaction whose `execute(..., prepare=True)` really
    runs a server-side prepared statement: parsed and planned once per connection, then only bound
    and executed.

    Django turns psycopg's prepared statements off for the whole connection (prepare_threshold=None,
    for connection poolers), and psycopg then ignores prepare=True; so they are turned on only
    around these statements, and the ORM's own queries stay unprepared. psycopg forgets (and
    deallocates) them on a rollback or a new connection and prepares them again on next use."""
    connection.ensure_connection()
    raw = connection.connection
    threshold = raw.prepare_threshold
    raw.prepare_threshold = 0
    try:
        with psycopg.Cursor(raw) as cursor:
            yield cursor
    finally:
        raw.prepare_threshold = threshold


def fetch_prepared(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with prepared_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


def execute_prepared(sql: str, params: dict[str, Any]) -> int:
    """Rowcount of a prepared statement that returns no rows."""
    with prepared_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.rowcount


def instance_from_values(model: type[Any], values: dict[str, Any]) -> Any:
    """A model instance loaded from some of its columns (the rest deferred), as the ORM would build
    it. `Model.from_db` wants the values in the model's field order, which this takes care of."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db("default", names, [values[n] for n in names])
