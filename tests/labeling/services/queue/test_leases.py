"""Skips, expiry and the expiry sweep (labeling.services.queue.leases), on PostgreSQL."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.errors import Conflict, NotFound
from labeling.models import Assignment, AssignmentStatus, Item, ItemStatus
from labeling.services.annotations import annotation_submit
from labeling.services.queue.leases import assignment_skip, assignments_expire
from tests.labeling.factories import annotators, queue_project
from tests.labeling.services.queue.test_claim import claim, submit


@pytest.mark.django_db
def test_an_expired_lease_frees_its_slot_without_any_job(postgres):
    project, (item,) = queue_project(items=1, overlap=1)
    a, b = annotators(project, 2)
    first = claim(project, a)
    assert claim(project, b) is None  # the only slot is leased
    Assignment.objects.filter(pk=first.assignment_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    second = claim(project, b)
    assert second is not None and second.item_id == item.pk
    # No sweep ran: the old lease is still stored as active, yet its slot was given away.
    assert Assignment.objects.get(pk=first.assignment_id).status == AssignmentStatus.ACTIVE
    # ... and the expired holder does not get the item back, even though its lease expired.
    assert claim(project, a) is None


@pytest.mark.django_db
def test_skip_frees_the_slot_at_once_and_the_item_never_comes_back(postgres):
    project, (item, other) = queue_project(items=2, overlap=1)
    a, b = annotators(project, 2)
    first = claim(project, a)
    assert first.item_id == item.pk
    assignment_skip(assignment_id=first.assignment_id, annotator=a, reason="unreadable")
    assert claim(project, b).item_id == item.pk  # the slot is free at once
    again = claim(project, a)
    assert again.item_id == other.pk  # never the skipped one
    stored = Assignment.objects.get(pk=first.assignment_id)
    assert stored.status == AssignmentStatus.SKIPPED and stored.skip_reason == "unreadable"


@pytest.mark.django_db
def test_skip_errors(postgres):
    project, _ = queue_project(items=2)
    a, b = annotators(project, 2)
    c = claim(project, a)
    with pytest.raises(NotFound):
        assignment_skip(assignment_id=c.assignment_id, annotator=b)
    assignment_skip(assignment_id=c.assignment_id, annotator=a)
    with pytest.raises(Conflict) as exc:
        assignment_skip(assignment_id=c.assignment_id, annotator=a)
    assert exc.value.code == "already_skipped"
    c2 = claim(project, a)
    submit(c2, a)
    with pytest.raises(Conflict) as exc:
        assignment_skip(assignment_id=c2.assignment_id, annotator=a)
    assert exc.value.code == "already_submitted"


@pytest.mark.django_db
def test_expiry_sweep_marks_only_expired_or_orphaned_leases_and_is_idempotent(postgres):
    project, items = queue_project(items=4, overlap=1)
    a, b, c = annotators(project, 3)
    la, lb, lc = claim(project, a), claim(project, b), claim(project, c)
    past = timezone.now() - timedelta(seconds=1)
    Assignment.objects.filter(pk=la.assignment_id).update(expires_at=past)
    Item.objects.filter(pk=lc.item_id).update(status=ItemStatus.RESOLVED)
    assert assignments_expire() == 2
    assert assignments_expire() == 0
    states = dict(Assignment.objects.values_list("pk", "status"))
    assert states[la.assignment_id] == states[lc.assignment_id] == AssignmentStatus.EXPIRED
    assert states[lb.assignment_id] == AssignmentStatus.ACTIVE
    # the expired holder may still submit: the annotation is kept
    out = annotation_submit(assignment_id=la.assignment_id, annotator=a, label="pos")
    assert out.annotation.pk
