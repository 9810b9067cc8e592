import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bugqueue.models import Bug, BugEvent, BugOccurrence, BugStatus, FailureExample
from bugqueue.services.grouping import default_fingerprint, normalize_title
from bugqueue.services.occurrences import occurrences_reconcile
from bugqueue.services.report import bug_report
from common.db import sql
from labeling.models import Item
from tests.bugqueue.factories import ingest_items, make_bug, report, resolve, run_threads, update
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_title_normalization_groups_case_and_whitespace():
    assert normalize_title("  Wrong   LABEL\tfor  Refunds ") == "wrong label for refunds"
    assert default_fingerprint(kind="user_report", title="Wrong label") == default_fingerprint(
        kind="user_report", title="  wrong   LABEL "
    )
    assert default_fingerprint(kind="user_report", title="x") != default_fingerprint(kind="data_quality", title="x")


def test_same_title_groups_into_one_bug_and_counts_occurrences(project):
    first = report(project, title="Refunds routed to shipping")
    second = report(project, title="refunds  routed to SHIPPING")
    third = report(project, title="Refunds routed to shipping", kind="data_quality")  # another kind: another bug
    assert first.created and not second.created and third.created
    assert second.bug.pk == first.bug.pk and second.occurrences == 2
    bug = Bug.objects.get(pk=first.bug.pk)
    assert bug.occurrences == 2 and bug.last_seen >= bug.first_seen
    assert BugOccurrence.objects.filter(bug=bug).count() == 2
    assert list(BugEvent.objects.filter(bug=bug).values_list("field", flat=True)) == ["created"]


def test_same_fingerprint_in_two_projects_makes_two_bugs(project):
    other = ProjectFactory()
    a = report(project, fingerprint="fp-1")
    b = report(other, fingerprint="fp-1")
    assert a.created and b.created and a.bug.pk != b.bug.pk


def test_failures_count_as_occurrences_and_payloads_become_items(project):
    items = ingest_items(project, 2)
    result = report(
        project,
        fingerprint="fp",
        failures=[
            {
                "external_id": items[0].external_id,
                "predicted_label": "pos",
                "expected_label": "neg",
                "model_version": "v1",
            },
            {"payload": {"text": "a brand new input"}, "predicted_label": "pos"},
            {"payload": {"text": "a brand new input"}, "predicted_label": "pos"},  # same payload: same item
        ],
    )
    assert result.created and result.occurrences == 3
    failures = list(FailureExample.objects.filter(bug=result.bug).order_by("id"))
    assert failures[0].item_id == items[0].pk and failures[0].expected_label == "neg"
    # the prediction time comes from the item's production prediction for that model version
    assert failures[0].predicted_at == items[0].predictions.get(model_version="v1").predicted_at
    new_item = Item.objects.get(pk=failures[1].item_id)
    assert new_item.payload == {"text": "a brand new input"} and new_item.status == "open"  # in the labeling queue
    assert failures[2].item_id == new_item.pk and failures[1].expected_label is None
    assert Item.objects.filter(project=project).count() == 3


# --- regression rule --------------------------------------------------------------------------
def _resolved_bug(project, *, model_version="v1"):
    items = ingest_items(project, 3, model_version=model_version)
    bug = make_bug(
        project,
        fingerprint="fp-reg",
        kind="failed_prediction",
        failures=[
            {
                "external_id": items[0].external_id,
                "predicted_label": "pos",
                "expected_label": "neg",
                "model_version": model_version,
                "predicted_at": (timezone.now() - timedelta(days=5)).isoformat(),
            }
        ],
    )
    update(bug, status="triaged")
    return resolve(bug), items


def test_failure_predicted_after_the_resolution_reopens_as_regression(project):
    bug, items = _resolved_bug(project)
    later = (timezone.now() + timedelta(seconds=1)).isoformat()
    result = report(
        project,
        fingerprint="fp-reg",
        kind="failed_prediction",
        failures=[
            {
                "external_id": items[1].external_id,
                "predicted_label": "pos",
                "expected_label": "neg",
                "model_version": "v1",
                "predicted_at": later,
            }
        ],
    )
    bug.refresh_from_db()
    assert result.bug.pk == bug.pk and result.regressed and not result.created
    assert bug.status == BugStatus.NEW and bug.regressed and bug.reopened_at is not None and bug.occurrences == 2
    assert bug.resolution == "" and bug.resolved_at is not None  # no longer resolved; when it was stays known
    fields = list(BugEvent.objects.filter(bug=bug).values_list("field", "from_value", "to_value"))
    assert ("status", "resolved", "new") in fields and ("regressed", "false", "true") in fields


def test_late_label_for_an_old_prediction_never_reopens(project):
    bug, items = _resolved_bug(project)
    # predicted before the resolution, even by another model version: not newer, stays resolved
    before = (bug.resolved_at - timedelta(hours=1)).isoformat()
    result = report(
        project,
        fingerprint="fp-reg",
        kind="failed_prediction",
        failures=[
            {
                "external_id": items[1].external_id,
                "predicted_label": "pos",
                "expected_label": "neg",
                "model_version": "v2",
                "predicted_at": before,
            }
        ],
    )
    bug.refresh_from_db()
    assert result.bug.pk == bug.pk and not result.regressed
    assert bug.status == BugStatus.RESOLVED and not bug.regressed
    assert bug.occurrences == 2 and bug.failures.count() == 2  # the evidence is kept on the resolved bug


def test_without_prediction_time_only_another_model_version_reopens(project):
    bug, items = _resolved_bug(project)
    assert bug.resolved_model_version == "v1"
    same = report(project, fingerprint="fp-reg", kind="failed_prediction", model_version="v1")
    assert not same.regressed and Bug.objects.get(pk=bug.pk).status == BugStatus.RESOLVED
    newer = report(project, fingerprint="fp-reg", kind="failed_prediction", model_version="v2")
    assert newer.regressed and Bug.objects.get(pk=bug.pk).status == BugStatus.NEW


def test_report_without_failures_after_resolution_reopens(project):
    bug = make_bug(project, fingerprint="plain")
    resolve(bug)
    result = report(project, fingerprint="plain")
    assert result.regressed and result.bug.pk == bug.pk


def test_wont_fix_takes_occurrences_and_stays_closed(project):
    bug = make_bug(project, fingerprint="ignored")
    resolve(bug, resolution="wont_fix")
    result = report(project, fingerprint="ignored")
    bug.refresh_from_db()
    assert result.bug.pk == bug.pk and not result.regressed
    assert bug.status == BugStatus.WONT_FIX and bug.occurrences == 2


def test_duplicate_sends_reports_to_the_bug_it_duplicates(project):
    canonical = make_bug(project, fingerprint="canonical")
    dup = make_bug(project, fingerprint="dup")
    resolve(dup, resolution="duplicate", duplicate_of=canonical.pk)
    result = report(project, fingerprint="dup")
    assert result.bug.pk == canonical.pk and Bug.objects.get(pk=canonical.pk).occurrences == 2
    assert Bug.objects.get(pk=dup.pk).occurrences == 1


def test_reconcile_recomputes_and_repairs_drift(project, caplog):
    bug = make_bug(project)
    report(project, title=bug.title)
    assert occurrences_reconcile() == []
    Bug.objects.filter(pk=bug.pk).update(occurrences=99)
    drift = occurrences_reconcile()
    assert drift == [(bug.pk, 99, 2)]
    assert Bug.objects.get(pk=bug.pk).occurrences == 2
    assert "drifted" in caplog.text


def test_a_report_does_not_overwrite_triage_decisions(project):
    bug = make_bug(project, title="Same", tags=["label_flip"], priority="p3")
    update(bug, tags=[], priority="p1")  # the triage removed the tag and raised the priority
    again = report(project, title="Same", tags=["label_flip", "data_drift"], priority="p3", description="other")
    bug.refresh_from_db()
    assert again.bug.pk == bug.pk and bug.priority == "p1" and bug.tags.count() == 0 and bug.description == ""


# --- race-free grouping on PostgreSQL: real threads, each with its own connection ----------------
@pytest.mark.services
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


@pytest.mark.services
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
    while time.monotonic() < deadline and not blocked:
        blocked = (
            sql.fetchvalue(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO \"bugqueue_bug\"%%'"
            )
            > 0
        )
    release_a.set()
    ta.join(30)
    tb.join(30)
    assert blocked, "B never waited on A's insert"
    assert results["a"].created and not results["b"].created
    assert results["b"].bug.pk == results["a"].bug.pk and results["b"].occurrences == 2
    assert Bug.objects.filter(project=project).count() == 1


@pytest.mark.services
def test_concurrent_regressions_reopen_once_and_count_every_report(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    bug = bug_report(project=project, reporter=user, title="x", kind="other", fingerprint="fp").bug
    resolve(bug, user)
    threads = 6

    run_threads(
        threads, lambda i: bug_report(project=project, reporter=user, title="x", kind="other", fingerprint="fp")
    )
    bug.refresh_from_db()
    assert Bug.objects.filter(project=project).count() == 1
    assert bug.status == "new" and bug.regressed and bug.occurrences == 1 + threads
    assert BugEvent.objects.filter(bug=bug, field="regressed").count() == 1
