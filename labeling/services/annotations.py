"""Submitting annotations on leases, and what happens when an item has all it needs.

A submission is never lost: a lease that expired (or was cancelled because the item finished) is
still accepted. Whether it counts is decided under the item's row lock: it counts while the item is
open and short of its required annotations, otherwise it is stored with is_surplus=True.

Locks are taken item first, then its assignments (the order every queue writer uses), so a
submission that finishes an item can cancel the other leases on it without deadlocking.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When
from django.utils import timezone

from common.errors import Conflict, NotFound, ValidationFailed
from labeling.models import (
    Annotation,
    AnnotatorProgress,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    GroundTruthMethod,
    Item,
    ItemStatus,
    LabelClass,
)
from labeling.services.ground_truth import ground_truth_set
from labeling.services.quality.runs import quality_on_item_disputed
from labeling.services.queue.leases import leases_cancel
from labeling.services.retry import retry_on_conflict

logger = logging.getLogger(__name__)

MAX_SECONDS_SPENT = 24 * 3600


@dataclass(frozen=True)
class Outcome:
    """What a submission did to its item (for callers and tests)."""

    annotation: Annotation
    item_status: str  # the item's status after the submission
    completed: bool  # this submission gave the item its last required annotation
    done_today: int = 0  # the annotator's submissions in the project today (UTC), this one included


@retry_on_conflict  # a deadlock re-runs the whole submit: a submitted annotation is never lost
@transaction.atomic
def annotation_submit(
    *, assignment_id: int, annotator, label: str, seconds_spent: float | None = None, now: datetime | None = None
) -> Outcome:
    """Store the annotator's label for the item of their lease and count it (or keep it as surplus);
    the submission that completes an item resolves it (unanimous) or marks it disputed."""
    now = now or timezone.now()
    if seconds_spent is not None and not (0 <= seconds_spent <= MAX_SECONDS_SPENT):
        raise ValidationFailed(
            f"seconds_spent must be from 0 to {MAX_SECONDS_SPENT}.", fields={"seconds_spent": ["Out of range."]}
        )
    # The item first (row lock), found through the annotator's own assignment: someone else's is 404.
    item = (
        Item.objects.select_for_update(of=("self",))
        .filter(
            assignments__pk=assignment_id, assignments__annotator=annotator, assignments__kind=AssignmentKind.ANNOTATE
        )
        .annotate(
            label_ok=Exists(
                LabelClass.objects.filter(project_id=OuterRef("project_id"), key=label, retired_at__isnull=True)
            ),
            already=Exists(Annotation.objects.filter(item=OuterRef("pk"), annotator=annotator)),
        )
        .only("id", "project_id", "status", "annotation_count", "required_annotations")
        .first()
    )
    if item is None:
        raise NotFound("Assignment not found.")
    assignment = Assignment.objects.select_for_update().only("id", "status", "expires_at").get(pk=assignment_id)
    if assignment.status == AssignmentStatus.SUBMITTED or item.already:
        raise Conflict("This assignment was already submitted.", code="already_submitted")
    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("This assignment was skipped; it cannot be submitted.", code="already_skipped")
    if not item.label_ok:
        raise ValidationFailed(f"Unknown label {label!r} for this project.", fields={"label": ["Unknown label."]})

    held_slot = assignment.status == AssignmentStatus.ACTIVE and assignment.expires_at > now
    surplus = item.status != ItemStatus.OPEN or item.annotation_count >= item.required_annotations
    annotation = Annotation.objects.create(
        project_id=item.project_id,
        item_id=item.pk,
        annotator=annotator,
        assignment_id=assignment.pk,
        label=label,
        seconds_spent=seconds_spent,
        is_surplus=surplus,
    )
    Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.SUBMITTED, finished_at=now)
    Item.objects.filter(pk=item.pk).update(annotation_count=F("annotation_count") + 1)
    today = now.date()
    AnnotatorProgress.objects.filter(project_id=item.project_id, annotator=annotator).update(
        submitted=F("submitted") + 1,
        day_submitted=Case(When(day=today, then=F("day_submitted") + 1), default=Value(1)),
        day=today,
    )
    # (read back in this transaction, under the progress row's lock: the page shows it as is)
    done_today = (
        AnnotatorProgress.objects.filter(project_id=item.project_id, annotator=annotator)
        .values_list("day_submitted", flat=True)
        .first()
        or 0
    )

    status, completed = item.status, False
    if not surplus:
        count = item.annotation_count + 1  # exact: we hold the item's row lock
        if count >= item.required_annotations:
            status, completed = item_settle(item=item, now=now), True
        elif not held_slot:
            # A late submission filled a slot that had been leased again: keep the item within its
            # overlap by cancelling the newest extra leases (their submissions become surplus).
            leases_cancel(item_id=item.pk, now=now, keep=item.required_annotations - count)
    return Outcome(annotation=annotation, item_status=status, completed=completed, done_today=done_today)


def item_settle(*, item: Item, now: datetime) -> str:
    """The item has its required annotations: unanimous -> ground truth, otherwise disputed."""
    votes = list(
        Annotation.objects.filter(item_id=item.pk, is_surplus=False).order_by("id").values_list("annotator_id", "label")
    )
    labels = {lab for _, lab in votes}
    leases_cancel(item_id=item.pk, now=now)
    if len(labels) == 1:
        ground_truth_set(
            item=item,
            label=labels.pop(),
            method=GroundTruthMethod.UNANIMOUS,
            annotators=[user_id for user_id, _ in votes],
        )
        return ItemStatus.RESOLVED
    Item.objects.filter(pk=item.pk).update(status=ItemStatus.DISPUTED, updated_at=now)
    # Counts toward the project's automatic quality run (queued after commit once the threshold is met).
    quality_on_item_disputed(project_id=item.project_id)
    return ItemStatus.DISPUTED
