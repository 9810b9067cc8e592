"""Reads for the annotator queues: progress, what is left for one annotator (the one "left" count
of the label page, queue/next, submit, skip and my-remaining), an annotator's own stats, the
managers' annotation feed.

Raw SQL: the ORM has no ordered-set aggregate for the median (percentile_cont ... WITHIN GROUP) on
PostgreSQL.
"""

import statistics
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from common.db import is_postgres
from common.db.sql import fetchvalue
from common.errors import NotFound, ValidationFailed
from common.timestamps import parse_timestamp
from labeling.models import (
    Annotation,
    AnnotatorProgress,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Item,
    ItemStatus,
    reopen_pending,
)

# Counting what is left stops being exact here, so that its cost never grows with the project.
REMAINING_EXACT_UP_TO = 10_000
REMAINING_ESTIMATE_CAP = 1_000_000


def annotator_remaining(*, project_id: int, annotator) -> dict:
    """{remaining, exact, text}: how many items this annotator can still be served. Items that still
    need annotations (open ones, and disputed ones waiting for the one more annotation a quality run
    asked for: ReopenRequest) that they have not answered or skipped; the one on their screen (an
    active lease) counts as left. Exact up to REMAINING_EXACT_UP_TO; above that an estimate from the
    project's open items, rounded to two significant figures. `text` is what the label page shows."""
    servable = (
        Item.objects.filter(project_id=project_id)
        .filter(Q(status=ItemStatus.OPEN, annotation_count__lt=F("required_annotations")) | reopen_pending())
        .exclude(
            Exists(
                Assignment.objects.filter(item_id=OuterRef("pk"), annotator_id=annotator.pk).exclude(
                    status=AssignmentStatus.ACTIVE
                )
            )
        )
    )
    n = servable.values("pk")[: REMAINING_EXACT_UP_TO + 1].count()
    if n <= REMAINING_EXACT_UP_TO:
        return {"remaining": n, "exact": True, "text": f"{n:,} left"}
    total = (
        Item.objects.filter(project_id=project_id, status=ItemStatus.OPEN).values("pk")[:REMAINING_ESTIMATE_CAP].count()
    )
    about = int(float(f"{max(total, n):.2g}"))
    return {"remaining": about, "exact": False, "text": f"about {about:,} left"}


@dataclass(frozen=True)
class Progress:
    done_by_me: int  # annotations this annotator submitted in the project
    done_today: int  # ... of them today (UTC)
    left: dict  # annotator_remaining(): {remaining, exact, text}

    # The older pair of fields, kept for clients: the same count as `left`.
    @property
    def remaining(self) -> int:
        return self.left["remaining"]

    @property
    def remaining_capped(self) -> bool:
        return not self.left["exact"]


def queue_progress(*, project_id: int, annotator, now: datetime | None = None) -> Progress:
    now = now or timezone.now()
    row = AnnotatorProgress.objects.filter(project_id=project_id, annotator=annotator).values(
        "submitted", "day", "day_submitted"
    ).first() or {"submitted": 0, "day": None, "day_submitted": 0}
    today = row["day_submitted"] if row["day"] == now.date() else 0
    return Progress(row["submitted"], today, annotator_remaining(project_id=project_id, annotator=annotator))


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
