"""Submitting annotations: errors, surplus, completion (unanimous / disputed), counters."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from common.errors import Conflict, NotFound, ValidationFailed
from labeling.models import (
    Annotation,
    AnnotatorProgress,
    Assignment,
    AssignmentStatus,
    GroundTruth,
    Item,
    ItemStatus,
    LabelChange,
)
from labeling.selectors.queue import queue_progress
from labeling.services.annotations import annotation_submit
from labeling.services.queue.claim import assignment_claim_next
from labeling.services.queue.leases import assignment_skip
from tests.labeling.factories import annotators, queue_project


def claim(project, user):
    return assignment_claim_next(project=project, annotator=user)


def submit(c, user, label="pos", **kw):
    return annotation_submit(assignment_id=c.assignment_id, annotator=user, label=label, **kw)


def expire(c):
    Assignment.objects.filter(pk=c.assignment_id).update(expires_at=timezone.now() - timedelta(seconds=1))


@pytest.mark.django_db
def test_unknown_label_is_rejected_and_nothing_is_written(postgres):
    project, _ = queue_project(items=1)
    (a,) = annotators(project, 1)
    c = claim(project, a)
    with pytest.raises(ValidationFailed) as exc:
        submit(c, a, label="nope")
    assert exc.value.fields == {"label": ["Unknown label."]}
    assert not Annotation.objects.exists()
    assert Assignment.objects.get(pk=c.assignment_id).status == AssignmentStatus.ACTIVE
    assert Item.objects.get(pk=c.item_id).annotation_count == 0


@pytest.mark.django_db
def test_someone_elses_assignment_is_not_found(postgres):
    project, _ = queue_project(items=1)
    a, b = annotators(project, 2)
    c = claim(project, a)
    with pytest.raises(NotFound):
        submit(c, b)
    with pytest.raises(NotFound):
        annotation_submit(assignment_id=999_999, annotator=a, label="pos")


@pytest.mark.django_db
def test_submitting_twice_is_a_conflict_and_a_skipped_item_cannot_be_submitted(postgres):
    project, _ = queue_project(items=2)
    (a,) = annotators(project, 1)
    c = claim(project, a)
    submit(c, a)
    with pytest.raises(Conflict) as exc:
        submit(c, a, label="neg")
    assert exc.value.code == "already_submitted"
    assert Annotation.objects.get().label == "pos"
    c2 = claim(project, a)
    assignment_skip(assignment_id=c2.assignment_id, annotator=a)
    with pytest.raises(Conflict) as exc:
        submit(c2, a)
    assert exc.value.code == "already_skipped"


@pytest.mark.django_db
def test_seconds_spent_is_validated(postgres):
    project, _ = queue_project(items=1)
    (a,) = annotators(project, 1)
    c = claim(project, a)
    with pytest.raises(ValidationFailed):
        submit(c, a, seconds_spent=-1)
    assert submit(c, a, seconds_spent=12.5).annotation.seconds_spent == 12.5


@pytest.mark.django_db
def test_unanimous_item_gets_ground_truth_with_history(postgres, django_capture_on_commit_callbacks):
    project, (item,) = queue_project(items=1, overlap=3)
    users = annotators(project, 3)
    leases = [claim(project, u) for u in users]
    assert submit(leases[0], users[0]).item_status == ItemStatus.OPEN
    assert submit(leases[1], users[1]).item_status == ItemStatus.OPEN
    with django_capture_on_commit_callbacks(execute=True):
        out = submit(leases[2], users[2])
    assert out.completed and out.item_status == ItemStatus.RESOLVED
    gt = GroundTruth.objects.get(item=item)
    assert (gt.label, gt.method) == ("pos", "unanimous")
    change = LabelChange.objects.get(item=item)
    assert change.seq == 1 and sorted(change.annotators) == sorted(u.pk for u in users)
    item.refresh_from_db()
    assert (item.status, item.annotation_count) == (ItemStatus.RESOLVED, 3)


@pytest.mark.django_db
def test_disagreement_makes_the_item_disputed_without_ground_truth(postgres):
    project, (item,) = queue_project(items=1, overlap=2)
    a, b = annotators(project, 2)
    ca, cb = claim(project, a), claim(project, b)
    submit(ca, a, label="pos")
    out = submit(cb, b, label="neg")
    assert out.completed and out.item_status == ItemStatus.DISPUTED
    item.refresh_from_db()
    assert item.status == ItemStatus.DISPUTED and not GroundTruth.objects.filter(item=item).exists()


@pytest.mark.django_db
def test_late_submission_on_an_expired_lease_still_counts_while_a_slot_is_free(postgres):
    project, (item,) = queue_project(items=1, overlap=2)
    a, b = annotators(project, 2)
    ca = claim(project, a)
    expire(ca)
    out = submit(ca, a)
    assert not out.annotation.is_surplus
    item.refresh_from_db()
    assert item.annotation_count == 1 and item.status == ItemStatus.OPEN


@pytest.mark.django_db
def test_late_submission_after_the_item_finished_is_kept_as_surplus(postgres):
    project, (item,) = queue_project(items=1, overlap=1)
    a, b = annotators(project, 2)
    ca = claim(project, a)
    expire(ca)
    cb = claim(project, b)
    assert cb.item_id == item.pk  # a's slot was given away
    submit(cb, b, label="neg")
    out = submit(ca, a, label="pos")  # never lost
    assert out.annotation.is_surplus and not out.completed
    item.refresh_from_db()
    assert item.status == ItemStatus.RESOLVED and item.annotation_count == 2
    assert GroundTruth.objects.get(item=item).label == "neg"  # the surplus vote changed nothing
    assert LabelChange.objects.filter(item=item).count() == 1


@pytest.mark.django_db
def test_late_submission_into_a_re_leased_slot_cancels_the_newest_extra_lease(postgres):
    project, (item,) = queue_project(items=1, overlap=2)
    a, b, c = annotators(project, 3)
    ca = claim(project, a)
    cb = claim(project, b)
    expire(ca)
    cc = claim(project, c)  # takes a's freed slot
    out = submit(ca, a)  # a delivers late, the item still needs it
    assert not out.annotation.is_surplus
    states = dict(Assignment.objects.values_list("pk", "status"))
    assert states[cb.assignment_id] == AssignmentStatus.ACTIVE  # the older lease is kept
    assert states[cc.assignment_id] == AssignmentStatus.EXPIRED  # the newest is cancelled
    # The invariant holds: counted annotations + unexpired active leases <= required.
    active = Assignment.objects.filter(item=item, status=AssignmentStatus.ACTIVE, expires_at__gt=timezone.now()).count()
    assert active + Annotation.objects.filter(item=item, is_surplus=False).count() == 2
    # c's work is still accepted, as surplus once the item is complete.
    submit(cb, b)
    out_c = submit(cc, c)
    assert out_c.annotation.is_surplus


@pytest.mark.django_db
def test_finishing_an_item_cancels_its_remaining_leases(postgres):
    project, (item,) = queue_project(items=1, overlap=2)
    a, b, c = annotators(project, 3)
    ca, cb = claim(project, a), claim(project, b)
    expire(ca)
    cc = claim(project, c)
    submit(cb, b)
    submit(ca, a)  # late but counts: the item is complete now
    assert Assignment.objects.get(pk=cc.assignment_id).status == AssignmentStatus.EXPIRED
    assert claim(project, c) is None  # the cancelled lease is not handed back


@pytest.mark.django_db
def test_progress_counts_mine_today_and_open_items(postgres):
    project, items = queue_project(items=4, overlap=1)
    (a,) = annotators(project, 1)
    for _ in range(2):
        submit(claim(project, a), a)
    p = queue_progress(project_id=project.pk, annotator=a)
    assert (p.done_by_me, p.done_today, p.remaining, p.remaining_capped) == (2, 2, 2, False)
    tomorrow = timezone.now() + timedelta(days=1)
    assert queue_progress(project_id=project.pk, annotator=a, now=tomorrow).done_today == 0
    submit(claim(project, a), a, now=tomorrow)
    row = AnnotatorProgress.objects.get(annotator=a)
    assert (row.submitted, row.day_submitted, row.day) == (3, 1, tomorrow.date())


@pytest.mark.django_db
def test_reopened_item_is_served_first_and_evaluated_on_its_extra_annotation(postgres):
    project, (item, other) = queue_project(items=2, overlap=2)
    a, b, c = annotators(project, 3)
    submit(claim(project, a), a, label="pos")
    submit(claim(project, b), b, label="neg")
    item.refresh_from_db()
    assert item.status == ItemStatus.DISPUTED
    # the quality issue reopens it for one more annotation
    Item.objects.filter(pk=item.pk).update(status=ItemStatus.OPEN, required_annotations=3, reopen_rank=0.2)
    cc = claim(project, c)
    assert cc.item_id == item.pk
    out = submit(cc, c, label="pos")
    assert out.completed and out.item_status == ItemStatus.DISPUTED  # still not unanimous


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_on_one_item_count_every_annotation(postgres_tx):
    project, (item,) = queue_project(items=1, overlap=8)
    users = annotators(project, 8)
    leases = [claim(project, u) for u in users]
    errors = []
    barrier = threading.Barrier(len(users))

    def work(c, u):
        try:
            barrier.wait()
            submit(c, u)
        except Exception as exc:  # reported below
            errors.append(repr(exc))
        finally:
            connection.close()
            connection.close()

    threads = [threading.Thread(target=work, args=(c, u)) for c, u in zip(leases, users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    item.refresh_from_db()
    assert item.annotation_count == 8 and item.status == ItemStatus.RESOLVED
    assert GroundTruth.objects.get(item=item).method == "unanimous"
