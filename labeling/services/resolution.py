"""The review queue: reviewers lease the most doubtful disputed items and decide their label.
A disputed item waiting for the one more annotation a quality run asked for (ReopenRequest) is
not in it. A decision records what it replaced (ReviewDecision) so that it can be undone for a
while (labeling.services.review_undo).

Leasing follows the annotator queue's rules: one transaction that locks the chosen item with
SELECT ... FOR UPDATE SKIP LOCKED (so concurrent reviewers never wait on, or get, the same item),
re-checks under the lock, then writes the lease (an Assignment of kind "review"). A reviewer asking
again while a lease is held gets the same lease; an expired lease frees its item with no cron.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from common.errors import Conflict, ValidationFailed
from labeling.models import (
    REVIEW_OUTCOMES,
    Annotation,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    GroundTruth,
    GroundTruthMethod,
    GuidelineRevision,
    Item,
    ItemStatus,
    LabelClass,
    Project,
    QualityItemResult,
    QualityRun,
    QualityRunStatus,
    ReviewDecision,
    ReviewSend,
    reopen_pending,
)
from labeling.services.ground_truth import GroundTruthChange, ground_truth_set

REVIEWABLE = (ItemStatus.DISPUTED, ItemStatus.CONFLICT)
MAX_NOTE = 4000


def latest_done_run_id(*, project_id: int) -> int | None:
    return (
        QualityRun.objects.filter(project_id=project_id, status=QualityRunStatus.DONE)
        .order_by("-id")
        .values_list("pk", flat=True)
        .first()
    )


@transaction.atomic
def review_next(*, project: Project, reviewer) -> Assignment | None:
    """The reviewer's current review lease, else a new one on the lowest-quality reviewable item
    (items not scored yet come after scored ones, oldest first). None when nothing is left."""
    now = timezone.now()
    held = (
        Assignment.objects.select_for_update(of=("self",))
        .filter(
            annotator=reviewer,
            kind=AssignmentKind.REVIEW,
            status=AssignmentStatus.ACTIVE,
            expires_at__gt=now,
            item__project=project,
            item__status__in=REVIEWABLE,
        )
        .exclude(reopen_pending("item__"))
        .select_related("item")
        .order_by("id")
        .first()
    )
    if held is not None:
        return held

    run_id = latest_done_run_id(project_id=project.pk)
    expires = now + timedelta(seconds=project.lease_seconds)
    for item in _candidates(project=project, reviewer=reviewer, run_id=run_id, now=now):
        # Under the lock, with a fresh snapshot: a lease committed after the candidate query started.
        if (
            Assignment.objects.filter(
                item=item, kind=AssignmentKind.REVIEW, status=AssignmentStatus.ACTIVE, expires_at__gt=now
            )
            .exclude(annotator=reviewer)
            .exists()
        ):
            continue
        lease = (
            Assignment.objects.select_for_update()
            .filter(item=item, annotator=reviewer, kind=AssignmentKind.REVIEW)
            .first()
        )
        if lease is None:
            lease = Assignment.objects.create(
                item=item, annotator=reviewer, kind=AssignmentKind.REVIEW, expires_at=expires
            )
        else:  # an earlier lease of mine on this item expired (or was finished and the item came back)
            lease.status, lease.expires_at, lease.finished_at, lease.skip_reason = (
                AssignmentStatus.ACTIVE,
                expires,
                None,
                "",
            )
            lease.save(update_fields=["status", "expires_at", "finished_at", "skip_reason"])
        lease.item = item
        return lease
    return None


def _candidates(*, project, reviewer, run_id, now, attempts: int = 20):
    """Reviewable items, locked one at a time with SKIP LOCKED: first those the latest run sent to
    review (or found changed after its snapshot), lowest consensus quality first (walking the
    quality_result_review index), then, oldest first, the others: conflicts, items annotated since
    that run's snapshot (disputed since), items newer than the run, items sent to review since its
    snapshot (labeling.services.quality.review). Before any run, every reviewable item, oldest first.

    No walk passes over the items waiting for one more annotation (ReopenRequest, stored as
    disputed; after a backlog run, most of the disputed items): each source only holds items that
    cannot be waiting for one, and the exclusion below is a check of the few found."""

    def leased_by_other(ref):
        return Assignment.objects.filter(
            item=OuterRef(ref), kind=AssignmentKind.REVIEW, status=AssignmentStatus.ACTIVE, expires_at__gt=now
        ).exclude(annotator=reviewer)

    def skipped_by_me(ref):
        return Assignment.objects.filter(
            item=OuterRef(ref), kind=AssignmentKind.REVIEW, status=AssignmentStatus.SKIPPED, annotator=reviewer
        )

    excluded = []
    reviewable = (
        Item.objects.filter(project=project, status__in=REVIEWABLE)
        .exclude(reopen_pending())
        .exclude(Exists(leased_by_other("pk")))
        .exclude(Exists(skipped_by_me("pk")))
    )
    if run_id is None:
        sources = [reviewable]
    else:
        scored = (
            QualityItemResult.objects.filter(
                run_id=run_id, outcome__in=REVIEW_OUTCOMES, item__project=project, item__status__in=REVIEWABLE
            )
            .exclude(reopen_pending("item__"))
            .exclude(Exists(leased_by_other("item_id")))
            .exclude(Exists(skipped_by_me("item_id")))
            .order_by("quality")  # exactly the quality_result_review index's order: walked, never sorted
        )
        for _ in range(attempts):
            result = (
                scored.exclude(item_id__in=excluded)
                .select_related("item")
                .select_for_update(skip_locked=True, of=("item",))
                .first()
            )
            if result is None:
                break
            excluded.append(result.item_id)
            yield result.item
        since, snapshot_at = QualityRun.objects.filter(pk=run_id).values_list(
            "snapshot_max_annotation_id", "snapshot_at"
        ).first() or (0, None)
        since = since or 0
        last_scored = (
            QualityItemResult.objects.filter(run_id=run_id)
            .order_by("-item_id")
            .values_list("item_id", flat=True)
            .first()
            or 0
        )
        sources = [
            reviewable.filter(status=ItemStatus.CONFLICT),
            reviewable.filter(pk__in=Annotation.objects.filter(project_id=project.pk, pk__gt=since).values("item_id")),
            reviewable.filter(pk__gt=last_scored),  # items newer than the run (made reviewable some other way)
        ]
        if snapshot_at is not None:  # sent to review since the run's snapshot (by a manager, the explorer)
            sent = ReviewSend.objects.filter(project_id=project.pk, created_at__gte=snapshot_at).values("item_id")
            sources.append(reviewable.filter(pk__in=sent))
    for source in sources:
        for _ in range(attempts):
            item = (
                source.exclude(pk__in=excluded).order_by("id").select_for_update(skip_locked=True, of=("self",)).first()
            )
            if item is None:
                break
            excluded.append(item.pk)
            yield item


@transaction.atomic
def review_skip(*, item: Item, reviewer, reason: str = "") -> Assignment:
    """Give a review lease back; the item stays in the queue for the other reviewers."""
    lease = (
        Assignment.objects.select_for_update()
        .filter(item=item, annotator=reviewer, kind=AssignmentKind.REVIEW, status=AssignmentStatus.ACTIVE)
        .first()
    )
    if lease is None:
        raise Conflict("You hold no review lease on this item.", code="no_lease")
    lease.status, lease.finished_at, lease.skip_reason = (
        AssignmentStatus.SKIPPED,
        timezone.now(),
        (reason or "")[:MAX_NOTE],
    )
    lease.save(update_fields=["status", "finished_at", "skip_reason"])
    return lease


@dataclass(frozen=True)
class Resolution:
    item_id: int
    label: str
    change: GroundTruthChange | None  # None when the item already had this adjudicated label
    guideline_revision: GuidelineRevision | None
    decision: ReviewDecision | None = None  # what an undo needs (None when nothing changed)


@transaction.atomic
def item_resolve(*, item: Item, reviewer, label: str, note: str = "", append_to_guideline: bool = False) -> Resolution:
    """A reviewer decides an item's label: ground truth with method "adjudicated", the reviewer and
    the note, in the label history. With append_to_guideline the note is added to that label's
    guideline (a new GuidelineRevision), so the definition annotators see improves."""
    note = (note or "").strip()
    errors = {}
    label_obj = (
        LabelClass.objects.filter(project_id=item.project_id, key=label, retired_at__isnull=True).first()
        if isinstance(label, str)
        else None
    )
    if label_obj is None:
        errors["label"] = [f"{label!r} is not a label of this project."]
    if len(note) > MAX_NOTE:
        errors["note"] = [f"At most {MAX_NOTE} characters."]
    if append_to_guideline and not note:
        errors["append_to_guideline"] = ["Write a note to append it to the guideline."]
    if errors:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)

    item = Item.objects.select_for_update(of=("self",)).select_related("ground_truth").get(pk=item.pk)
    try:
        previous = item.ground_truth
    except GroundTruth.DoesNotExist:
        previous = None
    unchanged = previous is not None and previous.label == label and previous.method == GroundTruthMethod.ADJUDICATED
    agreeing = list(
        Annotation.objects.filter(item=item, label=label)
        .order_by("annotator_id")
        .values_list("annotator_id", flat=True)
    )
    now = timezone.now()
    Assignment.objects.filter(
        item=item, annotator=reviewer, kind=AssignmentKind.REVIEW, status=AssignmentStatus.ACTIVE
    ).update(status=AssignmentStatus.SUBMITTED, finished_at=now)
    # Anyone else still holding a review lease on it has nothing left to decide.
    Assignment.objects.filter(item=item, kind=AssignmentKind.REVIEW, status=AssignmentStatus.ACTIVE).update(
        status=AssignmentStatus.EXPIRED, finished_at=now
    )
    revision, guideline_before = None, ""
    if append_to_guideline:
        lc = LabelClass.objects.select_for_update().get(pk=label_obj.pk)
        guideline_before = lc.guideline
        text = guideline_with_note(lc.guideline, note)
        LabelClass.objects.filter(pk=lc.pk).update(guideline=text)
        revision = GuidelineRevision.objects.create(
            label=lc,
            text=text,
            author=reviewer,
            note=f"From the review of item {item.external_id}",
        )
    decision = None
    if not unchanged:
        decision = ReviewDecision.objects.create(
            item=item,
            reviewer=reviewer,
            label=label,
            decided_at=now,
            previous_status=item.status,
            previous_label=previous.label if previous else "",
            previous_method=previous.method if previous else "",
            previous_score=previous.score if previous else None,
            previous_source=previous.source if previous else "",
            previous_note=previous.note if previous else "",
            previous_decided_at=previous.decided_at if previous else None,
            guideline_revision=revision,
            guideline_before=guideline_before,
        )
    change = ground_truth_set(  # last: it takes the label sequence (see labeling.services.ground_truth)
        item=item,
        label=label,
        method=GroundTruthMethod.ADJUDICATED,
        actor=reviewer,
        note=note,
        annotators=agreeing,
        source="review",
        decided_at=now,
    )
    return Resolution(item_id=item.pk, label=label, change=change, guideline_revision=revision, decision=decision)


def guideline_with_note(guideline: str, note: str) -> str:
    """A guideline with a reviewer's note appended as one "- " line (what the review page previews)."""
    addition = f"- {note.strip()}"
    return f"{guideline.rstrip()}\n{addition}" if guideline.strip() else addition
