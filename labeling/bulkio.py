"""Bulk reads into NumPy and bulk writes from NumPy, for code that touches hundreds of thousands of rows.

On PostgreSQL a query's numeric columns come back as one row of `array_agg(...)::text` per column,
parsed by NumPy in C (fetching rows one by one, or COPY's one-message-per-row protocol, costs more
in Python than the query itself); writes send whole columns as array literals to one
`INSERT ... SELECT FROM unnest(...)` or `UPDATE ... FROM unnest(...)`. Elsewhere (SQLite, the
zero-setup default) the same functions fall back to a cursor and to bulk_create.
"""

from __future__ import annotations

import numpy as np
from django.db import connection


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def read_columns(sql: str, params: list, columns: dict[str, type]) -> dict[str, np.ndarray]:
    """Run `sql` (placeholders %s; numeric, non-null columns in `columns` order, ints or floats; a
    float column may be NULL -> NaN) and return one NumPy array per column."""
    names = list(columns)
    if is_postgres():
        aggs = ", ".join(f"array_agg(s.{n})::text" for n in names)
        with connection.cursor() as cur:
            cur.execute(f"SELECT {aggs} FROM ({sql}) AS s({', '.join(names)})", params)
            row = cur.fetchone()
        out = {}
        for name, text in zip(names, row):
            dtype = columns[name]
            if text is None:
                out[name] = np.zeros(0, dtype=dtype)
            else:
                body = text[1:-1].replace("NULL", "NaN")
                out[name] = np.fromstring(body, sep=",", dtype=float if dtype is float else dtype) if body else np.zeros(0, dtype=dtype)
        return out
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    if not rows:
        return {n: np.zeros(0, dtype=columns[n]) for n in names}
    return {
        n: np.array([np.nan if r[j] is None else r[j] for r in rows], dtype=columns[n]) for j, n in enumerate(names)
    }


def array_literal(values) -> str:
    """A PostgreSQL array literal ({1,2,3}) for a 1-D NumPy array of numbers or booleans."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return "{" + ",".join(np.where(arr, "t", "f").tolist()) + "}"
    return "{" + ",".join(arr.astype(str).tolist()) + "}"


def label_case(column: str, keys: list[str]) -> tuple[str, list]:
    """SQL mapping a text column to its index in `keys` (-1 when absent), portable to SQLite."""
    if not keys:
        return "-1", []
    whens = " ".join("WHEN %s THEN " + str(i) for i in range(len(keys)))
    return f"(CASE {column} {whens} ELSE -1 END)", list(keys)
