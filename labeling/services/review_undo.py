"""Undoing a reviewer's decision (item_resolve) for a short while: LOUPE_REVIEW_UNDO_SECONDS.

The label history stays append-only: an undo appends the change that puts the previous state back
(the previous ground truth, or a retraction when there was none) as the transaction's last write,
takes the decision's guideline note out again with a new revision (unless the guideline changed
since), and hands the item back to the undoing user as their current review lease.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, Forbidden
from labeling.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    GroundTruth,
    GroundTruthMethod,
    GuidelineRevision,
    Item,
    LabelChange,
    LabelClass,
    ReviewDecision,
    Role,
)
from labeling.selectors.access import membership_role
from labeling.services.ground_truth import GroundTruthChange, ground_truth_retract, ground_truth_set
from labeling.services.resolution import REVIEWABLE


def undo_window() -> timedelta:
    return timedelta(seconds=settings.LOUPE_REVIEW_UNDO_SECONDS)


@dataclass(frozen=True)
class Undo:
    item_id: int
    undone_label: str
    change: GroundTruthChange  # the restoring change, or the retraction (label "", method "retracted")
    status: str  # the item's status again
    guideline_revision: GuidelineRevision | None  # the revision that took the decision's note out again
    guideline_kept: str  # why the note stayed in the guideline ("" when there was none or it was reverted)
    lease: Assignment | None  # the undoing user's review lease on the item again


@transaction.atomic
def item_resolve_undo(*, item: Item, user) -> Undo:
    """Undo the latest decision on `item`, within LOUPE_REVIEW_UNDO_SECONDS, by its reviewer (or a
    manager), while it is still the item's ground truth. The history gets a new change: the previous
    ground truth back (label, method, its decision time), or, when there was none, a retraction (the
    GroundTruth row goes, the item takes its disputed/conflict status again). A note the decision
    appended to a guideline is taken out with a new revision, unless the guideline changed since.
    The item becomes the user's current review lease again. Conflict (409) otherwise."""
    item = Item.objects.select_for_update().get(pk=item.pk)
    decision = (
        ReviewDecision.objects.select_for_update(of=("self",))
        .filter(item=item)
        .select_related("guideline_revision")
        .order_by("-id")
        .first()
    )
    if decision is None:
        raise Conflict("No review decision on this item to undo.", code="nothing_to_undo")
    if decision.reviewer_id != user.pk and membership_role(user=user, project_id=item.project_id) != Role.MANAGER:
        raise Forbidden("Only the reviewer who decided this item, or a manager, can undo the decision.")
    if decision.undone_at is not None:
        raise Conflict("This decision was already undone.", code="already_undone")
    now = timezone.now()
    window = undo_window()
    if now - decision.decided_at > window:
        raise Conflict(
            f"Too late to undo: decisions can be undone for {_minutes(window)} after they are made.",
            code="undo_expired",
        )
    current = GroundTruth.objects.filter(item=item).values_list("label", "method", "decided_at").first()
    if current != (decision.label, GroundTruthMethod.ADJUDICATED, decision.decided_at):
        raise Conflict(
            "The item's label changed after this decision, so it can no longer be undone.", code="changed_since"
        )

    lease = None  # leases before the label's row, as item_resolve (labeling.services lock order)
    if decision.previous_status in REVIEWABLE:
        lease = _lease_again(item=item, user=user, now=now)
    revision, kept = _guideline_revert(decision=decision, user=user, item=item)
    ReviewDecision.objects.filter(pk=decision.pk).update(undone_at=now, undone_by=user)
    # Last: the change takes the label sequence (see labeling.services.ground_truth).
    if decision.previous_label:
        annotators, model_version = (
            LabelChange.objects.filter(item=item, label=decision.previous_label, method=decision.previous_method)
            .order_by("-seq")
            .values_list("annotators", "model_version")
            .first()
        ) or ([], "")
        change = ground_truth_set(
            item=item,
            label=decision.previous_label,
            method=decision.previous_method,
            actor=user,
            score=decision.previous_score,
            annotators=annotators or (),
            model_version=model_version,
            note=decision.previous_note,
            source=decision.previous_source,
            status=decision.previous_status,
            decided_at=decision.previous_decided_at,
        )
    else:
        change = ground_truth_retract(
            item=item, actor=user, status=decision.previous_status, note="Review decision undone", source="review"
        )
    return Undo(
        item_id=item.pk,
        undone_label=decision.label,
        change=change,
        status=decision.previous_status,
        guideline_revision=revision,
        guideline_kept=kept,
        lease=lease,
    )


def _minutes(window: timedelta) -> str:
    minutes = round(window.total_seconds() / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _guideline_revert(*, decision: ReviewDecision, user, item: Item) -> tuple[GuidelineRevision | None, str]:
    """Take the decision's note out of its label's guideline (a new revision with the text before it),
    when the guideline is still the text that decision wrote. Returns (revision, why it was kept)."""
    appended = decision.guideline_revision
    if appended is None:
        return None, ""
    lc = LabelClass.objects.select_for_update().get(pk=appended.label_id)
    newer = GuidelineRevision.objects.filter(label=lc, pk__gt=appended.pk).exists()
    if newer or lc.guideline != appended.text:
        return None, (
            f"The note stays in the {lc.name} guideline: it was edited after this decision. "
            "Change it on the project page if it should go."
        )
    LabelClass.objects.filter(pk=lc.pk).update(guideline=decision.guideline_before)
    revision = GuidelineRevision.objects.create(
        label=lc,
        text=decision.guideline_before,
        author=user,
        note=f"Undone: the note from the review of item {item.external_id}",
    )
    return revision, ""


def _lease_again(*, item: Item, user, now) -> Assignment:
    """The user's review lease on `item`, active again; their other review leases in the project are
    given back (so the page shows this item next, and those items return to the queue)."""
    expires = now + timedelta(seconds=item.project.lease_seconds)
    Assignment.objects.filter(
        annotator=user, kind=AssignmentKind.REVIEW, status=AssignmentStatus.ACTIVE, item__project_id=item.project_id
    ).exclude(item=item).update(status=AssignmentStatus.EXPIRED, finished_at=now)
    lease = Assignment.objects.select_for_update().filter(item=item, annotator=user, kind=AssignmentKind.REVIEW).first()
    if lease is None:
        return Assignment.objects.create(item=item, annotator=user, kind=AssignmentKind.REVIEW, expires_at=expires)
    lease.status, lease.expires_at, lease.finished_at, lease.skip_reason = AssignmentStatus.ACTIVE, expires, None, ""
    lease.save(update_fields=["status", "expires_at", "finished_at", "skip_reason"])
    return lease
