"""Background work that survives a dead worker or a broker outage.

Sending: task messages go through `enqueue` / `enqueue_on_commit`, by task object or registered name
(a service names its task, so it never imports labeling.tasks). A broker that does not answer does
not fail the caller: the message is owed, recorded by the work's own row or by a DeferredTask row.
Heartbeats: long work runs inside `Heartbeat`, which stamps its row from a side thread, fenced by the
attempt number. The sweep (`work_recover`, labeling.services.sweep) re-queues or fails work whose
heartbeat stopped, re-sends queued work nobody picked up, and sends the DeferredTask rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from labeling.models import DeferredTask

logger = logging.getLogger(__name__)

# What a failed publish raises: kombu wraps the transport's connection errors in its OperationalError;
# a socket error can still escape while the connection is set up.
PUBLISH_ERRORS = (BrokerError, OSError)


# --- sending ------------------------------------------------------------------------------------


def _app():
    from config.celery import app

    return app


def task_named(task):
    """`task` itself, or the registered Celery task of that name (KeyError for an unknown name)."""
    return _app().tasks[task] if isinstance(task, str) else task


def enqueue(task, *args, record: bool = True, **options) -> bool:
    """Send `task(*args)` now (`task`: a task or its registered name). True when the broker took it.
    On a broker failure: log, and (record=True) keep a DeferredTask row that the sweep sends later;
    never raises a broker error. With record=False the caller's own row is the record (the sweep
    re-sends queued runs and exports)."""
    task = task_named(task)
    send = partial(task.apply_async, args, **options) if options else partial(task.delay, *args)
    if _app().conf.task_always_eager:
        send()  # in-process (demo): a task's own error is the caller's
        return True
    try:
        send()
        return True
    except PUBLISH_ERRORS as exc:
        logger.error(
            "could not send task %s%r (%s: %s); the work sweep will send it", task.name, args, type(exc).__name__, exc
        )
        if record:
            _defer(task.name, list(args), exc)
        return False


def enqueue_on_commit(task, *args, record: bool = True, **options) -> None:
    """`enqueue` once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(partial(enqueue, task, *args, record=record, **options))


def _defer(task_name: str, args: list, exc: BaseException) -> None:
    key = hashlib.sha256(json.dumps([task_name, args], sort_keys=True, default=str).encode()).hexdigest()
    try:
        with transaction.atomic():
            DeferredTask.objects.get_or_create(
                key=key,
                defaults={"task_name": task_name, "args": args, "last_error": f"{type(exc).__name__}: {exc}"[:2000]},
            )
    except IntegrityError:
        pass  # recorded concurrently
    except DatabaseError:
        logger.exception("could not record the unsent task %s%r either", task_name, args)


class Sender:
    """Sends for one sweep; after the first broker failure the rest of the sweep does not wait on it."""

    def __init__(self):
        self.broker_ok = True

    def send(self, task, *args) -> bool:
        if not self.broker_ok:
            return False
        self.broker_ok = enqueue(task, *args, record=False)
        return self.broker_ok


def deferred_tasks_send(*, sender: Sender | None = None, limit: int = 1000) -> int:
    """Send the recorded task messages (oldest first) while the broker takes them. Returns how many went."""
    sender = sender or Sender()
    app = _app()
    sent = 0
    for row in DeferredTask.objects.order_by("id")[:limit]:
        task = app.tasks.get(row.task_name)
        if task is None:
            logger.error("dropping deferred message for unknown task %s", row.task_name)
            row.delete()
            continue
        # Taken off the list before sending: a failure recorded meanwhile for the same task makes a new
        # row (sent by the next sweep) instead of joining one that is about to go, and two sweeps at
        # once do not both send it.
        if not DeferredTask.objects.filter(pk=row.pk).delete()[0]:
            continue
        if not sender.send(task, *row.args):
            DeferredTask.objects.get_or_create(
                key=row.key,
                defaults={
                    "task_name": row.task_name,
                    "args": row.args,
                    "attempts": row.attempts + 1,
                    "last_error": row.last_error,
                },
            )
            break
        sent += 1
    return sent


# --- heartbeats ---------------------------------------------------------------------------------


class WorkTakenOver(Exception):
    """This attempt's row was handed to another attempt (its heartbeat had stopped): stop quietly."""


class Heartbeat:
    """Context manager: stamp `model` row `pk`'s heartbeat_at while attempt `attempt` runs it, every
    LOUPE_HEARTBEAT_SECONDS on the thread's own connection, whatever the task is busy with. The update
    is fenced by the attempt number: once the row has been handed to another attempt, the beat stops
    and the old attempt stops at its next `check()`.

    Outside a transaction only (a row written inside one is not visible to the beat's connection,
    and the beat would wait on the caller's locks)."""

    def __init__(self, model, pk: int, attempt: int, *, running: str = "running", interval: float | None = None):
        self.model, self.pk, self.attempt, self.running = model, pk, attempt, running
        self.interval = settings.LOUPE_HEARTBEAT_SECONDS if interval is None else interval
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.interval > 0 and not connection.in_atomic_block:
            self._thread = threading.Thread(
                target=self._run, name=f"heartbeat-{self.model.__name__}-{self.pk}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval))
        return False

    def _run(self):
        from django.db import connection as own  # this thread's connection

        try:
            while not self._stop.wait(self.interval):
                try:
                    beat = self.model.objects.filter(pk=self.pk, status=self.running, attempts=self.attempt).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    logger.warning(
                        "heartbeat of %s %s failed; trying again", self.model.__name__, self.pk, exc_info=True
                    )
                    own.close()
                    continue
                if not beat:
                    self.lost.set()
                    return
        finally:
            own.close()

    def check(self) -> None:
        """Raise WorkTakenOver when this attempt no longer owns the row (call between phases)."""
        if self.lost.is_set():
            raise WorkTakenOver(f"{self.model.__name__} {self.pk}: attempt {self.attempt} was taken over")


# --- the sweep ----------------------------------------------------------------------------------


def _silent_since(cutoff) -> Q:
    """Rows whose last sign of life (heartbeat, else start, else creation) is older than `cutoff`: written
    on the row's own columns, so PostgreSQL re-checks it on the newest row version under concurrency."""
    return (
        Q(heartbeat_at__lt=cutoff)
        | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        | Q(heartbeat_at__isnull=True, started_at__isnull=True, created_at__lt=cutoff)
    )


def work_recover(
    *, model, task, queued: str, running: str, failed: str, now=None, sender: Sender | None = None, what: str = "work"
) -> dict:
    """Re-queue (or fail) `model` rows whose heartbeat stopped, and re-send queued rows nobody picked up.
    Returns {"requeued", "failed", "resent"} counts.

    Running work silent for LOUPE_HEARTBEAT_STALE_SECONDS goes back to queued and is sent again, or is
    failed with the reason after LOUPE_WORK_MAX_ATTEMPTS attempts; queued work not picked up for
    LOUPE_WORK_RESEND_SECONDS is sent again. Each change is one conditional UPDATE (compare-and-set on
    status and heartbeat), so two sweeps, or a sweep and a live worker, never both act on one row.
    (With acks_late Redis would also redeliver a dead worker's message, but only after the visibility
    timeout: the sweep is the fast path.)"""
    now = now or timezone.now()
    sender = sender or Sender()
    stale = _silent_since(now - timedelta(seconds=settings.LOUPE_HEARTBEAT_STALE_SECONDS))
    max_attempts = settings.LOUPE_WORK_MAX_ATTEMPTS
    counts = {"requeued": 0, "failed": 0, "resent": 0}

    silent = model.objects.filter(stale, status=running).annotate(
        _alive_at=Coalesce("heartbeat_at", "started_at", "created_at")
    )
    for pk, attempts, alive_at in silent.values_list("pk", "attempts", "_alive_at"):
        quiet = int((now - alive_at).total_seconds())
        same = model.objects.filter(stale, pk=pk, status=running, attempts=attempts)  # compare-and-set
        if attempts >= max_attempts:
            reason = (
                f"The worker stopped (no heartbeat for {quiet} s) on attempt {attempts} of {max_attempts}; "
                f"not retried again."
            )
            if same.update(status=failed, error=reason, finished_at=now):
                counts["failed"] += 1
                logger.error("%s %s failed: %s", what, pk, reason)
            continue
        reason = f"The worker stopped (no heartbeat for {quiet} s) on attempt {attempts}; queued again."
        if same.update(status=queued, heartbeat_at=now, error=reason):
            counts["requeued"] += 1
            logger.warning("%s %s: %s", what, pk, reason)
            sender.send(task, pk)

    unsent = _silent_since(now - timedelta(seconds=settings.LOUPE_WORK_RESEND_SECONDS))
    for pk in model.objects.filter(unsent, status=queued).order_by("pk").values_list("pk", flat=True):
        if not sender.broker_ok:
            break
        if model.objects.filter(unsent, pk=pk, status=queued).update(heartbeat_at=now) and sender.send(task, pk):
            counts["resent"] += 1
    return counts
