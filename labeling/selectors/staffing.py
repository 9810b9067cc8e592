"""The staffing inputs of the feedback-delay report: what completed items measured (annotations and
review decisions per item, and how long reviews took), read project-wide through the ORM; the
arithmetic and the definitions are labeling.stats.staffing's."""

from datetime import timedelta

from django.db.models import Count, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from labeling.models import (
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    GroundTruthMethod,
    Item,
    ItemStatus,
    LabelChange,
)
from labeling.stats.staffing import SAMPLE, StaffingWork


def staffing_work(*, project) -> StaffingWork:
    """What completed items measured, project-wide (not filtered): resolved items with at least one
    annotation and their annotations (the items' counters), the reviewers' decisions on them (their
    adjudicated label changes, with or without a review lease), and the durations of the latest
    decisions made under a review lease: from when the lease was taken (a lease taken again after it
    expired has expires_at moved, and counts from then) to its finished_at."""
    per_item = (
        LabelChange.objects.filter(item=OuterRef("pk"), method=GroundTruthMethod.ADJUDICATED)
        .order_by()
        .values("item")
        .annotate(n=Count("seq"))
    )
    decisions = Assignment.objects.filter(
        kind=AssignmentKind.REVIEW, status=AssignmentStatus.SUBMITTED, finished_at__isnull=False
    )
    totals = Item.objects.filter(project=project, status=ItemStatus.RESOLVED, annotation_count__gt=0).aggregate(
        n=Count("id"),
        annotations=Sum("annotation_count"),
        reviews=Sum(Coalesce(Subquery(per_item.values("n")), 0)),
    )
    n_reviews = totals["reviews"] or 0
    lease = timedelta(seconds=project.lease_seconds)
    durations = [
        (finished - max(created, expires - lease)).total_seconds()
        for created, expires, finished in decisions.filter(item__project=project)
        .order_by("-finished_at", "-id")
        .values_list("created_at", "expires_at", "finished_at")[:SAMPLE]
    ]
    return StaffingWork(
        completed_items=totals["n"] or 0,
        annotations=totals["annotations"] or 0,
        reviews=n_reviews,
        review_seconds=tuple(d for d in durations if d >= 0),
    )
