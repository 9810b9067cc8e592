"""What happens to a lease after its claim: skipped by its annotator, cancelled when its item has
all it needs, or marked expired by the periodic sweep.

An expired lease frees its slot at once, with no job run (the claim only counts unexpired active
leases); the sweep only keeps the stored states right. A skipped or expired lease keeps its row,
so the item never comes back to that annotator.
"""

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from common.errors import Conflict, NotFound
from labeling.models import AnnotatorProgress, Assignment, AssignmentKind, AssignmentStatus, ItemStatus

logger = logging.getLogger(__name__)

ANNOTATE = AssignmentKind.ANNOTATE


@transaction.atomic
def assignment_skip(*, assignment_id: int, annotator, reason: str = "", now: datetime | None = None) -> Assignment:
    """Give the item back: its slot is free for others at once; it never comes back to this annotator
    (the lease row stays, so the unique constraint and touchers keep it away)."""
    now = now or timezone.now()
    assignment = (
        Assignment.objects.select_for_update()
        .filter(pk=assignment_id, annotator=annotator, kind=ANNOTATE)
        .select_related("item")
        .first()
    )
    if assignment is None:
        raise NotFound("Assignment not found.")
    if assignment.status == AssignmentStatus.SUBMITTED:
        raise Conflict("This assignment was already submitted.", code="already_submitted")
    if assignment.status == AssignmentStatus.SKIPPED:
        raise Conflict("This assignment was already skipped.", code="already_skipped")
    assignment.status = AssignmentStatus.SKIPPED
    assignment.finished_at = now
    assignment.skip_reason = (reason or "")[:2000]
    assignment.save(update_fields=["status", "finished_at", "skip_reason"])
    AnnotatorProgress.objects.filter(project_id=assignment.item.project_id, annotator=annotator).update(
        skipped=F("skipped") + 1
    )
    return assignment


def leases_cancel(*, item_id: int, now: datetime, keep: int = 0) -> int:
    """Mark an item's active leases expired, keeping the `keep` oldest unexpired ones. Call with the
    item's row lock held (its submissions still count as surplus: nothing is lost)."""
    active = Assignment.objects.filter(item_id=item_id, kind=ANNOTATE, status=AssignmentStatus.ACTIVE)
    if keep:
        kept = list(active.filter(expires_at__gt=now).order_by("id").values_list("id", flat=True)[:keep])
        active = active.exclude(pk__in=kept)
    return active.update(status=AssignmentStatus.EXPIRED, finished_at=now)


def assignments_expire(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Mark leases that ran out (or whose item is no longer open) as expired. The queue never needs
    this to free a slot; it keeps the stored states right. Idempotent; skips rows being submitted."""
    now = now or timezone.now()
    total = 0
    stale = Q(expires_at__lte=now) | ~Q(item__status=ItemStatus.OPEN)
    while True:
        with transaction.atomic():
            ids = list(
                Assignment.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(stale, status=AssignmentStatus.ACTIVE)
                .order_by("id")
                .values_list("id", flat=True)[:batch]
            )
            if ids:
                Assignment.objects.filter(pk__in=ids, status=AssignmentStatus.ACTIVE).update(
                    status=AssignmentStatus.EXPIRED, finished_at=now
                )
        total += len(ids)
        if len(ids) < batch:
            break
    if total:
        logger.info("queue: marked %d leases expired", total)
    return total
