"""Web pages. Thin: permission-checked reads through selectors, writes through services."""

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from common.errors import Forbidden, NotFound, ValidationFailed
from labeling.selectors.access import ANY_ROLE, MANAGER_ROLES, access_project, project_create_allowed
from labeling.selectors.labels import guideline_revisions
from labeling.selectors.projects import project_labels, project_list_with_counts, project_members
from labeling.services.projects import project_update


def page_project(request, project_id, roles=ANY_ROLE):
    """access_project for web pages: NotFound -> 404 page, Forbidden -> 403 page."""
    try:
        return access_project(user=request.user, project_id=project_id, roles=roles)
    except NotFound:
        raise Http404("Project not found")
    except Forbidden as exc:
        raise PermissionDenied(exc.message)


@login_required
def home(request):
    projects = list(project_list_with_counts(user=request.user))
    roles = dict(request.user.memberships.values_list("project_id", "role"))
    for p in projects:
        p.user_role = "manager (staff)" if request.user.is_staff and p.pk not in roles else roles.get(p.pk)
        p.pct_resolved = round(100 * p.n_resolved / p.n_items) if p.n_items else 0
    return render(
        request,
        "labeling/home.html",
        {"projects": projects, "can_create_projects": project_create_allowed(user=request.user)},
    )


@login_required
def project_detail(request, project_id):
    project = page_project(request, project_id)
    counts = project_list_with_counts(user=request.user).filter(pk=project.pk).first()
    labels = project_labels(project=project)
    revisions = guideline_revisions(project=project)
    for label in labels:
        label.revisions = revisions.get(label.pk, [])
    return render(
        request,
        "labeling/project_detail.html",
        {
            "project": project,
            "labels": labels,
            "counts": counts,
            "members": project_members(project=project),
            "is_manager": project.user_role in MANAGER_ROLES,
        },
    )


@login_required
@require_POST
def project_slice_fields_view(request, project_id):
    """The project's slice fields from one text box: payload keys separated by commas or spaces."""
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    raw = request.POST.get("slice_fields", "")
    fields = [f for f in re.split(r"[,\s]+", raw) if f]
    try:
        project_update(project=project, actor=request.user, slice_fields=fields)
        messages.success(
            request, f"Slice fields: {', '.join(fields)}." if fields else "No slice fields: live accuracy is not split."
        )
    except ValidationFailed as exc:
        messages.error(request, f"Slice fields not saved: {exc.message}")
    return redirect(reverse("project-detail", args=[project.pk]) + "#slice-fields")
