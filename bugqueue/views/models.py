"""Models page: registered model versions with their stages and history, registering a version,
evaluating one from an uploaded predictions file, the evaluations matrix, and promotion through the
gate (the page's script asks the JSON API for the gate's answer, then promotes)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from bugqueue.selectors.models import models_page as models_overview
from bugqueue.services.prediction_files import evaluation_from_file
from common.errors import DomainError, ValidationFailed
from labeling.models import GATED_STAGES, Stage
from labeling.selectors.access import MANAGER_ROLES
from labeling.services.registry import model_register
from labeling.views.projects import page_project


def _render(request, project, *, status=200, **extra):
    context = {
        "project": project,
        "tab": "models",
        "can_manage": project.user_role in MANAGER_ROLES,
        "stages": [{"value": v, "label": label, "gated": v in GATED_STAGES} for v, label in Stage.choices],
        **models_overview(project=project),
        **extra,
    }
    return render(request, "bugqueue/models.html", context, status=status)


@login_required
def models_page(request, project_id):
    if request.method != "POST":
        return _render(request, page_project(request, project_id))
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    action = request.POST.get("action")
    try:
        if action == "register":
            model = model_register(
                project=project,
                actor=request.user,
                version=request.POST.get("version", ""),
                description=request.POST.get("description", "").strip(),
            )
            messages.success(request, f"Registered {model.version} as a candidate.")
            return redirect(f"{request.path}#models")
        if action == "evaluate":
            upload = request.FILES.get("file")
            if upload is None:
                raise ValidationFailed("Choose a predictions file (JSON Lines or CSV).", fields={"file": ["Required."]})
            evaluation = evaluation_from_file(
                project=project,
                actor=request.user,
                model_version=request.POST.get("model_version", ""),
                name=upload.name,
                data=upload.read(),
                fmt=request.POST.get("format", ""),
            )
            verdict = "passed" if evaluation.passed else "did not pass"
            messages.success(
                request,
                f"Evaluated {evaluation.model_version} on {evaluation.n_predictions} predictions: {verdict}.",
            )
            return redirect(f"{request.path}#matrix")
        raise ValidationFailed("Unknown action.")
    except DomainError as exc:
        rows = (exc.fields or {}).get("rows") if isinstance(exc.fields, dict) else None
        return _render(
            request,
            project,
            status=exc.status,
            form_error={"action": action, "message": exc.message, "rows": rows or []},
            posted=request.POST,
        )
