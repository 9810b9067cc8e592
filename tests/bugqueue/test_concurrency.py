"""Race-free grouping on PostgreSQL: real threads, each with its own connection."""

import threading
import time

import pytest
from django.db import connection, connections

from bugqueue.models import Bug, BugEvent, BugOccurrence, FailureExample
from bugqueue.services.autofile import failures_file_pending
from bugqueue.services.report import bug_report
from labeling.services.ground_truth import Decision, ground_truth_set_many
from tests.bugqueue.factories import ingest_items, resolve
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.services


def run_threads(n, target):
    errors, barrier = [], threading.Barrier(n)

    def wrapper(i):
        try:
            barrier.wait(timeout=30)
            target(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrapper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_many_concurrent_reports_of_one_fingerprint_make_one_bug(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    threads, per_thread = 8, 25

    def report(i):
        for _ in range(per_thread):
            bug_report(project=project, reporter=user, title="Same failure", kind="other", fingerprint="one")

    run_threads(threads, report)
    bug = Bug.objects.get(project=project)
    assert bug.occurrences == threads * per_thread
    assert BugOccurrence.objects.filter(bug=bug).count() == threads * per_thread
    assert BugEvent.objects.filter(bug=bug, field="created").count() == 1


def test_a_report_racing_an_uncommitted_insert_falls_back_to_the_winner(postgres_tx):
    """B's INSERT waits on A's uncommitted bug, fails on the unique constraint when A commits,
    and B's report goes into A's bug: the constraint decides, not a check."""
    user = UserFactory()
    project = ProjectFactory(creator=user)
    a_inserted, release_a, results = threading.Event(), threading.Event(), {}

    def a():
        from django.db import transaction

        try:
            with transaction.atomic():
                results["a"] = bug_report(project=project, reporter=user, title="A", kind="other", fingerprint="fp")
                a_inserted.set()
                release_a.wait(30)
        finally:
            connection.close()

    def b():
        try:
            a_inserted.wait(30)
            results["b"] = bug_report(project=project, reporter=user, title="B", kind="other", fingerprint="fp")
        finally:
            connection.close()

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start()
    tb.start()
    # Wait (bounded) until B is blocked on A's transaction, then let A commit.
    blocked, deadline = False, time.monotonic() + 20
    with connection.cursor() as cur:
        while time.monotonic() < deadline and not blocked:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO \"bugqueue_bug\"%%'")
            blocked = cur.fetchone()[0] > 0
    release_a.set()
    ta.join(30)
    tb.join(30)
    assert blocked, "B never waited on A's insert"
    assert results["a"].created and not results["b"].created
    assert results["b"].bug.pk == results["a"].bug.pk and results["b"].occurrences == 2
    assert Bug.objects.filter(project=project).count() == 1


def test_concurrent_regressions_reopen_once_and_count_every_report(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    bug = bug_report(project=project, reporter=user, title="x", kind="other", fingerprint="fp").bug
    resolve(bug, user)
    threads = 6

    run_threads(threads, lambda i: bug_report(project=project, reporter=user, title="x", kind="other", fingerprint="fp"))
    bug.refresh_from_db()
    assert Bug.objects.filter(project=project).count() == 1
    assert bug.status == "new" and bug.regressed and bug.occurrences == 1 + threads
    assert BugEvent.objects.filter(bug=bug, field="regressed").count() == 1


def test_concurrent_filers_of_one_project_file_each_failure_once(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    items = ingest_items(project, 400)
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(it.pk, "neg", "imported") for it in items])

    run_threads(4, lambda i: failures_file_pending(project_id=project.pk, batch_size=50))
    assert FailureExample.objects.filter(project=project).count() == 400
    assert Bug.objects.get(project=project).occurrences == 400
