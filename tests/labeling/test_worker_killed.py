"""Integration: a real Celery worker is killed (SIGKILL) in the middle of a quality run or an export
build; the work sweep re-queues the work once its heartbeat stops and a second worker completes it.

The task is held at a known point without any timing: the test holds an ACCESS EXCLUSIVE lock on
the table the task reads first (annotations for a run, the label history for an export), so the
worker claims its row, starts beating and then waits on the lock until it is killed."""

import os
import signal
import time

import psycopg
import pytest

from labeling.models import Annotation, Export, ExportStatus, LabelChange, QualityRun, QualityRunStatus
from labeling.services.export import export_request
from labeling.services.quality.runs import quality_run_request
from labeling.services.sweep import work_sweep
from tests.labeling.factories import annotate, annotators, crowd_project, make_items, resolve
from tests.private_broker import PrivateRedis, celery_on, database_url, start_worker, stop_worker, wait_for

# The worker beats every half second; this process (the sweep) calls a row dead after 3 s of silence.
WORKER_ENV = {"LOUPE_HEARTBEAT_SECONDS": "0.5"}


def quality_work():
    """(model, table its task reads first, running, done, request): the data is written now; `request()`
    asks for the work (enqueued on commit) and returns its id."""
    project, manager = crowd_project()
    users = annotators(project, 3)
    for i in range(6):
        item = project.items.create(external_id=f"i{i}", required_annotations=3)
        annotate(item, [(users[0], "c0"), (users[1], "c1" if i % 2 else "c0"), (users[2], "c0")])
    return (
        QualityRun,
        Annotation._meta.db_table,
        QualityRunStatus.RUNNING,
        QualityRunStatus.DONE,
        lambda: quality_run_request(project_id=project.pk, requested_by=manager).pk,
    )


def export_work():
    project, manager = crowd_project()
    resolve(project, make_items(project, 50), labels=("c0", "c1"))
    return (
        Export,
        LabelChange._meta.db_table,
        ExportStatus.RUNNING,
        ExportStatus.DONE,
        lambda: export_request(project=project, actor=manager)[0].pk,
    )


@pytest.fixture
def broker():
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()


@pytest.mark.parametrize("make_work", [quality_work, export_work], ids=["quality-run", "export-build"])
def test_work_of_a_killed_worker_is_requeued_by_the_sweep_and_completed(
    postgres_tx, broker, settings, make_work, capsys
):
    settings.LOUPE_HEARTBEAT_STALE_SECONDS = 3
    settings.LOUPE_WORK_RESEND_SECONDS = 60
    with celery_on(broker.url):
        hold = psycopg.connect(database_url(), autocommit=False)
        workers = []
        try:
            model, table, running, done, request = make_work()
            broker.client().flushdb()  # only this work's message: the side tasks of writing the data go
            hold.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # before the task can read it
            row = model.objects.filter(pk=request())  # enqueued on commit, to the private broker
            first = start_worker(broker.url, **WORKER_ENV)
            workers.append(first)
            try:
                wait_for(
                    lambda: row.filter(status=running).exists(), timeout=90, what="the first worker to claim the work"
                )
            except AssertionError:
                raise AssertionError(
                    f"not claimed: row {list(row.values('status', 'attempts'))}, broker queue "
                    f"{broker.queued_tasks()}, worker output:\n{stop_worker(first)}"
                ) from None
            wait_for(
                lambda: (
                    row.filter(status=running).values_list("heartbeat_at", flat=True).first()
                    != row.values_list("started_at", flat=True).first()
                ),
                timeout=30,
                what="a heartbeat",
            )

            os.kill(first.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            first.wait(timeout=30)
            hold.rollback()  # the killed worker's database session ends when it next touches its socket

            assert row.get().status == running  # nothing noticed yet: this is what used to stay for an hour
            second = start_worker(broker.url, **WORKER_ENV)
            workers.append(second)
            counts = wait_for(lambda: _requeued(work_sweep()), timeout=30, what="the sweep to re-queue the work")
            requeued_after = time.monotonic() - killed_at
            wait_for(lambda: row.filter(status=done).exists(), timeout=180, what="the second worker to finish")
            recovered_after = time.monotonic() - killed_at
        finally:
            hold.close()
            outputs = [stop_worker(w) for w in workers]
    obj = row.get()
    assert counts["requeued"] == 1 and obj.status == done and obj.attempts == 2 and obj.error == ""
    assert "Traceback" not in outputs[-1], outputs[-1]
    with capsys.disabled():
        print(
            f"\n{make_work.__name__}: re-queued {requeued_after:.1f} s after the kill, done after {recovered_after:.1f} s"
        )


def _requeued(result):
    counts = result["quality_runs"] if result["quality_runs"]["requeued"] else result["exports"]
    return counts if counts["requeued"] else None
