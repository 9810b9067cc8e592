"""The weekly triage page (it updates bugs inline through the JSON API) and the weekly digests."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from bugqueue.selectors.bugs import project_assignees, tag_list
from bugqueue.selectors.datasets import resolve_dialog_datasets
from bugqueue.selectors.triage import access_digest, parse_week, triage_week
from bugqueue.selectors.triage import digest_list as digests_of
from bugqueue.views.bugs import projects_of
from common.errors import DomainError, NotFound
from labeling.selectors.access import REVIEW_ROLES
from labeling.views.projects import page_project


@login_required
def triage(request):
    projects = projects_of(request)
    if not request.GET.get("project"):
        if not projects:
            return render(request, "bugqueue/triage.html", {"project": None, "projects": []})
        return redirect(reverse("triage") + f"?project={projects[0].pk}")
    project = page_project(request, request.GET["project"])
    try:
        week_start = parse_week(request.GET.get("week"))
    except DomainError as exc:
        messages.error(request, exc.message)
        week_start = parse_week(None)
    view = triage_week(project=project, week_start=week_start)
    can_triage = project.user_role in REVIEW_ROLES
    rows = [(name, b) for name in ("new", "reopened", "backlog") for b in view["sections"][name]]
    return render(
        request,
        "bugqueue/triage.html",
        {
            "project": project,
            "projects": projects,
            "view": view,
            "rows": rows,
            "can_triage": can_triage,
            "resolve_datasets": resolve_dialog_datasets(project=project) if can_triage else [],
            "members": [u.username for u in project_assignees(project=project)],
            "all_tags": [{"slug": t.slug, "name": t.name, "description": t.description} for t in tag_list()],
            "pareto": [
                {
                    "slug": t["slug"],
                    "name": t["name"],
                    "count": t["count"],
                    "cumulative": round(100 * t["cumulative_share"], 1),
                }
                for t in view["tags"]
            ],
        },
    )


@login_required
def digest_list(request):
    projects = projects_of(request)
    if not request.GET.get("project"):
        if not projects:
            return render(request, "bugqueue/digest_list.html", {"project": None, "projects": [], "digests": []})
        return redirect(reverse("digest-list") + f"?project={projects[0].pk}")
    project = page_project(request, request.GET["project"])
    return render(
        request,
        "bugqueue/digest_list.html",
        {"project": project, "projects": projects, "digests": digests_of(project=project)},
    )


@login_required
def digest_page(request, digest_id):
    try:
        digest = access_digest(user=request.user, digest_id=digest_id)
    except NotFound:
        raise Http404("Digest not found")
    return render(request, "bugqueue/digest.html", {"digest": digest, "project": digest.project, "data": digest.data})
