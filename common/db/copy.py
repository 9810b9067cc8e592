"""COPY into tables. Binary COPY of NumPy columns, the stream built whole by NumPy (numbers, and text
from a few choices), into a table or a temporary one for a following INSERT ... SELECT or
UPDATE ... FROM; and text COPY of Python rows (mixed types: text, JSON, timestamps). PostgreSQL only."""

from __future__ import annotations

import numpy as np
from django.db import connection

# PostgreSQL's binary COPY format, built whole by NumPy: rows of numbers, and text from a few choices.
_PG_BINARY = {"int8": (">i8", 8), "int4": (">i4", 4), "int2": (">i2", 2), "float8": (">f8", 8), "bool": ("?", 1)}
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def copy_binary_payload(columns: list[tuple[str, object]]) -> bytes:
    """The COPY ... (FORMAT binary) stream for equal-length columns [(pg type, values)].

    A "text" column (for text and varchar) is given as (codes, choices): row i holds
    choices[codes[i]], as for labels or outcomes. A binary row is as wide as its texts, so the rows
    are built in groups whose texts have the same byte lengths, each group one fixed-width NumPy
    record array, in the given order within each group (ascending keys stay ascending: PostgreSQL
    then appends to its indexes' rightmost pages). Label keys mostly share a length, so there are
    few groups."""
    n = len(_codes_or_values(columns[0])) if columns else 0
    texts = [j for j, (pg_type, _) in enumerate(columns) if pg_type == "text"]
    groups = [] if texts else [slice(None)]
    if texts and n:
        encoded, codes, widths = {}, {}, {}
        for j in texts:
            c = np.asarray(columns[j][1][0], dtype=np.int64)
            choices = [x.encode() for x in columns[j][1][1]]
            if c.min() < 0 or c.max() >= len(choices):
                raise ValueError(f"text column {j}: a code outside its {len(choices)} choices")
            encoded[j], codes[j] = choices, c
            widths[j] = np.array([len(x) for x in choices], dtype=np.int64)[c]
        shape = [int(widths[j].max()) + 1 for j in texts]
        key = np.ravel_multi_index([widths[j] for j in texts], shape)
        order = np.argsort(key, kind="stable")
        starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
        groups = np.split(order, starts[1:])
    parts = [_COPY_HEADER]
    for rows in groups:
        width = {j: int(widths[j][rows[0]]) for j in texts}
        fields = [("count", ">i2")]
        for j, (pg_type, _) in enumerate(columns):
            fields.append((f"len{j}", ">i4"))
            if pg_type != "text":
                fields.append((f"val{j}", _PG_BINARY[pg_type][0]))
            elif width[j]:  # (an empty text is its length alone)
                fields.append((f"val{j}", f"S{width[j]}"))
        block = np.empty(n if isinstance(rows, slice) else len(rows), dtype=np.dtype(fields))
        block["count"] = len(columns)
        for j, (pg_type, values) in enumerate(columns):
            if pg_type == "text":
                block[f"len{j}"] = width[j]
                if width[j]:  # every row here has a choice of this byte length
                    block[f"val{j}"] = np.array(encoded[j], dtype=f"S{max(map(len, encoded[j]))}")[codes[j][rows]]
            else:
                block[f"len{j}"] = _PG_BINARY[pg_type][1]
                block[f"val{j}"] = np.asarray(values)[rows]
        parts.append(block.tobytes())
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


def _codes_or_values(column: tuple[str, object]):
    pg_type, values = column
    return values[0] if pg_type == "text" else values


def copy_rows(table: str, columns: list[str], rows) -> None:
    """COPY `rows` (an iterable of tuples in `columns` order; None is NULL) into `table`, streamed in
    PostgreSQL's text format. PostgreSQL only; for mixed-type rows (text, JSON, timestamps) of a few
    thousand up, where an ORM bulk_create spends most of its time compiling the statement."""
    with connection.cursor() as cur, cur.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def temp_table_from_arrays(name: str, columns: dict[str, tuple[str, np.ndarray]]) -> None:
    """CREATE TEMP TABLE `name` (dropped at commit; call inside a transaction) filled from NumPy
    columns {column: (pg type, values)} with one binary COPY. PostgreSQL only."""
    ddl = ", ".join(f"{col} {pg_type}" for col, (pg_type, _) in columns.items())
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")  # an earlier one in this same transaction
        cur.execute(f"CREATE TEMP TABLE {name} ({ddl}) ON COMMIT DROP")
    copy_arrays(name, columns)


def copy_arrays(table: str, columns: dict[str, tuple[str, np.ndarray]]) -> None:
    """Rows from NumPy columns {column: (pg type, values)} into `table`, with one binary COPY (see
    copy_binary_payload; a "text" column's values are (codes, choices)). The pg types must be the
    columns' own (binary COPY does not convert: int2 for smallint). PostgreSQL only."""
    payload = copy_binary_payload(list(columns.values()))
    with connection.cursor() as cur:
        with cur.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)") as copy:
            copy.write(payload)
