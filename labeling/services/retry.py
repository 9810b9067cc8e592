"""Re-running a whole service transaction that PostgreSQL aborted to break a deadlock or a
serialization conflict: the work was rolled back, not refused, so the caller should not see it."""

from __future__ import annotations

import functools
import logging
import random
import time

from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

# SQLSTATEs of a transaction PostgreSQL rolled back and that succeeds when run again.
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.__cause__ or exc.__context__
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and _sqlstate(exc) in RETRYABLE_SQLSTATES


def retry_on_conflict(func=None, *, attempts: int = 5, base_delay: float = 0.02):
    """Decorate a service (itself @transaction.atomic): a deadlock or serialization failure re-runs the
    whole call, up to `attempts` times, after a short random pause (full jitter, doubling) so that the
    transactions that collided do not collide again. Called inside an outer transaction, the outer
    one is what failed: nothing is re-run, the error goes to its owner."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            for attempt in range(1, attempts + 1):
                if connection.in_atomic_block:
                    return fn(*args, **kwargs)
                try:
                    return fn(*args, **kwargs)
                except OperationalError as exc:
                    if attempt == attempts or not is_conflict(exc):
                        raise
                    logger.warning(
                        "%s: %s (attempt %s of %s); running it again",
                        fn.__name__,
                        str(exc).splitlines()[0],
                        attempt,
                        attempts,
                    )
                    time.sleep(random.uniform(0, base_delay * 2**attempt))
            raise AssertionError("unreachable")

        return inner

    return wrap(func) if func is not None else wrap
