"""Bug-queue web pages: the queue, a bug's page and its small forms. Thin: permission-checked reads
through selectors, writes through services (the triage and digest pages: views/triage.py)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from bugqueue.models import OPEN_STATUSES, BugKind, BugStatus, Priority, Resolution
from bugqueue.selectors.bug_page import bug_breakdowns, bug_item_comments, bug_merge_in_force
from bugqueue.selectors.bugs import (
    BugFilters,
    access_bug,
    bug_detail,
    bug_facets,
    bug_filters_parse,
    bug_list,
    bug_settings_get,
    project_assignees,
    tag_list,
)
from bugqueue.selectors.datasets import bug_dataset_progress, resolve_dialog_datasets
from bugqueue.selectors.stream import bug_trends, may_change_bugs_somewhere, stream_members
from bugqueue.services.bug_settings import bug_settings_update
from bugqueue.services.bugs import UNSET, bug_update
from bugqueue.services.comments import comment_add
from common.errors import DomainError, Forbidden, NotFound
from labeling.selectors.access import ANY_ROLE, MANAGER_ROLES, REVIEW_ROLES
from labeling.selectors.projects import project_list
from labeling.views.projects import page_project

PAGE_SIZE = 50


def _page_bug(request, bug_id, roles=ANY_ROLE):
    try:
        return access_bug(user=request.user, bug_id=bug_id, roles=roles)
    except NotFound:
        raise Http404("Bug not found")
    except Forbidden as exc:
        raise PermissionDenied(exc.message)


def projects_of(request):
    return list(project_list(user=request.user))


# The stream's saved views: (key, label, search). The first is the default.
SAVED_VIEWS = (
    ("unresolved", "Unresolved", "is:unresolved"),
    ("mine", "Mine", "is:unresolved assigned:me"),
    ("unassigned", "Unassigned", "is:unresolved assigned:none"),
    ("regressed", "Regressed", "is:unresolved is:regressed"),
    ("review", "For review", "is:unresolved is:new"),  # new: nobody has triaged it yet
    ("snoozed", "Snoozed", "is:snoozed"),
    ("all", "All", ""),
)
DEFAULT_SEARCH = SAVED_VIEWS[0][2]
TREND_DAYS = 14


def sparkline(counts, *, width=70, height=18) -> str:
    """SVG polyline points for a small trend line of `counts` (oldest first)."""
    top = max(counts) or 1
    step = width / max(len(counts) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - 1 - (c / top) * (height - 2):.1f}" for i, c in enumerate(counts))


@login_required
def bug_queue(request):
    """The stream: unresolved bugs by default, saved views, search, compact rows with a trend line,
    bulk actions (through the JSON API, static/bugqueue/stream.js)."""
    project = page_project(request, request.GET["project"]) if request.GET.get("project") else None
    params = request.GET.copy()
    if "q" not in params:
        params["q"] = DEFAULT_SEARCH
    search_error = ""
    try:
        filters = bug_filters_parse(params)
    except DomainError as exc:
        search_error = exc.message
        filters = BugFilters(q=params.get("q", ""))
    qs = bug_list(user=request.user, project=project, filters=filters)
    if search_error:
        qs = qs.none()  # the page says what is wrong with the search instead of guessing
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    bugs = list(page.object_list)
    trends = bug_trends(bug_ids=[b.pk for b in bugs], days=TREND_DAYS)
    for b in bugs:
        b.trend = trends[b.pk]
        b.trend_total = sum(b.trend)
        b.trend_points = sparkline(b.trend)
    facets = bug_facets(user=request.user, project=project, filters=filters)
    base = filters.as_query()
    base["q"] = filters.q  # kept even when empty: an empty search is the "All" view
    if project is not None:
        base["project"] = str(project.pk)

    def link(key, value):
        """The queue with facet `key` set to `value` (or cleared when it is already chosen)."""
        q = QueryDict(mutable=True)
        q.update(base)
        current = {"status": filters.statuses, "priority": filters.priorities, "tag": filters.tags}[key]
        if value in current:
            q.pop(key, None)
        else:
            q[key] = value
        return "?" + q.urlencode()

    def view_link(search):
        q = QueryDict(mutable=True)
        q["q"] = search
        if project is not None:
            q["project"] = str(project.pk)
        return "?" + q.urlencode()

    tags = {t.slug: t for t in tag_list()}
    facet_rows = {
        "status": [
            (s, BugStatus(s).label, n, s in filters.statuses, link("status", s)) for s, n in facets["status"].items()
        ],
        "priority": [
            (p, p.upper(), n, p in filters.priorities, link("priority", p)) for p, n in facets["priority"].items()
        ],
        "tag": [
            (t, tags[t].name if t in tags else t, n, t in filters.tags, link("tag", t))
            for t, n in facets["tag"].items()
        ],
    }
    current_q = " ".join(filters.q.split())
    views = [(key, label, view_link(q), current_q == q) for key, label, q in SAVED_VIEWS]
    settings_row = bug_settings_get(project=project) if project is not None else None
    page_query = QueryDict(mutable=True)
    page_query.update(base)
    can_triage = (
        project.user_role in REVIEW_ROLES if project is not None else may_change_bugs_somewhere(user=request.user)
    )
    return render(
        request,
        "bugqueue/queue.html",
        {
            "project": project,
            "projects": projects_of(request),
            "page": page,
            "bugs": bugs,
            "filters": filters,
            "search_error": search_error,
            "views": views,
            "facets": facet_rows,
            "kinds": BugKind.choices,
            "priorities": Priority.choices,
            "statuses": BugStatus.choices,
            "page_query": page_query.urlencode(),
            "bug_settings": settings_row,
            "is_manager": project is not None and project.user_role == "manager",
            "can_triage": can_triage,
            "stream_data": {
                "canTriage": can_triage,
                "tags": [{"slug": t.slug, "name": t.name} for t in tags.values()],
                "members": stream_members(user=request.user, project=project) if can_triage else [],
                "me": request.user.username,
            },
            "trend_days": TREND_DAYS,
        },
    )


@login_required
def bug_page(request, bug_id):
    bug = _page_bug(request, bug_id)
    try:
        failures_page = int(request.GET.get("page") or 1)
    except ValueError:
        failures_page = 1
    detail = bug_detail(bug=bug, user=request.user, failures_limit=PAGE_SIZE, failures_page=failures_page)
    comment_items = list({f.item_id: f.item for f in detail["failures"] if f.item is not None}.values())
    can_triage = bug.project.user_role in REVIEW_ROLES
    all_tags = list(tag_list())
    on_bug = {t.pk for t in detail["tags"]}
    return render(
        request,
        "bugqueue/bug_detail.html",
        {
            **detail,
            **bug_item_comments(bug=bug, user=request.user),
            "comment_items": comment_items,
            "project": bug.project,
            "can_triage": can_triage,
            "open_statuses": [(v, label) for v, label in BugStatus.choices if v in OPEN_STATUSES],
            "priorities": Priority.choices,
            "resolutions": Resolution.choices,
            "members": project_assignees(project=bug.project) if can_triage else [],
            "addable_tags": [t for t in all_tags if t.pk not in on_bug],
            "breakdowns": bug_breakdowns(bug=bug, user=request.user, groups=detail["groups"]),
            "progress": bug_dataset_progress(bug=bug),
            "resolve_datasets": resolve_dialog_datasets(project=bug.project) if can_triage else [],
            "resolve_bug": {"id": bug.pk, "title": bug.title, "tags": [t.slug for t in detail["tags"]]},
            "merge": bug_merge_in_force(bug=bug),
            "can_merge": bug.project.user_role in MANAGER_ROLES,
        },
    )


@login_required
@require_POST
def bug_comment(request, bug_id):
    bug = _page_bug(request, bug_id)
    try:
        comment_add(bug=bug, author=request.user, body=request.POST.get("body", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("bug-page", args=[bug.pk]) + "#comments")


@login_required
@require_POST
def bug_edit(request, bug_id):
    """The bug page's small forms: status, priority, assignee; the tag control's add / remove of one
    tag (same service as PATCH)."""
    bug = _page_bug(request, bug_id, roles=REVIEW_ROLES)
    changes = {}
    for key in ("status", "priority"):
        if request.POST.get(key):
            changes[key] = request.POST[key]
    if "assignee" in request.POST:
        changes["assignee"] = request.POST["assignee"] or None
    if "tags_present" in request.POST:
        changes["tags"] = request.POST.getlist("tags")
    for key in ("tags_add", "tags_remove"):  # the tag control: one tag at a time, the others stay
        values = [v for v in request.POST.getlist(key) if v]
        if values:
            changes[key] = values
    try:
        bug_update(
            bug=bug,
            actor=request.user,
            note=request.POST.get("note", ""),
            duplicate_of=request.POST.get("duplicate_of") or UNSET,
            **changes,
        )
        messages.success(request, "Bug updated.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("bug-page", bug_id=bug.pk)


@login_required
@require_POST
def bug_settings(request, project_id):
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    bug_settings_update(
        project=project,
        actor=request.user,
        auto_file_failed_predictions=request.POST.get("auto_file_failed_predictions") == "on",
    )
    messages.success(request, "Bug-queue settings saved.")
    return redirect(reverse("bug-queue") + f"?project={project.pk}")
