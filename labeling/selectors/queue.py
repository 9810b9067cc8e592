"""Reads for the annotator queues: progress, an annotator's own stats, the managers' annotation feed.

Raw SQL: the capped count of open items runs on every queue/next, so it is one plain statement with
a LIMIT inside (no ORM compiling), and the ORM has no ordered-set aggregate for the median
(percentile_cont ... WITHIN GROUP) on PostgreSQL.
"""

import statistics
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from common.db import is_postgres
from common.db.sql import fetchvalue, table
from common.errors import NotFound, ValidationFailed
from common.timestamps import parse_timestamp
from labeling.models import (
    REOPEN_VALID_SQL,
    Annotation,
    AnnotatorProgress,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    ReopenRequest,
)

# Counting open items stops here so that the cost of a progress line never grows with the project.
REMAINING_CAP = 1_000


@dataclass(frozen=True)
class Progress:
    done_by_me: int  # annotations this annotator submitted in the project
    done_today: int  # ... of them today (UTC)
    remaining: int  # open items in the project (still needing annotations), counted up to REMAINING_CAP
    remaining_capped: bool  # True when there are at least REMAINING_CAP


def open_items_count(*, project_id: int, cap: int = REMAINING_CAP) -> tuple[int, bool]:
    """Open items, and items waiting for the one more annotation a quality run asked for (they open
    when an annotator reaches them: ReopenRequest), counted up to `cap`."""
    n = fetchvalue(
        f"SELECT count(*) FROM (SELECT 1 FROM {table(Item)} WHERE project_id = %s AND status = %s "
        f"LIMIT %s) AS open_items",
        [project_id, ItemStatus.OPEN, cap],
    )
    if n < cap:
        n += fetchvalue(
            f"SELECT count(*) FROM (SELECT 1 FROM {table(ReopenRequest)} r JOIN {table(Item)} i "
            f"ON i.id = r.item_id WHERE r.project_id = %s AND {REOPEN_VALID_SQL.format(i='i', r='r')} LIMIT %s) AS requested",
            [project_id, cap - n],
        )
    return n, n >= cap


def queue_progress(*, project_id: int, annotator, now: datetime | None = None) -> Progress:
    now = now or timezone.now()
    row = AnnotatorProgress.objects.filter(project_id=project_id, annotator=annotator).values(
        "submitted", "day", "day_submitted"
    ).first() or {"submitted": 0, "day": None, "day_submitted": 0}
    today = row["day_submitted"] if row["day"] == now.date() else 0
    remaining, capped = open_items_count(project_id=project_id)
    return Progress(row["submitted"], today, remaining, capped)


def assignment_project_id(*, assignment_id, user) -> int:
    """The project of one of the user's own annotate assignments; NotFound for anyone else's."""
    project_id = (
        Assignment.objects.filter(pk=assignment_id, annotator=user, kind=AssignmentKind.ANNOTATE)
        .values_list("item__project_id", flat=True)
        .first()
    )
    if project_id is None:
        raise NotFound("Assignment not found.")
    return project_id


def annotator_stats(*, project_id: int, user, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    progress = queue_progress(project_id=project_id, annotator=user, now=now)
    skipped = (
        AnnotatorProgress.objects.filter(project_id=project_id, annotator=user)
        .values_list("skipped", flat=True)
        .first()
        or 0
    )
    seconds = Annotation.objects.filter(project_id=project_id, annotator=user, seconds_spent__isnull=False)
    if is_postgres():
        sql, params = seconds.values("seconds_spent").query.sql_with_params()
        median = fetchvalue(f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds_spent) FROM ({sql}) s", params)
    else:
        values = list(seconds.values_list("seconds_spent", flat=True))
        median = statistics.median(values) if values else None
    active = Assignment.objects.filter(
        annotator=user,
        kind=AssignmentKind.ANNOTATE,
        status=AssignmentStatus.ACTIVE,
        expires_at__gt=now,
        item__project_id=project_id,
    ).count()
    return {
        "project": project_id,
        "submitted": progress.done_by_me,
        "today": progress.done_today,
        "skipped": skipped,
        "median_seconds": median,
        "active_leases": active,
        "remaining": progress.remaining,
        "remaining_capped": progress.remaining_capped,
    }


def annotation_feed(*, project_id: int, annotator: str | None = None, since: datetime | None = None):
    """A project's annotations, oldest first; optionally one annotator's (by username) and created at or
    after `since`."""
    qs = Annotation.objects.filter(project_id=project_id).select_related("item", "annotator")
    if annotator:
        qs = qs.filter(annotator__username=annotator)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    return qs


def parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_timestamp(value, field="since")
    except ValueError as exc:
        raise ValidationFailed(str(exc), fields={"since": [str(exc)]})
