"""Web page of the labeled-delta export: recent snapshots, their cursors, and a button for a new one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from common.errors import Forbidden, NotFound, ValidationFailed
from labeling.models import ExportFormat, ExportStatus, Role
from labeling.selectors.export import (
    access_project_export,
    cursor_encode,
    export_grants_visible,
    export_list,
    label_history_head,
)
from labeling.services.export import export_request

RECENT = 50


def _page_export_project(request, project_id):
    try:
        return access_project_export(user=request.user, project_id=project_id)
    except NotFound:
        raise Http404("Project not found")
    except Forbidden as exc:
        raise PermissionDenied(exc.message)


def _exports_context(project):
    exports = list(export_list(project=project)[:RECENT])
    for e in exports:
        e.since_cursor = "0" if e.since_seq == 0 else cursor_encode(project_id=project.pk, seq=e.since_seq)
        e.next_cursor = cursor_encode(project_id=project.pk, seq=e.until_seq)
        e.download_url = reverse("api-export-download", args=[e.pk]) if e.status == ExportStatus.DONE else ""
    busy = any(e.status in (ExportStatus.PENDING, ExportStatus.RUNNING) for e in exports)
    return {"project": project, "exports": exports, "busy": busy}


@login_required
@require_http_methods(["GET", "POST"])
def project_export(request, project_id):
    project = _page_export_project(request, project_id)
    htmx = request.headers.get("HX-Request") == "true"
    notice = error = ""
    if request.method == "POST":
        try:
            export, created = export_request(
                project=project,
                actor=request.user,
                format=request.POST.get("format") or ExportFormat.JSONL,
                since=request.POST.get("since") or "0",
                compact=request.POST.get("compact") in ("on", "true", "1"),
            )
            if not created:
                notice = f"Nothing changed since snapshot #{export.pk}, which already covers this range."
            elif export.since_seq == export.until_seq:
                notice = f"Snapshot #{export.pk} requested: no label changed after this cursor, the file will be empty."
            else:
                notice = f"Snapshot #{export.pk} requested: label changes {export.since_seq + 1}–{export.until_seq}."
        except ValidationFailed as exc:
            error = exc.message
        if not htmx:
            (messages.error if error else messages.success)(request, error or notice)
            return redirect("project-export", project_id=project.pk)
    context = _exports_context(project)
    context.update(notice=notice, error=error)
    if htmx:
        return render(request, "labeling/_export_list.html", context)
    head = label_history_head(project_id=project.pk)
    context.update(
        tab="export",
        head=head,
        head_cursor=cursor_encode(project_id=project.pk, seq=head),
        formats=ExportFormat.choices,
        grants=export_grants_visible(user=request.user, project=project),
        grants_all=project.user_role == Role.MANAGER,
        labels_url=request.build_absolute_uri(reverse("api-labels", args=[project.pk])),
    )
    return render(request, "labeling/export.html", context)
