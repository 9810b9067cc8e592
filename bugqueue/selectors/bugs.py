"""Bug-queue reads: permission-checked access to a bug, the filtered queue with facet counts, a
bug's page (the weekly triage and digests: selectors/triage.py). Every read runs a constant number
of queries (no N+1): the tests pin them with django_assert_max_num_queries."""

from dataclasses import dataclass, field
from datetime import UTC

from django.db.models import Count, Exists, Max, Min, OuterRef, Q, Subquery, Sum
from django.db.models.functions import TruncDate

from bugqueue.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Bug,
    BugEvent,
    BugKind,
    BugOccurrence,
    BugProjectSettings,
    BugStatus,
    Comment,
    FailureExample,
    Priority,
    Tag,
)
from bugqueue.selectors.access import access_in_project
from bugqueue.selectors.search import ParsedQuery, search_parse
from common.errors import ValidationFailed
from labeling.models import Membership, Project
from labeling.selectors.access import ANY_ROLE
from labeling.selectors.blind import labels_visible_to

BugTag = Bug.tags.through
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
    return access_in_project(
        Bug.objects.select_related("assignee", "reporter"), bug_id, user=user, roles=roles, what="Bug"
    )


def visible_project_ids(*, user):
    """A subquery of the projects `user` may see (staff: every project)."""
    if user.is_staff:
        return Project.objects.values("pk")
    return Membership.objects.filter(user=user).values("project_id")


def tag_list():
    return Tag.objects.order_by("position", "slug")


def tags_resolve(slugs, *, field: str = "tags") -> list[Tag]:
    """Tag slugs -> Tag rows, in the order given; unknown slugs are a 400 that lists them (under
    `field`, the input's name)."""
    if not isinstance(slugs, (list, tuple)) or not all(isinstance(s, str) for s in slugs):
        raise ValidationFailed(f"{field} must be a list of tag slugs.", fields={field: ["Must be a list of strings."]})
    wanted = list(dict.fromkeys(s.strip() for s in slugs))
    if not wanted:
        return []
    found = {t.slug: t for t in Tag.objects.filter(slug__in=wanted)}
    unknown = [s for s in wanted if s not in found]
    if unknown:
        raise ValidationFailed(
            f"Unknown tag{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} (see GET /api/tags).",
            fields={field: [f"Unknown tag {s!r}." for s in unknown]},
        )
    return [found[s] for s in wanted]


def bug_settings_get(*, project: Project) -> BugProjectSettings:
    """The project's settings (defaults when none were saved); read-only, writes nothing."""
    return BugProjectSettings.objects.filter(project=project).first() or BugProjectSettings(project=project)


def project_assignees(*, project):
    """Users a bug of `project` can be assigned to: its members."""
    return [
        m.user for m in Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    ]


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
    search: ParsedQuery = field(default_factory=ParsedQuery)  # `q` parsed (bugqueue.selectors.search)

    def as_query(self) -> dict:
        out = {}
        for key, values in (
            ("status", self.statuses),
            ("tag", self.tags),
            ("priority", self.priorities),
            ("kind", self.kinds),
        ):
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
    search = ParsedQuery()
    try:
        search = search_parse(q)
    except ValidationFailed as exc:
        errors["q"] = [exc.message]
    search_tags = [*search.values("tag"), *search.values("tag", negated=True)]
    if search_tags and "q" not in errors:
        known = set(Tag.objects.filter(slug__in=search_tags).values_list("slug", flat=True))
        unknown = [t for t in dict.fromkeys(search_tags) if t not in known]
        if unknown:
            errors["q"] = [f"Unknown tag {unknown[0]!r} in the search (see GET /api/tags)."]
    if errors:
        # a search error reads on its own (the page shows it under the box)
        message = errors["q"][0] if list(errors) == ["q"] else next(f"{k}: {v[0]}" for k, v in errors.items())
        raise ValidationFailed(message, fields=errors)
    return BugFilters(
        list(dict.fromkeys(statuses)),
        tags,
        priorities,
        kinds,
        (params.get("assignee") or "").strip(),
        q,
        regressed,
        ordering,
        search,
    )


def _apply(qs, f: BugFilters, *, user=None, skip: tuple = ()):
    if f.statuses and "status" not in skip:
        qs = qs.filter(status__in=f.statuses)
    if f.priorities and "priority" not in skip:
        qs = qs.filter(priority__in=f.priorities)
    if f.tags and "tag" not in skip:
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
    if f.regressed is not None:
        qs = qs.filter(regressed=f.regressed)
    return _apply_search(qs, f.search, user=user)


_IS = {
    "unresolved": Q(status__in=OPEN_STATUSES, snoozed=False),
    "open": Q(status__in=OPEN_STATUSES),
    "closed": Q(status__in=CLOSED_STATUSES),
    "regressed": Q(regressed=True),
    "snoozed": Q(snoozed=True),
    **{s: Q(status=s) for s in BugStatus.values},
}


def _term_q(term, *, user) -> Q:
    """The condition of one search term (its values are alternatives)."""
    out = Q(pk__in=[])
    for v in term.values:
        if term.key == "is":
            out |= _IS[v]
        elif term.key == "tag":
            out |= Q(Exists(BugTag.objects.filter(bug_id=OuterRef("pk"), tag__slug=v)))
        elif term.key == "kind":
            out |= Q(kind=v)
        elif term.key == "model":
            out |= Q(model_version=v)
        elif term.key == "priority":
            out |= Q(priority=v)
        elif term.key == "assigned":
            if v == "none":
                out |= Q(assignee__isnull=True)
            elif v == "me":
                out |= Q(assignee_id=getattr(user, "pk", None))
            else:
                out |= Q(assignee__username=v)
    return ~out if term.negated else out  # Django keeps NULL assignees in a negated match


def _apply_search(qs, search: ParsedQuery, *, user):
    for term in search.terms:
        qs = qs.filter(_term_q(term, user=user))
    for chunk in search.text:
        if chunk.startswith("-") and len(chunk) > 1:
            qs = qs.exclude(Q(title__icontains=chunk[1:]) | Q(description__icontains=chunk[1:]))
            continue
        match = Q(title__icontains=chunk) | Q(description__icontains=chunk)
        if len(search.text) == 1:
            match |= Q(fingerprint=chunk)
        qs = qs.filter(match)
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
    """Counts per status, priority and tag (two queries). Each facet applies every filter but its
    own, so its counts show what choosing another value of it would give: status and priority come
    from one count per (status, priority) pair without either filter, each facet then applying the
    other's filter; tags from one count per tag over the bugs that match every other filter."""
    scope = _scope(user=user, project=project)
    status = dict.fromkeys(BugStatus.values, 0)
    priority = dict.fromkeys(Priority.values, 0)
    pairs = (
        _apply(scope, filters, user=user, skip=("status", "priority"))
        .values_list("status", "priority")
        .annotate(n=Count("*"))
        .order_by()
    )
    for s, p, n in pairs:
        if s in status and (not filters.priorities or p in filters.priorities):
            status[s] += n
        if p in priority and (not filters.statuses or s in filters.statuses):
            priority[p] += n
    in_scope = _apply(scope, filters, user=user, skip=("tag",)).order_by().values("pk")
    counts = dict(
        BugTag.objects.filter(bug_id__in=Subquery(in_scope)).values_list("tag_id").annotate(n=Count("*")).order_by()
    )
    tag = {slug: counts.get(pk, 0) for pk, slug in Tag.objects.order_by("position", "slug").values_list("pk", "slug")}
    return {"status": status, "priority": priority, "tag": tag}


# --- one bug --------------------------------------------------------------------------------
def bug_detail(*, bug: Bug, user, failures_limit: int = 50, failures_page: int = 1) -> dict:
    """Everything the bug page and GET /api/bugs/{id} show to `user`, in a constant number of queries.
    Failures come newest first, `failures_limit` per page (`failures_page`, from 1; a page past the
    end is the last one).

    Blind labeling (labeling.selectors.blind): the failures of items whose labels `user` may not see
    are left out of the list and of the confusion counts (`failures_hidden` says how many): a failure
    row shows its input next to a prediction and an expected label, and the bug's title often names
    both."""
    visibility = labels_visible_to(user=user, project=bug.project)
    shown = FailureExample.objects.filter(bug=bug).filter(visibility.q("item__"))
    if visibility.all:
        # Every count from one pass over the breakdown index (a large bug's rows are not read).
        groups = list(
            FailureExample.objects.filter(bug=bug)
            .values("model_version", "predicted_label", "expected_label")
            .annotate(n=Count("*"), first=Min("occurred_at"), last=Max("occurred_at"))
            .order_by()
        )
        n = sum(g["n"] for g in groups)
        agg = {"n": n, "shown": n, "unknown": sum(g["n"] for g in groups if g["expected_label"] is None)}
        confusion = sorted(
            groups, key=lambda g: (-g["n"], g["model_version"], g["predicted_label"], g["expected_label"] or "")
        )[:20]
    else:
        agg = FailureExample.objects.filter(bug=bug).aggregate(
            n=Count("pk"),
            unknown=Count("pk", filter=Q(expected_label__isnull=True)),
            shown=Count("pk", filter=visibility.q("item__")),
        )
        confusion = list(
            shown.values("model_version", "predicted_label", "expected_label")
            .annotate(n=Count("pk"))
            .order_by("-n")[:20]
        )
    pages = max(1, -(-agg["shown"] // failures_limit))
    page = min(max(1, failures_page), pages)
    offset = (page - 1) * failures_limit
    # The page's ids from the (bug, id) index alone; then those rows. In one statement the planner
    # may walk the whole table backwards by primary key for a large bug.
    ids = shown.order_by("-id").values("pk")[offset : offset + failures_limit]
    failures = list(FailureExample.objects.filter(pk__in=Subquery(ids)).select_related("item").order_by("-id"))
    series = list(
        BugOccurrence.objects.filter(bug=bug)
        .annotate(day=TruncDate("seen_at", tzinfo=UTC))
        .values("day")
        .annotate(n=Sum("count"))
        .order_by("day")
    )
    return {
        "bug": bug,
        "tags": list(bug.tags.order_by("position", "slug")),
        "failures": failures,
        "failure_count": agg["n"],
        "failures_hidden": agg["n"] - agg["shown"],
        "failures_visible": agg["shown"],
        "failures_without_expected": agg["unknown"],
        "failures_paging": {"page": page, "pages": pages, "first": offset + 1, "last": offset + len(failures)},
        "confusion": confusion,
        # Per (model version, predicted, expected) when `user` sees every failure: the bug page's
        # breakdown by model version is summed from it (bugqueue.selectors.bug_page).
        "groups": groups if visibility.all else None,
        "events": list(BugEvent.objects.filter(bug=bug).select_related("actor").order_by("id")),
        "comments": list(
            Comment.objects.filter(bug=bug).select_related("author").prefetch_related("mentions").order_by("id")
        ),
        "series": [{"day": row["day"].isoformat(), "count": row["n"]} for row in series],
        "duplicate_of": Bug.objects.filter(pk=bug.duplicate_of_id).only("pk", "title").first()
        if bug.duplicate_of_id
        else None,
    }
