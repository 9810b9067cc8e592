"""Undoing a reviewer's decision: the history stays append-only, the previous state comes back."""

import csv
import io
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from common.errors import Conflict, Forbidden
from labeling.models import (
    Assignment,
    GroundTruth,
    GuidelineRevision,
    Item,
    ItemStatus,
    LabelChange,
    LabelClass,
    ReviewDecision,
    Role,
)
from labeling.selectors.export import label_history_bounds, label_history_pages
from labeling.services import review_undo
from labeling.services.export import encode_delta
from labeling.services.ground_truth import ground_truth_set
from labeling.services.quality.runs import quality_decisions
from labeling.services.resolution import item_resolve, review_next
from labeling.services.review_undo import item_resolve_undo
from tests.labeling.factories import UserFactory, add_member
from tests.labeling.services.test_resolution import disputed_project, reviewer_of


def history(item):
    return list(
        LabelChange.objects.filter(item=item).order_by("seq").values_list("seq", "label", "previous_label", "method")
    )


@pytest.mark.django_db
def test_undo_of_a_first_decision_retracts_it_and_gives_the_item_back():
    project, _, items = disputed_project()
    reviewer = reviewer_of(project)
    lease = review_next(project=project, reviewer=reviewer)
    item = lease.item
    res = item_resolve(item=item, reviewer=reviewer, label="c1", note="why")
    nxt = review_next(project=project, reviewer=reviewer)  # the page leases the next item at once
    assert nxt.item_id != item.pk

    undo = item_resolve_undo(item=item, user=reviewer)

    assert (undo.change.label, undo.change.previous_label, undo.change.method) == ("", "c1", "retracted")
    assert undo.change.seq == res.change.seq + 1
    assert history(item)[-2:] == [
        (res.change.seq, "c1", "", "adjudicated"),
        (res.change.seq + 1, "", "c1", "retracted"),
    ]
    assert not GroundTruth.objects.filter(item=item).exists()
    assert Item.objects.get(pk=item.pk).status == ItemStatus.DISPUTED
    # The undone item is the reviewer's current lease again; the next one went back to the queue.
    assert review_next(project=project, reviewer=reviewer).item_id == item.pk
    assert Assignment.objects.get(pk=nxt.pk).status == "expired"
    assert ReviewDecision.objects.get(item=item).undone_by == reviewer


@pytest.mark.django_db
def test_undo_restores_the_previous_ground_truth_and_conflict_status():
    project, _, items = disputed_project(run=False)
    item = items[0]
    imported_at = timezone.now() - timedelta(days=3)
    ground_truth_set(
        item=item,
        label="c0",
        method="imported",
        source="crm",
        model_version="v9",
        annotators=(1234,),
        status=ItemStatus.CONFLICT,
        decided_at=imported_at,
    )
    reviewer = reviewer_of(project)
    res = item_resolve(item=Item.objects.get(pk=item.pk), reviewer=reviewer, label="c2")
    assert Item.objects.get(pk=item.pk).status == ItemStatus.RESOLVED

    undo = item_resolve_undo(item=item, user=reviewer)

    gt = GroundTruth.objects.get(item=item)
    assert (gt.label, gt.method, gt.source, gt.decided_at) == ("c0", "imported", "crm", imported_at)
    assert Item.objects.get(pk=item.pk).status == ItemStatus.CONFLICT
    assert history(item) == [
        (res.change.seq - 1, "c0", "", "imported"),
        (res.change.seq, "c2", "c0", "adjudicated"),
        (res.change.seq + 1, "c0", "c2", "imported"),
    ]
    restored = LabelChange.objects.get(item=item, seq=undo.change.seq)
    assert (restored.annotators, restored.model_version, restored.actor_id) == ([1234], "v9", reviewer.pk)
    assert undo.lease is not None and undo.lease.status == "active"


@pytest.mark.django_db
def test_undo_conflicts_twice_when_nothing_to_undo_after_the_window_and_after_a_change(settings):
    project, _, items = disputed_project(run=False)
    reviewer = reviewer_of(project)
    with pytest.raises(Conflict) as exc:
        item_resolve_undo(item=items[0], user=reviewer)
    assert exc.value.code == "nothing_to_undo"

    item_resolve(item=items[0], reviewer=reviewer, label="c1")
    item_resolve_undo(item=items[0], user=reviewer)
    before = history(items[0])
    with pytest.raises(Conflict) as exc:
        item_resolve_undo(item=items[0], user=reviewer)
    assert exc.value.code == "already_undone"
    assert history(items[0]) == before

    item_resolve(item=items[1], reviewer=reviewer, label="c1")
    later = timezone.now() + timedelta(seconds=settings.LOUPE_REVIEW_UNDO_SECONDS + 1)
    with mock.patch.object(review_undo.timezone, "now", return_value=later):
        with pytest.raises(Conflict) as exc:
            item_resolve_undo(item=items[1], user=reviewer)
    assert exc.value.code == "undo_expired" and "Too late to undo" in exc.value.message
    assert GroundTruth.objects.get(item=items[1]).label == "c1"

    item_resolve(item=items[2], reviewer=reviewer, label="c1")
    ground_truth_set(item=items[2], label="c0", method="imported", status=ItemStatus.CONFLICT)
    with pytest.raises(Conflict) as exc:
        item_resolve_undo(item=items[2], user=reviewer)
    assert exc.value.code == "changed_since"
    assert GroundTruth.objects.get(item=items[2]).label == "c0"


@pytest.mark.django_db
def test_only_the_deciding_reviewer_or_a_manager_may_undo():
    project, manager, items = disputed_project(run=False)
    reviewer, other = reviewer_of(project), reviewer_of(project)
    item_resolve(item=items[0], reviewer=reviewer, label="c1")
    with pytest.raises(Forbidden):
        item_resolve_undo(item=items[0], user=other)
    assert GroundTruth.objects.get(item=items[0]).label == "c1"
    undo = item_resolve_undo(item=items[0], user=manager)
    assert undo.change.method == "retracted"
    assert Assignment.objects.get(item=items[0], annotator=manager, kind="review").status == "active"


@pytest.mark.django_db
def test_undo_takes_the_note_out_of_the_guideline_unless_it_changed_since():
    project, _, items = disputed_project(run=False)
    reviewer = reviewer_of(project)
    before = LabelClass.objects.get(project=project, key="c2").guideline
    item_resolve(item=items[0], reviewer=reviewer, label="c2", note="Refunds go here.", append_to_guideline=True)
    undo = item_resolve_undo(item=items[0], user=reviewer)
    lc = LabelClass.objects.get(project=project, key="c2")
    assert lc.guideline == before
    assert undo.guideline_kept == ""
    rev = GuidelineRevision.objects.get(pk=undo.guideline_revision.pk)
    assert (rev.text, rev.author_id) == (before, reviewer.pk) and rev.note.startswith("Undone")

    item_resolve(item=items[1], reviewer=reviewer, label="c2", note="Returns too.", append_to_guideline=True)
    edited = LabelClass.objects.get(pk=lc.pk).guideline + "\n- Edited by a manager."
    LabelClass.objects.filter(pk=lc.pk).update(guideline=edited)
    undo = item_resolve_undo(item=items[1], user=reviewer)
    assert undo.guideline_revision is None and "edited after this decision" in undo.guideline_kept
    assert LabelClass.objects.get(pk=lc.pk).guideline == edited
    assert undo.change.method == "retracted"


@pytest.mark.django_db
def test_retractions_are_export_rows_also_in_compact_deltas():
    project, _, items = disputed_project(run=False)
    reviewer = reviewer_of(project)
    item_resolve(item=items[0], reviewer=reviewer, label="c1")
    item_resolve(item=items[1], reviewer=reviewer, label="c2")
    item_resolve_undo(item=items[0], user=reviewer)

    bounds = label_history_bounds(project_id=project.pk, since=0)
    full = [
        r[:5] for page in label_history_pages(project_id=project.pk, since=0, until=bounds.until) for r in page.rows
    ]
    assert [r[1:5] for r in full] == [
        ("d0", "c1", "", "adjudicated"),
        ("d1", "c2", "", "adjudicated"),
        ("d0", "", "c1", "retracted"),
    ]
    compact = [
        r[1:5]
        for page in label_history_pages(
            project_id=project.pk, since=0, until=bounds.until, compact=True, horizon=bounds.head
        )
        for r in page.rows
    ]
    assert compact == [("d1", "c2", "", "adjudicated"), ("d0", "", "c1", "retracted")]

    def encoded(fmt):
        pages = label_history_pages(project_id=project.pk, since=0, until=bounds.until)
        return b"".join(encode_delta(fmt=fmt, pages=pages, next_cursor="lc1_x")).decode()

    lines = [json.loads(line) for line in encoded("jsonl").splitlines()]
    assert lines[2]["label"] == "" and lines[2]["previous_label"] == "c1" and lines[2]["method"] == "retracted"
    rows = list(csv.DictReader(io.StringIO(encoded("csv"))))
    assert (rows[2]["label"], rows[2]["previous_label"], rows[2]["method"]) == ("", "c1", "retracted")
    assert json.loads(encoded("json"))["results"][2]["method"] == "retracted"


@pytest.mark.django_db
def test_calibration_does_not_count_an_undone_decision():
    project, _, items = disputed_project()
    reviewer = reviewer_of(project)
    item_resolve(item=items[0], reviewer=reviewer, label="c1")
    item_resolve(item=items[1], reviewer=reviewer, label="c1")
    assert quality_decisions(project_id=project.pk)[3] == 2
    item_resolve_undo(item=items[0], user=reviewer)
    assert quality_decisions(project_id=project.pk)[3] == 1


@pytest.mark.django_db
def test_a_decision_that_changes_nothing_records_nothing_to_undo():
    project, _, items = disputed_project(run=False)
    reviewer = reviewer_of(project)
    item_resolve(item=items[0], reviewer=reviewer, label="c1")
    again = item_resolve(item=items[0], reviewer=add_member(project, UserFactory(), Role.REVIEWER), label="c1")
    assert again.change is None and again.decision is None
    assert ReviewDecision.objects.filter(item=items[0]).count() == 1
