"""Web pages of file imports: upload a file, map its columns (with a preview of the first rows),
start, watch the progress (static/loupe/import.js polls GET /api/imports/{id}), read the summary."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from labeling.models import ImportStatus
from labeling.selectors.access import MANAGER_ROLES, access_project
from labeling.selectors.imports import access_import, import_list
from labeling.selectors.projects import project_label_keys
from labeling.services.file_formats import JSON_ARRAY_MAX_BYTES, MAPPING_FIELDS
from labeling.services.file_import import PREVIEW_ROWS, import_create, import_start

RECENT = 20
REJECTIONS_SHOWN = 50
FIELD_HELP = {
    "external_id": ("External id", "Required: the item's id in your system (re-importing it updates the item)."),
    "text": ("Text", "Stored as payload.text and shown to annotators."),
    "priority": ("Priority", "An integer; higher is served first."),
    "label": ("Prediction label", "The model's predicted label (a label key of this project)."),
    "model_version": ("Model version", "Required with a prediction (or give a fixed one below)."),
    "predicted_at": ("Predicted at", "When production predicted; blank means the time of import."),
}


def _page(fn, **kwargs):
    try:
        return fn(**kwargs)
    except NotFound:
        raise Http404("Not found")
    except Forbidden as exc:
        raise PermissionDenied(exc.message)


@login_required
@require_http_methods(["GET", "POST"])
def import_page(request, project_id):
    project = _page(access_project, user=request.user, project_id=project_id, roles=MANAGER_ROLES)
    error = ""
    if request.method == "POST":
        try:
            job = import_create(project=project, actor=request.user, upload=request.FILES.get("file"))
            return redirect("import-detail", project_id=project.pk, import_id=job.pk)
        except ValidationFailed as exc:
            error = exc.message
    return render(
        request,
        "labeling/import.html",
        {
            "project": project,
            "tab": "import",
            "jobs": list(import_list(project=project)[:RECENT]),
            "error": error,
            "json_max_mb": JSON_ARRAY_MAX_BYTES // 2**20,
        },
        status=400 if error else 200,
    )


def _mapping_from_form(post, label_keys) -> dict:
    mapping = {field: post.get(field) or None for field in MAPPING_FIELDS}
    mapping["payload"] = post.getlist("payload")
    mapping["model_version_default"] = post.get("model_version_default", "")
    if post.get("prob_mode") == "columns":
        mapping["probabilities"] = None
        mapping["prob_columns"] = {k: post.get(f"prob_{k}") for k in label_keys if post.get(f"prob_{k}")}
    else:
        mapping["probabilities"] = post.get("probabilities") or None
        mapping["prob_columns"] = {}
    return mapping


@login_required
@require_http_methods(["GET", "POST"])
def import_detail(request, project_id, import_id):
    job = _page(access_import, user=request.user, import_id=import_id)
    if job.project_id != project_id:
        raise Http404("Not found")
    project = job.project
    label_keys = project_label_keys(project=project)
    errors, error = {}, ""
    mapping = job.mapping
    if request.method == "POST":
        mapping = _mapping_from_form(request.POST, label_keys)
        try:
            import_start(job=job, mapping=mapping)
            return redirect("import-detail", project_id=project.pk, import_id=job.pk)
        except ValidationFailed as exc:
            error, errors = exc.message, {k.removeprefix("mapping."): v[0] for k, v in (exc.fields or {}).items()}
        except Conflict as exc:
            messages.error(request, exc.message)
            return redirect("import-detail", project_id=project.pk, import_id=job.pk)
    prob_columns = mapping.get("prob_columns") or {}
    fields = [
        {
            "name": f,
            "title": FIELD_HELP[f][0],
            "help": FIELD_HELP[f][1],
            "value": mapping.get(f),
            "error": errors.get(f),
        }
        for f in MAPPING_FIELDS
    ]
    preview_columns = job.columns
    preview = [[row.get(c, "") for c in preview_columns] for row in job.preview if "_error" not in row]
    return render(
        request,
        "labeling/import.html",
        {
            "project": project,
            "tab": "import",
            "job": job,
            "editable": job.status == ImportStatus.UPLOADED,
            "active": job.status in (ImportStatus.PENDING, ImportStatus.RUNNING),
            "fields": fields,
            "mapping": mapping,
            "payload": set(mapping.get("payload") or []),
            "prob_mode": "columns" if prob_columns else "object",
            "prob_rows": [{"key": k, "value": prob_columns.get(k)} for k in label_keys],
            "errors": errors,
            "error": error,
            "preview_columns": preview_columns,
            "preview": preview,
            "preview_errors": [{"row": r["_row"], "error": r["_error"]} for r in job.preview if "_error" in r],
            "preview_rows": PREVIEW_ROWS,
            "rejections": list(job.rejections.order_by("row")[:REJECTIONS_SHOWN]),
        },
        status=400 if error else 200,
    )
