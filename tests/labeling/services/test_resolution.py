"""The review queue: leases on the most doubtful items, resolution, guideline refinement."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from common.errors import Conflict, ValidationFailed
from labeling.models import (
    Assignment,
    GroundTruth,
    GuidelineRevision,
    Item,
    ItemStatus,
    LabelChange,
    LabelClass,
    QualityItemResult,
    Role,
)
from labeling.services.quality import runs as quality_service
from labeling.services.quality.runs import quality_run_execute, quality_run_request
from labeling.services.resolution import item_resolve, review_next, review_skip
from tests.labeling.factories import UserFactory, add_member, annotate, annotators, crowd_project


def disputed_project(n=6, *, run=True):
    """n disputed items whose quality differs (more or less agreement), scored by a run that sends
    every one of them to review (threshold 1.0, no annotator left to ask)."""
    project, manager = crowd_project(k=3, accept_threshold=1.0, max_annotations_per_item=3)
    a, b, c = annotators(project, 3)
    items = []
    for i in range(n):
        it = Item.objects.create(project=project, external_id=f"d{i}", required_annotations=3)
        third = "c1" if i % 2 else "c2"  # 2-1 splits and 3-way splits
        annotate(it, [(a, "c0"), (b, "c1"), (c, third)])
        items.append(it)
    if run:
        with mock.patch.object(quality_service, "_enqueue"):
            r = quality_run_request(project_id=project.pk)
        r = quality_run_execute(run_id=r.pk)
        assert r.to_review == n
    return project, manager, items


def reviewer_of(project):
    return add_member(project, UserFactory(), Role.REVIEWER)


@pytest.mark.django_db
def test_review_next_leases_the_lowest_quality_item_and_returns_the_same_lease_while_held():
    project, _, items = disputed_project()
    reviewer = reviewer_of(project)
    qualities = dict(QualityItemResult.objects.values_list("item_id", "quality"))
    lease = review_next(project=project, reviewer=reviewer)
    assert lease.kind == "review" and lease.status == "active"
    assert qualities[lease.item_id] == min(qualities.values())
    again = review_next(project=project, reviewer=reviewer)
    assert again.pk == lease.pk and again.item_id == lease.item_id
    other = review_next(project=project, reviewer=reviewer_of(project))
    assert other.item_id != lease.item_id
    assert qualities[other.item_id] >= qualities[lease.item_id]


@pytest.mark.django_db
def test_an_expired_review_lease_frees_its_item_without_any_cron():
    project, _, items = disputed_project(n=1)
    first, second = reviewer_of(project), reviewer_of(project)
    lease = review_next(project=project, reviewer=first)
    assert review_next(project=project, reviewer=second) is None  # held
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = review_next(project=project, reviewer=second)
    assert taken is not None and taken.item_id == lease.item_id
    # The first reviewer's lease is gone: asking again re-leases nothing (the item is held by second).
    assert review_next(project=project, reviewer=first) is None


@pytest.mark.django_db
def test_an_expired_lease_of_my_own_is_renewed_not_duplicated():
    project, _, items = disputed_project(n=1)
    reviewer = reviewer_of(project)
    lease = review_next(project=project, reviewer=reviewer)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    again = review_next(project=project, reviewer=reviewer)
    assert again.pk == lease.pk and again.expires_at > timezone.now()
    assert Assignment.objects.filter(item=lease.item, annotator=reviewer, kind="review").count() == 1


@pytest.mark.django_db
def test_skipped_items_go_to_other_reviewers_and_unscored_items_come_last():
    project, _, items = disputed_project(n=2)
    late = Item.objects.create(project=project, external_id="late", required_annotations=3, status=ItemStatus.DISPUTED)
    reviewer, other = reviewer_of(project), reviewer_of(project)
    first = review_next(project=project, reviewer=reviewer)
    review_skip(item=first.item, reviewer=reviewer)
    second = review_next(project=project, reviewer=reviewer)
    assert second.item_id != first.item_id and second.item_id != late.pk
    assert review_next(project=project, reviewer=other).item_id == first.item_id
    review_skip(item=second.item, reviewer=reviewer)
    assert review_next(project=project, reviewer=reviewer).item_id == late.pk  # not scored by any run yet
    with pytest.raises(Conflict):
        review_skip(item=items[0], reviewer=UserFactory())


@pytest.mark.django_db
def test_conflict_items_are_reviewed_too_and_the_queue_can_be_empty():
    project, _, _ = disputed_project(n=0, run=False)
    reviewer = reviewer_of(project)
    assert review_next(project=project, reviewer=reviewer) is None
    conflict = Item.objects.create(project=project, external_id="c", status=ItemStatus.CONFLICT)
    assert review_next(project=project, reviewer=reviewer).item_id == conflict.pk


@pytest.mark.django_db
def test_resolve_writes_adjudicated_ground_truth_with_reviewer_and_note(django_capture_on_commit_callbacks):
    project, _, items = disputed_project(n=2)
    reviewer = reviewer_of(project)
    lease = review_next(project=project, reviewer=reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        res = item_resolve(item=lease.item, reviewer=reviewer, label="c1", note="refund = billing")
    gt = GroundTruth.objects.get(item=lease.item)
    assert (gt.label, gt.method, gt.decided_by_id, gt.note) == ("c1", "adjudicated", reviewer.pk, "refund = billing")
    change = LabelChange.objects.get(project=project, seq=res.change.seq)
    assert (change.actor_id, change.method, change.note, change.label) == (
        reviewer.pk,
        "adjudicated",
        "refund = billing",
        "c1",
    )
    assert len(change.annotators) == 1  # the annotator who chose c1
    assert Item.objects.get(pk=lease.item_id).status == "resolved"
    assert Assignment.objects.get(pk=lease.pk).status == "submitted"
    assert res.guideline_revision is None
    nxt = review_next(project=project, reviewer=reviewer)
    assert nxt.item_id != lease.item_id


@pytest.mark.django_db
def test_resolving_can_append_the_note_to_the_labels_guideline():
    project, _, items = disputed_project(n=1)
    reviewer = reviewer_of(project)
    before = LabelClass.objects.get(project=project, key="c2").guideline
    res = item_resolve(
        item=items[0], reviewer=reviewer, label="c2", note="Mentions of a refund go here.", append_to_guideline=True
    )
    lc = LabelClass.objects.get(project=project, key="c2")
    assert lc.guideline == f"{before}\n- Mentions of a refund go here."
    rev = GuidelineRevision.objects.get(pk=res.guideline_revision.pk)
    assert (rev.label_id, rev.text, rev.author_id) == (lc.pk, lc.guideline, reviewer.pk)
    assert "d0" in rev.note
    assert GuidelineRevision.objects.filter(label=lc).count() == 2  # the original and this one


@pytest.mark.django_db
def test_bad_resolutions_write_nothing():
    project, _, items = disputed_project(n=1)
    reviewer = reviewer_of(project)
    with pytest.raises(ValidationFailed) as exc:
        item_resolve(item=items[0], reviewer=reviewer, label="nope")
    assert "label" in exc.value.fields
    with pytest.raises(ValidationFailed) as exc:
        item_resolve(item=items[0], reviewer=reviewer, label="c1", append_to_guideline=True)
    assert "append_to_guideline" in exc.value.fields
    assert not GroundTruth.objects.filter(item=items[0]).exists()
    assert GuidelineRevision.objects.filter(label__project=project).count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_reviewers_never_get_the_same_item(postgres_tx):
    project, _, items = disputed_project(n=8)
    reviewers = [reviewer_of(project) for _ in range(6)]
    barrier = threading.Barrier(len(reviewers))
    got, errors = [], []

    def work(r):
        try:
            barrier.wait()
            lease = review_next(project=project, reviewer=r)
            got.append(lease.item_id if lease else None)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert None not in got and len(set(got)) == len(reviewers)
    assert Assignment.objects.filter(kind="review", status="active").count() == len(reviewers)
