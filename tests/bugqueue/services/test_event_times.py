"""Bugs filed automatically are dated by their failures (the predictions' times), not by the filing:
first/last seen, the occurrence rows and the chart; the filing time stays on the bug (created_at).
The data migration re-dates bugs filed before."""

import re
from datetime import UTC, timedelta
from importlib import import_module

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone

from bugqueue.models import Bug, BugOccurrence, FailureExample
from bugqueue.selectors.bugs import bug_detail
from bugqueue.services.autofile import failures_file_pending
from labeling.models import LabelChange
from labeling.services.ground_truth import Decision, ground_truth_set_many
from labeling.services.ingestion import items_ingest

pytestmark = pytest.mark.django_db

AGES = (3, 5, 9, 14, 21)  # days since the predictions were made


def _old_predictions_wrong(project):
    now = timezone.now()
    items_ingest(
        project=project,
        rows=[
            {
                "external_id": f"old-{age}-{i}",
                "payload": {"text": f"ticket {age} {i}"},
                "prediction": {
                    "model_version": "v1",
                    "label": "pos",
                    "predicted_at": (now - timedelta(days=age)).isoformat(),
                },
            }
            for age in AGES
            for i in range(2)
        ],
    )
    items = list(project.items.order_by("id"))
    ground_truth_set_many(project_id=project.pk, decisions=[Decision(it.pk, "neg", "imported") for it in items])
    failures_file_pending(project_id=project.pk)
    return now, Bug.objects.get(project=project)


def test_autofiled_bug_is_seen_when_its_predictions_were_made(project, user):
    now, bug = _old_predictions_wrong(project)
    assert bug.occurrences == 10
    assert abs(bug.first_seen - (now - timedelta(days=21))) < timedelta(minutes=1)
    assert abs(bug.last_seen - (now - timedelta(days=3))) < timedelta(minutes=1)
    assert bug.created_at >= now  # the filing time, kept apart
    days = {(now - timedelta(days=age)).astimezone(UTC).date().isoformat() for age in AGES}
    series = bug_detail(bug=bug, user=user)["series"]
    assert {row["day"] for row in series} == days and all(row["count"] == 2 for row in series)
    assert sum(BugOccurrence.objects.filter(bug=bug).values_list("count", flat=True)) == 10

    c = Client()
    c.force_login(user)
    html = c.get(f"/bugs/{bug.pk}").content.decode()
    shown = dict(re.findall(r'<dd id="(first-seen|last-seen|filed-at)"[^>]*>([^<]*)</dd>', html))
    assert shown["first-seen"] == "3\xa0weeks ago" and shown["last-seen"] == "3\xa0days ago"
    assert re.fullmatch(r"filed (now|\d+\xa0(seconds?|minutes?) ago)", shown["filed-at"]), shown["filed-at"]


def test_a_report_without_prediction_time_is_dated_by_its_ground_truth_then_its_filing(project):
    from bugqueue.services.grouping import BugDraft, FailureData, bug_file

    now = timezone.now()
    truth_at, predicted_at = now - timedelta(days=2), now - timedelta(days=6)
    bug = bug_file(
        project_id=project.pk,
        fingerprint="fp",
        draft=BugDraft(title="t", kind="failed_prediction"),
        failures=[
            FailureData(item_id=None, predicted_at=predicted_at, truth_at=truth_at),
            FailureData(item_id=None, truth_at=truth_at),
            FailureData(item_id=None),
        ],
        now=now,
    ).bug
    got = sorted(FailureExample.objects.filter(bug=bug).values_list("occurred_at", flat=True))
    assert got == [predicted_at, truth_at, now]
    assert (bug.first_seen, bug.last_seen) == (predicted_at, now)
    # A later filing of an even older failure widens first_seen and never narrows last_seen.
    older = now - timedelta(days=30)
    again = bug_file(
        project_id=project.pk,
        fingerprint="fp",
        draft=BugDraft(title="t", kind="failed_prediction"),
        failures=[FailureData(item_id=None, predicted_at=older)],
        now=now + timedelta(hours=1),
    ).bug
    again.refresh_from_db()
    assert (again.first_seen, again.last_seen, again.occurrences) == (older, now, 4)


def test_data_migration_redates_bugs_filed_at_the_filing_time(project):
    _, bug = _old_predictions_wrong(project)
    # As the filer used to write them: everything at the filing time.
    filed_at = timezone.now() - timedelta(minutes=5)
    FailureExample.objects.filter(bug=bug).update(occurred_at=filed_at, created_at=filed_at)
    FailureExample.objects.filter(bug=bug, item__external_id__startswith="old-21-").update(predicted_at=None)
    BugOccurrence.objects.filter(bug=bug).delete()
    BugOccurrence.objects.create(bug=bug, count=10, seen_at=filed_at)
    BugOccurrence.objects.create(bug=bug, count=1, seen_at=filed_at - timedelta(hours=1))  # a report, no failure
    Bug.objects.filter(pk=bug.pk).update(first_seen=filed_at - timedelta(hours=1), last_seen=filed_at, occurrences=11)

    migration = import_module("bugqueue.migrations.0007_bug_event_times")
    migration.date_events_by_their_own_time(apps, None)

    bug.refresh_from_db()
    truth_at = LabelChange.objects.filter(project=project).order_by("seq").values_list("changed_at", flat=True)[0]
    old = FailureExample.objects.filter(bug=bug, item__external_id__startswith="old-21-")
    assert set(old.values_list("occurred_at", flat=True)) == {truth_at}  # no prediction time: the ground truth's
    assert bug.last_seen == truth_at
    assert abs(bug.first_seen - (timezone.now() - timedelta(days=14))) < timedelta(minutes=1)
    rows = list(BugOccurrence.objects.filter(bug=bug).order_by("seen_at").values_list("count", flat=True))
    # 4 days of predictions (2 each), the report kept as it was, the 2 dated by their ground truth
    assert rows == [2, 2, 2, 2, 1, 2]
