"""Sending items to the review queue, and the record each move leaves: a ReviewSend row (from which
status, by whom, why) written in the same transaction as the move. A quality run's doubted labels
(write.py, a compare-and-set against its snapshot) and a manager's send from the item explorer
(items_send_to_review) both record through `review_sends_record`, so an item's page can say why it
waits for a reviewer, whichever way it got there.

Only an item with at least one annotation that is open or resolved can be sent: a reviewer decides
between labels, and an item already disputed or in conflict is in the queue. A resolved item keeps
its ground truth until a reviewer decides again."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from common.db.locks import lock_rows
from labeling.models import Annotation, Item, ItemStatus, ReviewSend

SENDABLE = (ItemStatus.OPEN, ItemStatus.RESOLVED)
MAX_REASON = 2000


def review_sends_record(*, project_id: int, moves, actor=None, source: str, reason: str = "", now=None) -> None:
    """Append one ReviewSend per (item id, status it left) in `moves`. Call it inside the transaction
    that moved the items."""
    now = now or timezone.now()
    ReviewSend.objects.bulk_create(
        [
            ReviewSend(
                project_id=project_id,
                item_id=item_id,
                from_status=from_status,
                actor=actor,
                source=source[:64],
                reason=(reason or "")[:MAX_REASON],
                created_at=now,
            )
            for item_id, from_status in moves
        ],
        batch_size=5000,
    )


@transaction.atomic
def items_send_to_review(*, project, item_ids, actor=None, source: str, reason: str = "") -> list[int]:
    """Make the project's sendable items among `item_ids` disputed (the review queue), locked first in
    primary-key order, each with its ReviewSend. Other projects' items and items that cannot be sent
    are left alone. Returns the ids moved, sorted."""
    ids = sorted({int(i) for i in item_ids})
    candidates = Item.objects.filter(project=project, pk__in=ids, status__in=SENDABLE).filter(
        Exists(Annotation.objects.filter(item_id=OuterRef("pk")))
    )
    locked = lock_rows(candidates)
    moves = list(Item.objects.filter(pk__in=locked, status__in=SENDABLE).order_by("pk").values_list("pk", "status"))
    if not moves:
        return []
    now = timezone.now()
    Item.objects.filter(pk__in=[i for i, _ in moves]).update(status=ItemStatus.DISPUTED, updated_at=now)
    review_sends_record(project_id=project.pk, moves=moves, actor=actor, source=source, reason=reason, now=now)
    return [i for i, _ in moves]
