"""Web pages for review and quality. Thin: selectors read, services write.

The review page is keyboard-first: it leases through POSTs (htmx swaps the item pane; without
JavaScript the same forms post and the page re-renders), never on GET.
"""

from django.conf import settings
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
from labeling.services.review_undo import item_resolve_undo
from labeling.views.projects import page_project


def _page_item(request, item_id):
    try:
        return sq.access_item(user=request.user, item_id=item_id, roles=REVIEW_ROLES)
    except NotFound:
        raise Http404("Item not found")
    except Forbidden as exc:
        raise PermissionDenied(exc.message)


def _render_review(request, project, *, ctx=None, empty=False, flash="", error="", status=200):
    recent = sq.review_recent_decisions(project=project, reviewer=request.user)
    context = {
        "project": project,
        "ctx": ctx,
        "empty": empty,
        "flash": flash,
        "error": error,
        "queue_size": sq.review_queue_size(project=project),
        "recent": recent,
        "undo_minutes": round(settings.LOUPE_REVIEW_UNDO_SECONDS / 60),
    }
    template = "labeling/_review_pane.html" if request.headers.get("HX-Request") else "labeling/review.html"
    return render(request, template, context, status=status)


def _next(request, project, *, flash="", error=""):
    lease = review_next(project=project, reviewer=request.user)
    if lease is None:
        return _render_review(request, project, empty=True, flash=flash, error=error)
    return _render_review(
        request, project, ctx=sq.review_context(item=lease.item, lease=lease), flash=flash, error=error
    )


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
def review_undo_view(request, project_id, item_id):
    """Undo the reviewer's decision on an item: the item comes back into the pane (their lease)."""
    project = page_project(request, project_id, roles=REVIEW_ROLES)
    item = _page_item(request, item_id)
    if item.project_id != project.pk:
        raise Http404("Item not found")
    try:
        undo = item_resolve_undo(item=item, user=request.user)
    except (Conflict, Forbidden) as exc:
        message = exc.message
        if getattr(exc, "code", "") == "already_undone":
            message = f"Nothing to undo: {message}"
        return _next(request, project, error=message)
    flash = f"Undone: {item.external_id} is back for review (it was decided {undo.undone_label}"
    flash += f"; its label is {undo.change.label} again)." if undo.change.label else "; it has no label again)."
    if undo.guideline_revision is not None:
        flash += " The note was taken out of the guideline."
    return _next(request, project, flash=flash, error=undo.guideline_kept)


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


# The settings form speaks in its labels' words: one message per field, shown next to the field.
_SETTINGS_MESSAGES = {
    "auto_run_after_disputed": "Run automatically after: enter a whole number of disputed items from 0 (off) "
    "to 1,000,000 (e.g. 25).",
    "max_accept_error": "Target error: enter a number from 0.001 to 0.5 (e.g. 0.02 for 2%).",
    "audit_rate": "Audit rate: enter a number from 0 to 0.5 (e.g. 0.02 to audit 2% of accepted items).",
    "accept_mode": "Accept rule: choose one of the listed rules.",
}


def _settings_form_read(post) -> tuple[dict, dict]:
    """The form's values as typed, and the words for each field that does not parse."""
    values = {key: post.get(key, "").strip() for key in _SETTINGS_MESSAGES}
    errors = {}
    if values["auto_run_after_disputed"]:
        try:
            int(values["auto_run_after_disputed"])
        except ValueError:
            errors["auto_run_after_disputed"] = _SETTINGS_MESSAGES["auto_run_after_disputed"]
    for key in ("max_accept_error", "audit_rate"):
        if values[key]:
            try:
                float(values[key])
            except ValueError:
                errors[key] = _SETTINGS_MESSAGES[key]
    return values, errors


@login_required
@require_POST
def quality_settings_view(request, project_id):
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    values, errors = _settings_form_read(request.POST)
    if not errors:
        text = values["auto_run_after_disputed"]
        value = int(text) if text else None  # left empty: unchanged
        rule = {k: float(values[k]) for k in ("max_accept_error", "audit_rate") if values[k]}
        if values["accept_mode"]:
            rule["accept_mode"] = values["accept_mode"]
        try:
            quality_settings_update(project=project, auto_run_after_disputed=value, **rule)
        except ValidationFailed as exc:
            fields = [k for k in (exc.fields or {}) if k in _SETTINGS_MESSAGES]
            errors = {k: _SETTINGS_MESSAGES[k] for k in fields} or {"form": exc.message}
        else:
            messages.success(request, "Saved. Automatic runs are off." if value == 0 else "Saved.")
            return redirect("quality", project_id=project.pk)
    # Shown again with what was typed and the words next to each field (not a redirect that loses them).
    return render(
        request,
        "labeling/quality.html",
        {
            "project": project,
            "is_manager": True,
            "form_values": values,
            "form_errors": errors,
            **sq.quality_overview(project=project, with_panels=False),
        },
        status=400,
    )
