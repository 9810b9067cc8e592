"""Work on a second connection. A run over hundreds of thousands of rows spends most of its time in
PostgreSQL; independent statements can go on at the same time on another connection (a thread:
psycopg waits for the server without holding the GIL, and Django gives each thread its own
connection), optionally inside one exported snapshot so both read exactly the same committed data."""

from __future__ import annotations

import re
import threading

from django.db import connection, transaction

from common.db import is_postgres

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
    JIT compilation (its code generation costs more than it saves on these reads)."""
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
