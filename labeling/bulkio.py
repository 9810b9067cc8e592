"""Bulk reads into NumPy and bulk writes from NumPy, for code that touches hundreds of thousands of rows.

On PostgreSQL a query's numeric columns come back as one bytea per column (fetching rows one by
one, or COPY's one-message-per-row protocol, costs more in Python than the query itself), and
writes go through a temporary table filled by one binary COPY built whole by NumPy, then one
INSERT ... SELECT or UPDATE ... FROM. Elsewhere (SQLite, the zero-setup default) the same functions
fall back to a cursor and to bulk_create.
"""

from __future__ import annotations

import re
import threading

import numpy as np
from django.db import connection, transaction


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


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

        row = _fetch_one_binary(f"SELECT {', '.join(agg(n) for n in names)} FROM ({sql}) AS s({', '.join(names)})", params)
        out = {}
        for n, raw in zip(names, row):
            if isinstance(columns[n], tuple):
                k = columns[n][1]
                out[n] = np.zeros((0, k)) if raw is None else np.frombuffer(raw, dtype=">f8").astype(float).reshape(-1, k)
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
        n: np.array([missing.get(columns[n], -1) if r[j] is None else r[j] for r in rows],
                    dtype=object if columns[n] is str else columns[n])
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
    with connection.cursor() as cur:
        with cur.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
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


# --- work on a second connection ---------------------------------------------------------------
# A run over hundreds of thousands of rows spends seconds in PostgreSQL; on a machine with more than
# one core, independent statements can go on at the same time on a second connection (a thread:
# psycopg waits for the server without holding the GIL, and Django gives each thread its own
# connection).

_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$")


def side_connections_usable() -> bool:
    """Whether work may go to other connections: PostgreSQL, and not inside a transaction (other
    connections would not see its uncommitted rows; tests run inside one)."""
    return is_postgres() and connection.get_autocommit()


def snapshot_export() -> str:
    """The id of the current transaction's snapshot (PostgreSQL, REPEATABLE READ), for DbThread to
    import: both then read exactly the same committed data. Valid while this transaction is open."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_export_snapshot()")
        return cur.fetchone()[0]


def bulk_read_settings(cur, work_mem: str) -> None:
    """For a transaction that reads whole tables (PostgreSQL): hash joins and sorts in memory, and no
    JIT compilation (its code generation cost more than it saved on these reads: a cold 300k-row
    read of the newest predictions took 0.54 s with it, 0.40 s without)."""
    cur.execute(f"SET LOCAL work_mem = '{work_mem}'")
    cur.execute("SET LOCAL jit = off")


class DbThread(threading.Thread):
    """Runs `fn()` in a thread on a connection of its own, then closes that connection.

    With `snapshot_id`, fn runs inside a REPEATABLE READ, READ ONLY transaction that imports that
    snapshot: it sees what the exporting transaction sees, whatever commits meanwhile. The exporter
    must stay open until the snapshot is imported: call wait_started() before ending it. Without
    one, fn manages its own transactions. result() waits and returns fn's value, or raises its error."""

    def __init__(self, fn, *, snapshot_id: str | None = None, work_mem: str | None = None):
        if snapshot_id is not None and not _SNAPSHOT_ID.match(snapshot_id):
            raise ValueError(f"not a snapshot id: {snapshot_id!r}")
        if work_mem is not None and not re.match(r"^[0-9]+[kMG]B$", work_mem):
            raise ValueError(f"not a work_mem setting: {work_mem!r}")
        super().__init__(name="loupe-db-thread", daemon=True)
        self._fn, self._snapshot_id, self._work_mem = fn, snapshot_id, work_mem
        self._started_txn = threading.Event()
        self._value = self._error = None
        self.start()

    def run(self):
        try:
            if self._snapshot_id is None:
                self._started_txn.set()
                self._value = self._fn()
                return
            with transaction.atomic():
                with connection.cursor() as cur:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    cur.execute(f"SET TRANSACTION SNAPSHOT '{self._snapshot_id}'")
                    if self._work_mem:
                        bulk_read_settings(cur, self._work_mem)
                self._started_txn.set()
                self._value = self._fn()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc
        finally:
            self._started_txn.set()
            connection.close()

    def wait_started(self) -> None:
        """Block until the thread's transaction holds the snapshot (or it failed: then raise)."""
        self._started_txn.wait()
        if self._error is not None:
            self.result()

    def result(self):
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


def start_calls(calls: list, *, ways: int = 2):
    """Start `calls` (each manages its own transactions) and return a function that waits for all of
    them and returns their values in order, raising the first error once every call has ended.

    Where side connections are usable, `ways` threads, each on its own connection, take the next
    call not yet taken, in order, until none is left (so that calls of unequal cost keep every
    thread busy), while this one goes on with other work. Elsewhere the calls run here, now."""
    if not side_connections_usable() or len(calls) < 2:
        values = [call() for call in calls]
        return lambda: values
    out = [None] * len(calls)
    queue = iter(range(len(calls)))
    lock = threading.Lock()

    def take_each():
        while True:
            with lock:
                j = next(queue, None)
            if j is None:
                return
            out[j] = calls[j]()

    workers = [DbThread(take_each) for _ in range(min(ways, len(calls)))]

    def wait() -> list:
        for worker in workers:
            worker.join()
        for worker in workers:
            worker.result()  # raises the first error
        return out

    return wait
