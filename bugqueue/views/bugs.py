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

from bugqueue.models import BugKind, BugStatus, Priority, Resolution
from bugqueue.selectors.bugs import (
    BugFilters,
    access_bug,
    bug_detail,
    bug_facets,
    bug_filters_parse,
    bug_list,
    bug_merge_in_force,
    bug_settings_get,
    project_assignees,
    tag_list,
)
from bugqueue.selectors.datasets import bug_dataset_progress, resolve_dialog_datasets
from bugqueue.services.bugs import UNSET, bug_settings_update, bug_update, comment_add
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


@login_required
def bug_queue(request):
    project = page_project(request, request.GET["project"]) if request.GET.get("project") else None
    try:
        filters = bug_filters_parse(request.GET)
    except DomainError as exc:
        messages.error(request, exc.message)
        filters = BugFilters()
    qs = bug_list(user=request.user, project=project, filters=filters)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    facets = bug_facets(user=request.user, project=project, filters=filters)
    base = filters.as_query()
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
    settings_row = bug_settings_get(project=project) if project is not None else None
    return render(
        request,
        "bugqueue/queue.html",
        {
            "project": project,
            "projects": projects_of(request),
            "page": page,
            "filters": filters,
            "facets": facet_rows,
            "kinds": BugKind.choices,
            "priorities": Priority.choices,
            "statuses": BugStatus.choices,
            "page_query": "&".join(f"{k}={v}" for k, v in base.items()),
            "bug_settings": settings_row,
            "is_manager": project is not None and project.user_role == "manager",
        },
    )


@login_required
def bug_page(request, bug_id):
    bug = _page_bug(request, bug_id)
    detail = bug_detail(bug=bug, user=request.user)
    can_triage = bug.project.user_role in REVIEW_ROLES
    return render(
        request,
        "bugqueue/bug_detail.html",
        {
            **detail,
            "project": bug.project,
            "can_triage": can_triage,
            "statuses": BugStatus.choices,
            "priorities": Priority.choices,
            "resolutions": Resolution.choices,
            "members": project_assignees(project=bug.project) if can_triage else [],
            "all_tags": list(tag_list()),
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
    """The bug page's small form: status, priority, assignee, tags (same service as PATCH)."""
    bug = _page_bug(request, bug_id, roles=REVIEW_ROLES)
    changes = {}
    for key in ("status", "priority"):
        if request.POST.get(key):
            changes[key] = request.POST[key]
    if "assignee" in request.POST:
        changes["assignee"] = request.POST["assignee"] or None
    if "tags_present" in request.POST:
        changes["tags"] = request.POST.getlist("tags")
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
