"""Pages where managers set up a project (create, edit settings and members) and change its label set.

Plain forms that work without JavaScript; writes go through the same services as the API
(labeling.services.projects, labeling.services.labels). A refused form is shown again with the
message next to the field and the values as typed.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from common.errors import DomainError, ValidationFailed
from labeling.models import AcceptMode, QueueOrder, Role
from labeling.selectors.access import MANAGER_ROLES, project_create_allowed
from labeling.selectors.labels import label_operations
from labeling.selectors.projects import project_labels, project_members
from labeling.services.labels import label_add, label_merge, label_restore, label_retire, label_update
from labeling.services.projects import LabelSpec, member_add, project_create, project_update
from labeling.views.projects import page_project

LABEL_ROWS = 4  # empty label rows a new form offers (the page's script adds more)
SETTINGS = (
    ("annotations_per_item", int),
    ("max_annotations_per_item", int),
    ("lease_seconds", int),
    ("queue_order", str),
    ("accept_mode", str),
    ("max_accept_error", float),
    ("accept_threshold", float),
    ("audit_rate", float),
)
DEFAULTS = {
    "annotations_per_item": "3",
    "max_annotations_per_item": "5",
    "lease_seconds": "600",
    "queue_order": QueueOrder.FIFO,
    "accept_mode": AcceptMode.CALIBRATED,
    "max_accept_error": "0.02",
    "accept_threshold": "0.7",
    "audit_rate": "0.02",
}
NUMBER_WORDS = {int: "Must be a whole number.", float: "Must be a number (e.g. 0.05)."}


def _settings_from(post, errors: dict) -> dict:
    values = {}
    for field, kind in SETTINGS:
        raw = (post.get(field) or "").strip()
        try:
            values[field] = kind(raw)
        except ValueError:
            errors[field] = [NUMBER_WORDS[kind] if raw else "This field is required."]
    return values


def _row_count(post, prefix) -> int:
    try:
        return min(int(post.get(f"{prefix}-rows") or 0), 200)
    except ValueError:
        return 0


def _label_rows(post) -> list[dict]:
    return [
        {
            "key": (post.get(f"label-{i}-key") or "").strip(),
            "name": (post.get(f"label-{i}-name") or "").strip(),
            "hotkey": post.get(f"label-{i}-hotkey") or "",
            "guideline": post.get(f"label-{i}-guideline") or "",
            "errors": [],
        }
        for i in range(_row_count(post, "label"))
    ]


def _form_context(*, values, labels, members, errors, message="", project=None):
    return {
        "values": values,
        "label_rows": labels,
        "member_rows": members,
        "errors": errors,
        "error_message": message,
        "queue_orders": QueueOrder.choices,
        "accept_modes": AcceptMode.choices,
        "roles": Role.choices,
        "project": project,
    }


def _member_rows(post) -> list[dict]:
    rows = [
        {
            "username": (post.get(f"member-{i}-username") or "").strip(),
            "role": post.get(f"member-{i}-role"),
            "errors": [],
        }
        for i in range(_row_count(post, "member"))
    ]
    return rows or [{"username": "", "role": Role.ANNOTATOR, "errors": []} for _ in range(2)]


def _add_members(*, project, members: list[dict]) -> None:
    for i, row in enumerate(members):
        if not row["username"]:
            continue
        try:
            member_add(project=project, username=row["username"], role=row["role"] or Role.ANNOTATOR)
        except ValidationFailed as exc:
            row["errors"] = [exc.message]
            raise ValidationFailed(
                f"Member {row['username']!r}: {exc.message}", fields={"members": {str(i): exc.message}}
            )


@login_required
def project_new(request):
    if not project_create_allowed(user=request.user):
        raise PermissionDenied("Creating projects needs staff or the permission to create projects.")
    if request.method != "POST":
        blank = [{"key": "", "name": "", "hotkey": "", "guideline": "", "errors": []} for _ in range(LABEL_ROWS)]
        members = [{"username": "", "role": Role.ANNOTATOR, "errors": []} for _ in range(2)]
        values = {"name": "", "description": "", **DEFAULTS}
        return render(
            request,
            "labeling/project_form.html",
            _form_context(values=values, labels=blank, members=members, errors={}),
        )
    post = request.POST
    errors: dict = {}
    values = {"name": post.get("name", ""), "description": post.get("description", "")}
    values.update({f: post.get(f, "") for f, _ in SETTINGS})
    labels = _label_rows(post)
    members = _member_rows(post)
    settings = _settings_from(post, errors)
    filled = [(i, row) for i, row in enumerate(labels) if row["key"] or row["name"]]
    message = ""
    if not errors:
        if settings["accept_mode"] == AcceptMode.CALIBRATED:
            settings.pop("accept_threshold")
        try:
            with transaction.atomic():
                project = project_create(
                    creator=request.user,
                    name=values["name"],
                    description=values["description"],
                    labels=[LabelSpec(r["key"], r["name"], r["guideline"], r["hotkey"]) for _, r in filled],
                    **settings,
                )
                _add_members(project=project, members=members)
            messages.success(request, f"Project {project.name!r} created.")
            return redirect("project-detail", project.pk)
        except ValidationFailed as exc:
            message = exc.message
            fields = exc.fields or {}
            for field, problems in fields.items():
                if field == "labels" and isinstance(problems, dict):
                    for idx, msgs in problems.items():
                        labels[filled[int(idx)][0]]["errors"] = msgs
                elif field == "labels":
                    errors["labels"] = problems
                elif field != "members":
                    errors[field] = problems
    else:
        message = "Some values need fixing: " + "; ".join(f"{k.replace('_', ' ')}: {v[0]}" for k, v in errors.items())
    return render(
        request,
        "labeling/project_form.html",
        _form_context(values=values, labels=labels, members=members, errors=errors, message=message),
        status=400,
    )


@login_required
def project_edit(request, project_id):
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    errors: dict = {}
    message = ""
    members = [{"username": "", "role": Role.ANNOTATOR, "errors": []} for _ in range(2)]
    if request.method == "POST":
        post = request.POST
        values = {"name": post.get("name", ""), "description": post.get("description", "")}
        values.update({f: post.get(f, "") for f, _ in SETTINGS})
        members = _member_rows(post)
        settings = _settings_from(post, errors)
        if not errors:
            try:
                with transaction.atomic():
                    project_update(
                        project=project,
                        actor=request.user,
                        name=values["name"],
                        description=values["description"],
                        **settings,
                    )
                    _add_members(project=project, members=members)
                messages.success(request, "Project settings saved.")
                return redirect("project-detail", project.pk)
            except ValidationFailed as exc:
                message = exc.message
                errors.update({k: v for k, v in (exc.fields or {}).items() if k != "members"})
        else:
            message = "Some values need fixing: " + "; ".join(
                f"{k.replace('_', ' ')}: {v[0]}" for k, v in errors.items()
            )
    else:
        values = {"name": project.name, "description": project.description}
        values.update({f: str(getattr(project, f)) for f, _ in SETTINGS})
    context = _edit_context(project=project, values=values, members=members, errors=errors, message=message)
    return render(request, "labeling/project_form.html", context, status=400 if message else 200)


def _edit_context(*, project, values=None, members=None, errors=None, message="", add=None, add_errors=None):
    if values is None:
        values = {"name": project.name, "description": project.description}
        values.update({f: str(getattr(project, f)) for f, _ in SETTINGS})
    if members is None:
        members = [{"username": "", "role": Role.ANNOTATOR, "errors": []} for _ in range(2)]
    context = _form_context(
        values=values, labels=[], members=members, errors=errors or {}, message=message, project=project
    )
    context.update(
        {
            "current_labels": project_labels(project=project),
            "current_members": project_members(project=project),
            "operations": label_operations(project=project)[:30],
            "add": add or {},
            "add_errors": add_errors or {},
        }
    )
    return context


LABEL_OPS = ("add", "edit", "retire", "restore", "merge")


@login_required
@require_POST
def project_label_op(request, project_id, op, key=""):
    """One change to the label set from the edit page; the outcome is a message at the labels section."""
    project = page_project(request, project_id, roles=MANAGER_ROLES)
    post = request.POST
    try:
        if op == "add":
            label = label_add(
                project=project,
                actor=request.user,
                key=post.get("key", ""),
                name=post.get("name", ""),
                hotkey=post.get("hotkey", ""),
                guideline=post.get("guideline", ""),
            )
            done = f"Label {label.name!r} ({label.key}) added."
        elif op == "edit":
            label = label_update(
                project=project,
                actor=request.user,
                key=key,
                name=post.get("name"),
                hotkey=post.get("hotkey"),
                guideline=post.get("guideline"),
            )
            done = f"Label {label.key!r} saved."
        elif op == "retire":
            label_retire(project=project, actor=request.user, key=key)
            done = f"Label {key!r} retired: no longer offered; annotations keep it."
        elif op == "restore":
            label_restore(project=project, actor=request.user, key=key)
            done = f"Label {key!r} restored."
        elif op == "merge":
            into = post.get("into", "")
            moved = label_merge(project=project, actor=request.user, key=key, into=into)
            done = (
                f"Label {key!r} merged into {into!r}: {moved['annotations']} annotations, "
                f"{moved['ground_truth']} ground truth, {moved['predictions']} predictions moved."
            )
        else:
            raise PermissionDenied("Unknown label operation.")
        messages.success(request, done)
    except DomainError as exc:
        fields = exc.fields or {}
        if op == "add":
            # The add form again, with the values as typed and the message next to its field.
            add = {f: post.get(f, "") for f in ("key", "name", "hotkey", "guideline")}
            add_errors = {k: v[0] for k, v in fields.items() if isinstance(v, list)} or {"key": exc.message}
            context = _edit_context(project=project, add=add, add_errors=add_errors)
            return render(request, "labeling/project_form.html", context, status=exc.status)
        detail = "; ".join(f"{k}: {v[0]}" for k, v in fields.items() if isinstance(v, list)) if fields else ""
        messages.error(
            request, f"Not changed: {exc.message}" + (f" ({detail})" if detail and detail not in exc.message else "")
        )
    return redirect(reverse("project-edit", args=[project.pk]) + "#labels")
