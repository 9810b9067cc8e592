"""Raw statements on Django's connection, for the few modules whose SQL the ORM cannot say (SKIP
LOCKED claims, UPDATE ... FROM a temporary table, aggregates over whole tables). Those modules keep
their statements and say why in their docstring; the cursor handling lives here."""

from __future__ import annotations

from django.db import connection


def table(model) -> str:
    """The model's table name, quoted for this database (for statements built around it)."""
    return connection.ops.quote_name(model._meta.db_table)


def execute(sql: str, params=()) -> int:
    """Run one statement; return the number of rows it touched."""
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.rowcount


def execute_many(statements) -> None:
    """Run [(sql, params), ...] in order on one cursor."""
    with connection.cursor() as cur:
        for sql, params in statements:
            cur.execute(sql, params)


def fetchall(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def fetchone(sql: str, params=()) -> tuple | None:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def fetchvalue(sql: str, params=(), default=None):
    """The first column of the first row, or `default` when there is no row."""
    row = fetchone(sql, params)
    return default if row is None else row[0]
