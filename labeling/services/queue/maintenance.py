"""Upkeep of what the queue stores to stay fast: each open item's copy of its project's ordering
(queue_order), Item.annotation_count and Item.touchers, and the annotators' progress counters.

Those counters change only with F() in the services that write them; the reconcile task recomputes
them from the rows they summarise and logs any drift. Both jobs work in batches so that a large
project is never locked whole.
"""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count

from common.db.locks import lock_rows
from labeling.models import (
    Annotation,
    AnnotatorProgress,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    Project,
)
from labeling.services.queue.claim import touchers_list

logger = logging.getLogger(__name__)

ANNOTATE = AssignmentKind.ANNOTATE


def queue_order_rekey(*, project_id: int, batch: int = 10_000) -> int:
    """Give the project's open items its current queue_order (the queue indexes order by each item's
    copy: see QueueKey), `batch` rows per transaction so that a project with a million open items
    never holds them all locked. Idempotent; returns how many items changed. Runs in a task after
    an ordering change, and in the reconcile task."""
    order = Project.objects.filter(pk=project_id).values_list("queue_order", flat=True).first()
    if order is None:
        return 0
    changed = 0
    while True:
        with transaction.atomic():
            ids = list(
                Item.objects.filter(project_id=project_id, status=ItemStatus.OPEN)
                .exclude(queue_order=order)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return changed
            changed += Item.objects.filter(pk__in=ids, status=ItemStatus.OPEN).update(queue_order=order)


@dataclass(frozen=True)
class ReconcileResult:
    items_checked: int
    counts_fixed: int
    touchers_fixed: int
    progress_fixed: int
    order_fixed: int = 0  # open items whose queue_order was not their project's (the queue indexes order by it)


def counters_reconcile(*, project_id: int, batch: int = 1000) -> ReconcileResult:
    """Recompute Item.annotation_count and Item.touchers from the rows they summarise, and each
    annotator's progress counters; log any drift. Locks one batch of items at a time (in primary-key
    order) so that the recount cannot race a submission."""
    checked = counts_fixed = touchers_fixed = 0
    last_id = 0
    while True:
        with transaction.atomic():
            ids = list(
                Item.objects.filter(project_id=project_id, pk__gt=last_id)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                break
            last_id = ids[-1]
            lock_rows(Item.objects.filter(pk__in=ids))
            stored = {
                pk: (count, touchers_list(t))
                for pk, count, t in Item.objects.filter(pk__in=ids)
                .order_by("pk")
                .values_list("pk", "annotation_count", "touchers")
            }
            counts = dict(
                Annotation.objects.filter(item_id__in=ids)
                .order_by()
                .values("item_id")
                .annotate(n=Count("id"))
                .values_list("item_id", "n")
            )
            who = {}
            for item_id, user_id in Assignment.objects.filter(item_id__in=ids, kind=ANNOTATE).values_list(
                "item_id", "annotator_id"
            ):
                who.setdefault(item_id, set()).add(user_id)
            for item_id, user_id in Annotation.objects.filter(item_id__in=ids).values_list("item_id", "annotator_id"):
                who.setdefault(item_id, set()).add(user_id)
            for pk, (count, touchers) in stored.items():
                actual_count = counts.get(pk, 0)
                actual_touchers = sorted(who.get(pk, ()))
                changes = {}
                if count != actual_count:
                    changes["annotation_count"] = actual_count
                    counts_fixed += 1
                    logger.warning("queue reconcile: item %s annotation_count %s -> %s", pk, count, actual_count)
                if sorted(touchers) != actual_touchers:
                    changes["touchers"] = actual_touchers or None
                    touchers_fixed += 1
                    logger.warning("queue reconcile: item %s touchers %s -> %s", pk, touchers, actual_touchers)
                if changes:
                    Item.objects.filter(pk=pk).update(**changes)
            checked += len(ids)
    progress_fixed = _progress_reconcile(project_id=project_id)
    order_fixed = queue_order_rekey(project_id=project_id)
    if counts_fixed or touchers_fixed or progress_fixed or order_fixed:
        logger.warning(
            "queue reconcile: project %s: %d counts, %d touchers, %d progress rows, %d open items' ordering drifted (fixed)",
            project_id,
            counts_fixed,
            touchers_fixed,
            progress_fixed,
            order_fixed,
        )
    return ReconcileResult(checked, counts_fixed, touchers_fixed, progress_fixed, order_fixed)


@transaction.atomic
def _progress_reconcile(*, project_id: int) -> int:
    progress = AnnotatorProgress.objects.filter(project_id=project_id)
    lock_rows(progress)
    rows = list(progress.order_by("pk"))
    submitted = dict(
        Annotation.objects.filter(project_id=project_id)
        .order_by()
        .values("annotator_id")
        .annotate(n=Count("id"))
        .values_list("annotator_id", "n")
    )
    skipped = dict(
        Assignment.objects.filter(item__project_id=project_id, kind=ANNOTATE, status=AssignmentStatus.SKIPPED)
        .order_by()
        .values("annotator_id")
        .annotate(n=Count("id"))
        .values_list("annotator_id", "n")
    )
    fixed = 0
    for row in rows:
        want = (submitted.get(row.annotator_id, 0), skipped.get(row.annotator_id, 0))
        if (row.submitted, row.skipped) != want:
            logger.warning(
                "queue reconcile: progress of user %s in project %s %s -> %s",
                row.annotator_id,
                project_id,
                (row.submitted, row.skipped),
                want,
            )
            AnnotatorProgress.objects.filter(pk=row.pk).update(submitted=want[0], skipped=want[1])
            fixed += 1
    return fixed
