"""Bug.occurrences is a stored counter changed with F() while filing; BugOccurrence rows are its
source of truth. occurrences_reconcile compares the two (and fixes drift), run periodically."""

import logging

from django.db import transaction
from django.db.models import F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from bugqueue.models import (
    Bug,
    BugOccurrence,
)

logger = logging.getLogger(__name__)


def occurrences_reconcile(*, fix: bool = True) -> list[tuple[int, int, int]]:
    """Recompute Bug.occurrences from BugOccurrence rows; log (and by default repair) any drift.
    Returns [(bug_id, stored, recomputed)] for the bugs that drifted."""
    total = Subquery(
        BugOccurrence.objects.filter(bug_id=OuterRef("pk")).values("bug_id").annotate(s=Sum("count")).values("s")[:1]
    )
    drifted = list(
        Bug.objects.annotate(recomputed=Coalesce(total, 0))
        .exclude(occurrences=F("recomputed"))
        .values_list("pk", "occurrences", "recomputed")
    )
    for bug_id, stored, recomputed in drifted:
        logger.warning(
            "bug #%s occurrences drifted: stored %s, recomputed %s%s",
            bug_id,
            stored,
            recomputed,
            " (repaired)" if fix else "",
        )
        if fix:
            with transaction.atomic():
                locked = Bug.objects.select_for_update().filter(pk=bug_id).first()
                if locked is None:
                    continue
                fresh = BugOccurrence.objects.filter(bug_id=bug_id).aggregate(s=Coalesce(Sum("count"), 0))["s"]
                Bug.objects.filter(pk=bug_id).update(occurrences=fresh)
    return drifted
