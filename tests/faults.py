"""Helpers that make the database fail the way it does under load, for tests of the code that recovers."""

import psycopg.errors
from django.db import OperationalError


def deadlock_once(real, calls: list):
    """`real`, except that its first call fails as PostgreSQL fails a transaction it chose to break a
    deadlock (OperationalError caused by DeadlockDetected); `calls` counts the calls."""

    def wrapped(**kw):
        calls.append(1)
        if len(calls) == 1:
            try:
                raise psycopg.errors.DeadlockDetected("deadlock detected")
            except psycopg.errors.DeadlockDetected as cause:
                raise OperationalError("deadlock detected") from cause
        return real(**kw)

    return wrapped
