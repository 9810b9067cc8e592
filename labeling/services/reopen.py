"""Reopen ranks set from outside labeling: another app (the bug queue) puts chosen open items at the
front of the labeling queue. Lower ranks are served first, before every item without a rank (see
Item.reopen_rank and the queue order in labeling.services.queue)."""

from django.db import transaction
from django.db.models import Case, FloatField, Value, When

from labeling.models import Item, ItemStatus

CHUNK = 5000  # items per UPDATE (a CASE branch each; well inside every backend's parameter limit)


@transaction.atomic
def items_reopen_rank_set(*, item_ranks: dict[int, float]) -> int:
    """Set each item's reopen_rank to its rank in `item_ranks` {item id: rank}, in one UPDATE (per
    CHUNK items). Only OPEN items change: an item being annotated or resolved keeps its rank. Returns
    how many items changed."""
    pairs = sorted((int(i), float(r)) for i, r in item_ranks.items())
    changed = 0
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start : start + CHUNK]
        rank = Case(*(When(pk=i, then=Value(r)) for i, r in chunk), output_field=FloatField())
        changed += Item.objects.filter(pk__in=[i for i, _ in chunk], status=ItemStatus.OPEN).update(reopen_rank=rank)
    return changed
