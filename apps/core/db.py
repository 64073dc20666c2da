"""Hot-path SQL. Django's cursors bind parameters client-side, so PostgreSQL plans every query
again; for the few queries on every request (token auth) or every status poll, planning costs
more than running. These helpers run hand-written SQL as server-side prepared statements on
Django's own connection (same transaction, same test isolation)."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import connection


def fetch_prepared(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


def instance_from_values(model: type[Any], values: dict[str, Any]) -> Any:
    """A model instance loaded from some of its columns (the rest deferred), as the ORM would build
    it. `Model.from_db` wants the values in the model's field order, which this takes care of."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db("default", names, [values[n] for n in names])
