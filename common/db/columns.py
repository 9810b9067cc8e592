"""Bulk reads into NumPy. On PostgreSQL a query's columns come back as one bytea each (fetching rows
one by one costs more in Python than the query itself), which NumPy reads without parsing numbers;
elsewhere a plain cursor."""

from __future__ import annotations

import numpy as np
from django.db import connection

from common.db import is_postgres


def read_columns(sql: str, params: list, columns: dict[str, type | tuple]) -> dict[str, np.ndarray]:
    """Run `sql` (placeholders %s; columns in `columns` order: int (np.int64, or np.int32 / np.int16
    for values that fit, sent in 4 or 2 bytes), float or str, or (float, k) for a bytea of k
    big-endian float64 per row) and return one NumPy array per column (N × k for the
    latter). A NULL float is NaN, a NULL int -1, a NULL str "", a NULL vector k NaN.

    PostgreSQL sends each column as one bytea of fixed-width big-endian values (string_agg of
    int8send/float8send, all in the same row order), which NumPy reads without parsing numbers."""
    names = list(columns)
    if is_postgres():

        def agg(n):
            if isinstance(columns[n], tuple):
                nan_row = "\\x" + "7ff8000000000000" * columns[n][1]
                return f"string_agg(coalesce(s.{n}, '{nan_row}'::bytea), ''::bytea)"
            if columns[n] is float:
                return f"string_agg(float8send(coalesce(s.{n}::float8, 'NaN')), ''::bytea)"
            if columns[n] is str:  # short text (keys, versions): one string, split on the record separator
                return f"string_agg(coalesce(s.{n}::text, ''), chr(30))"
            if columns[n] is np.int32:  # (half the bytes to send and read: ids below 2**31, codes)
                return f"string_agg(int4send(coalesce(s.{n}::int4, -1)), ''::bytea)"
            if columns[n] is np.int16:
                return f"string_agg(int2send(coalesce(s.{n}::int2, (-1)::int2)), ''::bytea)"
            return f"string_agg(int8send(coalesce(s.{n}::int8, -1)), ''::bytea)"

        row = _fetch_one_binary(
            f"SELECT {', '.join(agg(n) for n in names)} FROM ({sql}) AS s({', '.join(names)})", params
        )
        out = {}
        for n, raw in zip(names, row):
            if isinstance(columns[n], tuple):
                k = columns[n][1]
                out[n] = (
                    np.zeros((0, k)) if raw is None else np.frombuffer(raw, dtype=">f8").astype(float).reshape(-1, k)
                )
            elif columns[n] is str:
                out[n] = np.array([] if raw is None else raw.split("\x1e"), dtype=object)
            elif raw is None:
                out[n] = np.zeros(0, dtype=columns[n])
            else:
                wire = {float: ">f8", np.int32: ">i4", np.int16: ">i2"}.get(columns[n], ">i8")
                out[n] = np.frombuffer(raw, dtype=wire).astype(columns[n])
        return out
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    if not rows:
        return {n: np.zeros(0, dtype=object if columns[n] is str else columns[n]) for n in names}
    missing = {float: np.nan, str: ""}
    return {
        n: np.array(
            [missing.get(columns[n], -1) if r[j] is None else r[j] for r in rows],
            dtype=object if columns[n] is str else columns[n],
        )
        for j, n in enumerate(names)
    }


def _fetch_one_binary(sql: str, params: list) -> tuple:
    """One row in PostgreSQL's binary format. Django's psycopg cursors bind parameters client-side,
    which only returns text: a bytea of tens of MB would come back as hex, twice the size, and be
    decoded on this side (about half the time of the read). A server-side-binding cursor on the
    same connection (so in the same transaction) gets the bytes as they are."""
    import psycopg

    with connection.cursor() as wrapper:  # opens the connection (and any pending transaction) as Django does
        with psycopg.Cursor(wrapper.cursor.connection) as cur:
            cur.execute(sql, params, binary=True)
            return cur.fetchone()


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
