"""Bug-queue reads: permission-checked accessors, the filtered queue with facet counts, a bug's
page, the weekly triage view. Every read runs a constant number of queries (no N+1): the tests
pin them with django_assert_max_num_queries."""

import re
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone as dt_timezone

from django.db.models import Count, Exists, OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from bugqueue.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Bug,
    BugEvent,
    BugKind,
    BugOccurrence,
    BugStatus,
    Comment,
    Digest,
    FailureExample,
    Priority,
    Tag,
)
from common.errors import NotFound, ValidationFailed
from labeling.models import Membership, Project
from labeling.selectors.access import ANY_ROLE, access_project
from labeling.selectors.blind import labels_visible_to
from common.timestamps import OutOfRange, check_day

BugTag = Bug.tags.through
WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
ORDERINGS = {
    "priority": ("priority", "-occurrences", "-last_seen", "id"),
    "-last_seen": ("-last_seen", "id"),
    "-occurrences": ("-occurrences", "id"),
    "-created_at": ("-created_at", "-id"),
    "created_at": ("created_at", "id"),
}


# --- access ---------------------------------------------------------------------------------
def access_bug(*, user, bug_id, roles=ANY_ROLE) -> Bug:
    """The bug if its project is visible to `user` with one of `roles` (NotFound otherwise:
    a bug's project decides who sees it; Forbidden for the wrong role)."""
    try:
        bug_id = int(bug_id)
    except (TypeError, ValueError):
        raise NotFound("Bug not found.")
    project_id = Bug.objects.filter(pk=bug_id).values_list("project_id", flat=True).first()
    if project_id is None:
        raise NotFound("Bug not found.")
    try:
        project = access_project(user=user, project_id=project_id, roles=roles)
    except NotFound:
        raise NotFound("Bug not found.")
    bug = Bug.objects.select_related("assignee", "reporter").get(pk=bug_id)
    bug.project = project
    return bug


def visible_project_ids(*, user):
    """A subquery of the projects `user` may see (staff: every project)."""
    if user.is_staff:
        return Project.objects.values("pk")
    return Membership.objects.filter(user=user).values("project_id")


def tag_list():
    return Tag.objects.order_by("position", "slug")


def project_assignees(*, project):
    """Users a bug of `project` can be assigned to: its members."""
    return [m.user for m in Membership.objects.filter(project=project).select_related("user").order_by("user__username")]


# --- the queue ------------------------------------------------------------------------------
@dataclass
class BugFilters:
    statuses: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    priorities: list = field(default_factory=list)
    kinds: list = field(default_factory=list)
    assignee: str = ""  # a username, or "none"
    q: str = ""
    regressed: bool | None = None
    ordering: str = "priority"

    def as_query(self) -> dict:
        out = {}
        for key, values in (("status", self.statuses), ("tag", self.tags), ("priority", self.priorities), ("kind", self.kinds)):
            if values:
                out[key] = ",".join(values)
        if self.assignee:
            out["assignee"] = self.assignee
        if self.q:
            out["q"] = self.q
        if self.regressed is not None:
            out["regressed"] = "true" if self.regressed else "false"
        if self.ordering != "priority":
            out["ordering"] = self.ordering
        return out


def _multi(params, key) -> list[str]:
    values = params.getlist(key) if hasattr(params, "getlist") else [params.get(key)] if params.get(key) else []
    out = []
    for v in values:
        out += [p.strip() for p in (v or "").split(",") if p.strip()]
    return list(dict.fromkeys(out))


def bug_filters_parse(params) -> BugFilters:
    """Query parameters -> BugFilters; a bad value is a 400 naming the parameter.
    `status` accepts several values (comma-separated or repeated) and `open` / `closed`."""
    errors = {}
    statuses = []
    for s in _multi(params, "status"):
        if s == "open":
            statuses += OPEN_STATUSES
        elif s == "closed":
            statuses += CLOSED_STATUSES
        elif s in BugStatus.values:
            statuses.append(s)
        else:
            errors["status"] = [f"Unknown status {s!r}: use {', '.join(BugStatus.values)}, open or closed."]
    priorities = _multi(params, "priority")
    if any(p not in Priority.values for p in priorities):
        errors["priority"] = [f"Must be among {', '.join(Priority.values)}."]
    kinds = _multi(params, "kind")
    if any(k not in BugKind.values for k in kinds):
        errors["kind"] = [f"Must be among {', '.join(BugKind.values)}."]
    tags = _multi(params, "tag")
    if tags:
        known = set(Tag.objects.filter(slug__in=tags).values_list("slug", flat=True))
        unknown = [t for t in tags if t not in known]
        if unknown:
            errors["tag"] = [f"Unknown tag {t!r}." for t in unknown]
    regressed = params.get("regressed")
    if regressed in (None, ""):
        regressed = None
    elif str(regressed).lower() in ("true", "1", "yes"):
        regressed = True
    elif str(regressed).lower() in ("false", "0", "no"):
        regressed = False
    else:
        errors["regressed"] = ["Must be true or false."]
    ordering = params.get("ordering") or "priority"
    if ordering not in ORDERINGS:
        errors["ordering"] = [f"Must be one of {', '.join(ORDERINGS)}."]
    q = (params.get("q") or "").strip()
    if len(q) > 200:
        errors["q"] = ["At most 200 characters."]
    if errors:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)
    return BugFilters(list(dict.fromkeys(statuses)), tags, priorities, kinds, (params.get("assignee") or "").strip(),
                      q, regressed, ordering)


def _apply(qs, f: BugFilters, *, user=None, skip: str = ""):
    if f.statuses and skip != "status":
        qs = qs.filter(status__in=f.statuses)
    if f.priorities and skip != "priority":
        qs = qs.filter(priority__in=f.priorities)
    if f.tags and skip != "tag":
        for slug in f.tags:  # all the given tags (narrowing), without duplicate rows
            qs = qs.filter(Exists(BugTag.objects.filter(bug_id=OuterRef("pk"), tag__slug=slug)))
    if f.kinds:
        qs = qs.filter(kind__in=f.kinds)
    if f.assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif f.assignee == "me" and user is not None:
        qs = qs.filter(assignee=user)
    elif f.assignee:
        qs = qs.filter(assignee__username=f.assignee)
    if f.q:
        qs = qs.filter(Q(title__icontains=f.q) | Q(description__icontains=f.q) | Q(fingerprint=f.q))
    if f.regressed is not None:
        qs = qs.filter(regressed=f.regressed)
    return qs


def _scope(*, user, project):
    if project is not None:
        return Bug.objects.filter(project=project)
    return Bug.objects.filter(project_id__in=visible_project_ids(user=user))


def bug_list(*, user, project=None, filters: BugFilters):
    """The queue: bugs of `project` (or of every project the user sees) matching `filters`."""
    qs = _apply(_scope(user=user, project=project), filters, user=user)
    return qs.select_related("assignee", "project").prefetch_related("tags").order_by(*ORDERINGS[filters.ordering])


def bug_facets(*, user, project=None, filters: BugFilters) -> dict:
    """Counts per status, priority and tag (three queries). Each facet applies every filter but
    its own, so its counts show what choosing another value of it would give."""
    scope = _scope(user=user, project=project)
    status = {s: 0 for s in BugStatus.values}
    for key, n in _apply(scope, filters, user=user, skip="status").values_list("status").annotate(n=Count("pk")).order_by():
        status[key] = n
    priority = {p: 0 for p in Priority.values}
    for key, n in _apply(scope, filters, user=user, skip="priority").values_list("priority").annotate(n=Count("pk")).order_by():
        priority[key] = n
    in_scope = _apply(scope, filters, user=user, skip="tag").values("pk")
    tag = {
        slug: n
        for slug, n in Tag.objects.annotate(n=Count("bugs", filter=Q(bugs__in=Subquery(in_scope))))
        .order_by("position", "slug").values_list("slug", "n")
    }
    return {"status": status, "priority": priority, "tag": tag}


# --- one bug --------------------------------------------------------------------------------
def bug_detail(*, bug: Bug, user, failures_limit: int = 50) -> dict:
    """Everything the bug page and GET /api/bugs/{id} show to `user`, in a constant number of queries.

    Blind labeling (labeling.selectors.blind): the failures of items whose labels `user` may not see
    are left out of the list and of the confusion counts (`failures_hidden` says how many): a failure
    row shows its input next to a prediction and an expected label, and the bug's title often names
    both."""
    visibility = labels_visible_to(user=user, project=bug.project)
    shown = FailureExample.objects.filter(bug=bug).filter(visibility.q("item__"))
    failures = list(shown.select_related("item").order_by("-id")[:failures_limit])
    agg = FailureExample.objects.filter(bug=bug).aggregate(
        n=Count("pk"), unknown=Count("pk", filter=Q(expected_label__isnull=True)),
        shown=Count("pk", filter=visibility.q("item__")) if not visibility.all else Count("pk"),
    )
    confusion = list(
        shown.values("model_version", "predicted_label", "expected_label").annotate(n=Count("pk")).order_by("-n")[:20]
    )
    series = list(
        BugOccurrence.objects.filter(bug=bug).annotate(day=TruncDate("seen_at", tzinfo=dt_timezone.utc))
        .values("day").annotate(n=Sum("count")).order_by("day")
    )
    return {
        "bug": bug,
        "tags": list(bug.tags.order_by("position", "slug")),
        "failures": failures,
        "failure_count": agg["n"],
        "failures_hidden": agg["n"] - agg["shown"],
        "failures_visible": agg["shown"],
        "failures_without_expected": agg["unknown"],
        "confusion": confusion,
        "events": list(BugEvent.objects.filter(bug=bug).select_related("actor").order_by("id")),
        "comments": list(Comment.objects.filter(bug=bug).select_related("author").order_by("id")),
        "series": [{"day": row["day"].isoformat(), "count": row["n"]} for row in series],
        "duplicate_of": Bug.objects.filter(pk=bug.duplicate_of_id).only("pk", "title").first() if bug.duplicate_of_id else None,
    }


# --- the weekly triage ----------------------------------------------------------------------
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
        raise ValidationFailed(f"week must look like 2026-W47 (an ISO week); got {str(value)[:20]!r}.",
                               fields={"week": ["Invalid ISO week."]})


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
    start = datetime.combine(week_start, time.min, tzinfo=dt_timezone.utc)
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
    for bug_id, slug in BugTag.objects.filter(bug_id__in=listed).order_by("tag__position", "tag__slug").values_list("bug_id", "tag__slug"):
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
        Q(triaged_at__gte=start, triaged_at__lt=end) | Q(resolved_at__gte=start, resolved_at__lt=end, status__in=CLOSED_STATUSES)
    ).values_list("created_at", "triaged_at", "resolved_at", "status"):
        if triaged and start <= triaged < end:
            to_triage.append((triaged - created).total_seconds())
        if resolved and status in CLOSED_STATUSES and start <= resolved < end:
            to_resolve.append((resolved - created).total_seconds())

    open_bugs = Q(bugs__project=project, bugs__status__in=OPEN_STATUSES)
    tag_rows = list(
        Tag.objects.annotate(n=Count("bugs", filter=open_bugs), occ=Sum("bugs__occurrences", filter=open_bugs))
        .filter(n__gt=0).order_by("-n", "-occ", "position").values("slug", "name", "n", "occ")
    )
    total = sum(r["n"] for r in tag_rows)
    pareto, running = [], 0
    for r in tag_rows:
        running += r["n"]
        pareto.append({"slug": r["slug"], "name": r["name"], "count": r["n"], "occurrences": r["occ"] or 0,
                       "share": r["n"] / total, "cumulative_share": running / total})
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
    digest = Digest.objects.filter(pk=digest_id).first() if str(digest_id).isdigit() else None
    if digest is None:
        raise NotFound("Digest not found.")
    try:
        digest.project = access_project(user=user, project_id=digest.project_id)
    except NotFound:
        raise NotFound("Digest not found.")
    return digest
