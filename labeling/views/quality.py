"""Web pages for review and quality. Thin: selectors read, services write.

The review page is keyboard-first: it leases through POSTs (htmx swaps the item pane; without
JavaScript the same forms post and the page re-renders), never on GET.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from labeling.selectors import quality as sq
from labeling.selectors.access import MANAGER_ROLES, REVIEW_ROLES
from labeling.services.quality.runs import quality_run_request, quality_settings_update
from labeling.services.resolution import item_resolve, review_next, review_skip
from labeling.views.projects import page_project


def _page_item(request, item_id):
    try:
        return sq.access_item(user=request.user, item_id=item_id, roles=REVIEW_ROLES)
    except NotFound:
        raise Http404("Item not found")
    except Forbidden as exc:
        raise PermissionDenied(exc.message)


def _render_review(request, project, *, ctx=None, empty=False, flash="", error="", status=200):
    context = {
        "project": project,
        "ctx": ctx,
        "empty": empty,
        "flash": flash,
        "error": error,
        "queue_size": sq.review_queue_size(project=project),
    }
    template = "labeling/_review_pane.html" if request.headers.get("HX-Request") else "labeling/review.html"
    return render(request, template, context, status=status)


def _next(request, project, *, flash=""):
    lease = review_next(project=project, reviewer=request.user)
    if lease is None:
        return _render_review(request, project, empty=True, flash=flash)
    return _render_review(request, project, ctx=sq.review_context(item=lease.item, lease=lease), flash=flash)


@login_required
@require_GET
def review_page(request, project_id):
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    return _render_review(request, project)


@login_required
@require_POST
def review_next_view(request, project_id):
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    return _next(request, project)


@login_required
@require_POST
def review_resolve_view(request, project_id, item_id):
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    item = _page_item(request, item_id)
    if item.project_id != project.pk:
        raise Http404("Item not found")
    label = request.POST.get("label", "")
    try:
        item_resolve(
            item=item,
            reviewer=request.user,
            label=label,
            note=request.POST.get("note", ""),
            append_to_guideline=request.POST.get("append_to_guideline") in ("on", "true", "1"),
        )
    except ValidationFailed as exc:
        return _render_review(request, project, ctx=sq.review_context(item=item), error=exc.message)
    return _next(request, project, flash=f"{item.external_id} resolved as {label}.")


@login_required
@require_POST
def review_skip_view(request, project_id, item_id):
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    item = _page_item(request, item_id)
    if item.project_id != project.pk:
        raise Http404("Item not found")
    try:
        review_skip(item=item, reviewer=request.user)
    except Conflict:
        pass  # the lease had expired: nothing to give back
    return _next(request, project, flash=f"Skipped {item.external_id}.")


@login_required
@require_GET
def quality_page(request, project_id):
    """The run, its histogram and the settings at once; the agreement (with the confusion heatmap)
    and the annotator table, which read every annotation, load after the page through htmx (the
    two panels below), or with it (?panels=inline, the no-JavaScript link)."""
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    inline = request.GET.get("panels") == "inline"
    return render(
        request,
        "labeling/quality.html",
        {
            "project": project,
            "is_manager": project.user_role in MANAGER_ROLES,
            **sq.quality_overview(project=project, with_panels=inline),
        },
    )


@login_required
@require_GET
def quality_agreement_panel(request, project_id):
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    return render(
        request, "labeling/_quality_agreement.html", {"project": project, **sq.agreement_panel(project=project)}
    )


@login_required
@require_GET
def quality_annotators_panel(request, project_id):
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    return render(request, "labeling/_quality_annotators.html", {"annotators": sq.annotator_table(project=project)})


@login_required
@require_POST
def quality_run_create_view(request, project_id):
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    try:
        run = quality_run_request(project_id=project.pk, requested_by=request.user)
        messages.success(request, f"Quality run #{run.pk} queued.")
    except Conflict as exc:
        messages.error(request, exc.message)
    return redirect("quality", project_id=project.pk)


@login_required
@require_POST
def quality_settings_view(request, project_id):
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    raw = request.POST.get("auto_run_after_disputed", "")
    try:
        value = int(raw)
    except ValueError:
        messages.error(request, "auto-run threshold: give a whole number (0 turns it off).")
        return redirect("quality", project_id=project.pk)
    rule = {}
    for key, what in (("max_accept_error", "target error"), ("audit_rate", "audit rate")):
        text = request.POST.get(key, "").strip()
        if text:
            try:
                rule[key] = float(text)
            except ValueError:
                messages.error(request, f"{what}: give a number.")
                return redirect("quality", project_id=project.pk)
    if request.POST.get("accept_mode"):
        rule["accept_mode"] = request.POST["accept_mode"]
    try:
        quality_settings_update(project=project, auto_run_after_disputed=value, **rule)
        messages.success(request, "Saved." if value else "Saved. Automatic runs are off.")
    except ValidationFailed as exc:
        messages.error(request, exc.message)
    return redirect("quality", project_id=project.pk)
