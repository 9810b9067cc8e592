"""Bulk reads into pandas and bulk inserts, for code that touches hundreds of thousands of rows.

On PostgreSQL both go through COPY (psycopg 3): a query's rows stream out as CSV that pandas parses
in C, and rows stream in without building model instances. Elsewhere (SQLite, the zero-setup
default) they fall back to a cursor and to bulk_create in batches.
"""

from __future__ import annotations

import io

import pandas as pd
from django.db import connection


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def read_frame(sql: str, params: list, columns: dict[str, str]) -> pd.DataFrame:
    """Run `sql` (placeholders %s) and return its rows as a DataFrame with the given dtypes
    (`columns` maps name -> pandas dtype, in the query's column order)."""
    names = list(columns)
    if is_postgres():
        buf = io.BytesIO()
        with connection.cursor() as cur:
            with cur.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
                for block in copy:
                    buf.write(block)
        if buf.tell() == 0:
            return _empty(columns)
        buf.seek(0)
        return pd.read_csv(buf, header=None, names=names, dtype=_csv_dtypes(columns), keep_default_na=False,
                           na_values=[""], engine="c")
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    if not rows:
        return _empty(columns)
    frame = pd.DataFrame.from_records(rows, columns=names)
    return frame.astype({k: v for k, v in columns.items() if v not in ("str",)})


def _csv_dtypes(columns):
    out = {}
    for k, v in columns.items():
        out[k] = object if v == "str" else v
    return out


def _empty(columns) -> pd.DataFrame:
    return pd.DataFrame({k: pd.Series([], dtype=object if v == "str" else v) for k, v in columns.items()})


def insert_rows(model, fields: list[str], rows, *, batch_size: int = 5000) -> int:
    """Insert tuples (values in `fields` order, concrete column attnames such as `run_id`) into
    `model`'s table. COPY on PostgreSQL, bulk_create in batches elsewhere. Returns the row count."""
    table = model._meta.db_table
    n = 0
    if is_postgres():
        cols = ", ".join(connection.ops.quote_name(model._meta.get_field(_field_name(model, f)).column) for f in fields)
        with connection.cursor() as cur:
            with cur.cursor.copy(f"COPY {connection.ops.quote_name(table)} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
        return n
    batch = []
    for row in rows:
        batch.append(model(**dict(zip(fields, row))))
        if len(batch) >= batch_size:
            model.objects.bulk_create(batch)
            n += len(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)
        n += len(batch)
    return n


def _field_name(model, attname: str) -> str:
    for f in model._meta.concrete_fields:
        if f.attname == attname:
            return f.name
    return attname
