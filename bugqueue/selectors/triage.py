"""The weekly triage view of a project's bugs, and its stored weekly digests. Every read runs a
constant number of queries whatever the number of bugs."""

import re
import statistics
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone

from bugqueue.models import CLOSED_STATUSES, OPEN_STATUSES, Bug, BugStatus, Digest, Tag
from bugqueue.selectors.access import access_in_project
from bugqueue.selectors.bugs import ORDERINGS
from common.errors import ValidationFailed
from common.timestamps import OutOfRange, check_day

BugTag = Bug.tags.through
WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


def parse_week(value) -> date:
    """'2026-W47' -> the Monday of that ISO week; empty -> the current week."""
    if not value:
        today = timezone.now().date()
        return today - timedelta(days=today.weekday())
    m = WEEK_RE.match(str(value).strip())
    try:
        if not m:
            raise ValueError
        monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
        return check_day(monday, field="week")
    except OutOfRange as exc:
        raise ValidationFailed(str(exc), fields={"week": [str(exc)]})
    except ValueError:
        raise ValidationFailed(
            f"week must look like 2026-W47 (an ISO week); got {str(value)[:20]!r}.",
            fields={"week": ["Invalid ISO week."]},
        )


def week_label(week_start: date) -> str:
    year, week, _ = week_start.isocalendar()
    return f"{year}-W{week:02d}"


def _median(values):
    return statistics.median(values) if values else None


def triage_week(*, project, week_start: date, limit: int = 100) -> dict:
    """The week's new and reopened bugs and the untriaged backlog (each ordered by priority then
    occurrences, at most `limit` listed, with totals), opened / closed counts, median time to
    triage and to resolve, and the Pareto of tags over the project's open bugs.
    Nine queries whatever the number of bugs."""
    start = datetime.combine(week_start, time.min, tzinfo=UTC)
    end = start + timedelta(days=7)
    base = Bug.objects.filter(project=project)
    new_q = Q(created_at__gte=start, created_at__lt=end)
    reopened_q = Q(reopened_at__gte=start, reopened_at__lt=end) & ~new_q
    backlog_q = Q(status=BugStatus.NEW, created_at__lt=start) & ~reopened_q
    order = ORDERINGS["priority"]
    sections = {}
    for name, cond in (("new", new_q), ("reopened", reopened_q), ("backlog", backlog_q)):
        sections[name] = list(base.filter(cond).select_related("assignee").order_by(*order)[:limit])
    listed = [b.pk for rows in sections.values() for b in rows]
    tags_by_bug = {}
    for bug_id, slug in (
        BugTag.objects.filter(bug_id__in=listed)
        .order_by("tag__position", "tag__slug")
        .values_list("bug_id", "tag__slug")
    ):
        tags_by_bug.setdefault(bug_id, []).append(slug)
    for rows in sections.values():
        for b in rows:
            b.tag_slugs = tags_by_bug.get(b.pk, [])

    has_tag = Exists(BugTag.objects.filter(bug_id=OuterRef("pk")))
    counts = base.aggregate(
        new=Count("pk", filter=new_q),
        reopened=Count("pk", filter=reopened_q),
        backlog=Count("pk", filter=backlog_q),
        closed=Count("pk", filter=Q(status__in=CLOSED_STATUSES, resolved_at__gte=start, resolved_at__lt=end)),
        open=Count("pk", filter=Q(status__in=OPEN_STATUSES)),
        open_untagged=Count("pk", filter=Q(status__in=OPEN_STATUSES) & ~Q(has_tag)),
    )
    to_triage, to_resolve = [], []
    for created, triaged, resolved, status in base.filter(
        Q(triaged_at__gte=start, triaged_at__lt=end)
        | Q(resolved_at__gte=start, resolved_at__lt=end, status__in=CLOSED_STATUSES)
    ).values_list("created_at", "triaged_at", "resolved_at", "status"):
        if triaged and start <= triaged < end:
            to_triage.append((triaged - created).total_seconds())
        if resolved and status in CLOSED_STATUSES and start <= resolved < end:
            to_resolve.append((resolved - created).total_seconds())

    open_bugs = Q(bugs__project=project, bugs__status__in=OPEN_STATUSES)
    tag_rows = list(
        Tag.objects.annotate(n=Count("bugs", filter=open_bugs), occ=Sum("bugs__occurrences", filter=open_bugs))
        .filter(n__gt=0)
        .order_by("-n", "-occ", "position")
        .values("slug", "name", "n", "occ")
    )
    total = sum(r["n"] for r in tag_rows)
    pareto, running = [], 0
    for r in tag_rows:
        running += r["n"]
        pareto.append(
            {
                "slug": r["slug"],
                "name": r["name"],
                "count": r["n"],
                "occurrences": r["occ"] or 0,
                "share": r["n"] / total,
                "cumulative_share": running / total,
            }
        )
    return {
        "project": project,
        "week": week_label(week_start),
        "start": start,
        "end": end,
        "last_day": end - timedelta(days=1),
        "previous_week": week_label(week_start - timedelta(days=7)),
        "next_week": week_label(week_start + timedelta(days=7)),
        "sections": sections,
        "totals": {"new": counts["new"], "reopened": counts["reopened"], "backlog": counts["backlog"]},
        "stats": {
            "opened": counts["new"],
            "closed": counts["closed"],
            "reopened": counts["reopened"],
            "open": counts["open"],
            "open_untagged": counts["open_untagged"],
            "median_time_to_triage_seconds": _median(to_triage),
            "median_time_to_resolve_seconds": _median(to_resolve),
        },
        "tags": pareto,
    }


# --- digests --------------------------------------------------------------------------------
def digest_list(*, project):
    return Digest.objects.filter(project=project).order_by("-week_start")


def access_digest(*, user, digest_id) -> Digest:
    return access_in_project(Digest.objects.all(), digest_id, user=user, what="Digest")
