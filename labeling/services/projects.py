"""Users, projects, label classes and memberships."""

import math
import re
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from common.errors import Conflict, NotFound, ValidationFailed
from labeling.models import (
    LABEL_KEY_RE,
    AcceptMode,
    GuidelineRevision,
    Item,
    LabelClass,
    LabelSequence,
    Membership,
    Project,
    QueueOrder,
    Role,
)

User = get_user_model()
_KEY = re.compile(LABEL_KEY_RE)


@dataclass(frozen=True)
class LabelSpec:
    key: str
    name: str
    guideline: str = ""
    hotkey: str = ""


def user_create(
    *, username: str, password: str, is_staff: bool = False, email: str = "", can_create_projects: bool = False
) -> User:
    """A new account. `can_create_projects` gives it Django's labeling.add_project permission (staff
    create projects without it)."""
    username = (username or "").strip()
    if not username:
        raise ValidationFailed("username is required.", fields={"username": ["This field is required."]})
    candidate = User(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except DjangoValidationError as exc:
        raise ValidationFailed("The password is too weak.", fields={"password": list(exc.messages)})
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, password=password, is_staff=is_staff, email=email)
            if can_create_projects:
                user_allow_project_create(user=user)
            return user
    except IntegrityError:
        raise Conflict(
            f"A user named {username!r} already exists.",
            code="username_taken",
            fields={"username": ["A user with that username already exists."]},
        )


def user_allow_project_create(*, user) -> None:
    """Let `user` create projects (Django's labeling.add_project permission). Idempotent."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(content_type__app_label="labeling", codename="add_project"))


def _validate_labels(labels: list[LabelSpec]) -> None:
    errors = {}
    if not 2 <= len(labels) <= 100:
        raise ValidationFailed("A project needs 2 to 100 labels.", fields={"labels": ["Give 2 to 100 labels."]})
    seen_keys, seen_hotkeys = set(), set()
    for i, spec in enumerate(labels):
        problems = []
        if not isinstance(spec.key, str) or not _KEY.match(spec.key):
            problems.append("key must be 1..64 characters of a-z, 0-9, _ or -.")
        elif spec.key in seen_keys:
            problems.append(f"duplicate key {spec.key!r}.")
        if not spec.name or len(spec.name) > 200:
            problems.append("name is required (at most 200 characters).")
        if spec.hotkey:
            if len(spec.hotkey) != 1 or spec.hotkey.isspace():
                problems.append("hotkey must be a single visible character.")
            elif spec.hotkey in ("s", "?"):
                problems.append(f"hotkey {spec.hotkey!r} is reserved (s skips, ? shows the keys).")
            elif spec.hotkey in seen_hotkeys:
                problems.append(f"duplicate hotkey {spec.hotkey!r}.")
        if problems:
            errors[str(i)] = problems
        seen_keys.add(spec.key)
        if spec.hotkey:
            seen_hotkeys.add(spec.hotkey)
    if errors:
        raise ValidationFailed("Some labels are invalid.", fields={"labels": errors})


SLICE_FIELD_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_SLICE_FIELDS = 20
# The slice of dataset items by the bug that added them is built in; a payload key cannot take its name.
RESERVED_SLICE_FIELDS = ("bug",)


def slice_fields_clean(fields) -> list[str]:
    """The project's slice fields (payload keys) as given, or ValidationFailed naming what is wrong:
    a list of at most 20 distinct names of 1..64 characters of A-Z, a-z, 0-9, _ . or -; "bug" is
    reserved for the built-in slice of datasets by bug."""
    if not isinstance(fields, list):
        raise ValidationFailed(
            "slice_fields must be a list of payload keys.", fields={"slice_fields": ["Give a list of strings."]}
        )
    if len(fields) > MAX_SLICE_FIELDS:
        raise ValidationFailed(
            f"slice_fields: at most {MAX_SLICE_FIELDS} fields.",
            fields={"slice_fields": [f"At most {MAX_SLICE_FIELDS} fields."]},
        )
    errors, seen = {}, set()
    for i, name in enumerate(fields):
        if not isinstance(name, str) or not SLICE_FIELD_RE.fullmatch(name):
            errors[str(i)] = ["Must be 1..64 characters of A-Z, a-z, 0-9, _, . or -."]
        elif name in RESERVED_SLICE_FIELDS:
            errors[str(i)] = [
                f"{name!r} is reserved: datasets are always sliced by the bug that added an item; "
                "choose another payload key."
            ]
        elif name in seen:
            errors[str(i)] = [f"Duplicate field {name!r}."]
        else:
            seen.add(name)
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"slice_fields[{first}]: {errors[first][0]}", fields={"slice_fields": errors})
    return list(fields)


def _validate_settings(
    *,
    annotations_per_item,
    max_annotations_per_item,
    lease_seconds,
    queue_order,
    accept_threshold,
    accept_mode=AcceptMode.CALIBRATED,
    max_accept_error=0.02,
    audit_rate=0.02,
):
    errors = _accept_rule_errors(accept_mode=accept_mode, max_accept_error=max_accept_error, audit_rate=audit_rate)
    if not (isinstance(annotations_per_item, int) and 1 <= annotations_per_item <= 10):
        errors["annotations_per_item"] = ["Must be an integer from 1 to 10."]
    if not (isinstance(max_annotations_per_item, int) and 1 <= max_annotations_per_item <= 20):
        errors["max_annotations_per_item"] = ["Must be an integer from 1 to 20."]
    elif isinstance(annotations_per_item, int) and max_annotations_per_item < annotations_per_item:
        errors["max_annotations_per_item"] = ["Must be at least annotations_per_item."]
    if not (isinstance(lease_seconds, int) and 30 <= lease_seconds <= 86400):
        errors["lease_seconds"] = ["Must be an integer from 30 to 86400."]
    if queue_order not in QueueOrder.values:
        errors["queue_order"] = [f"Must be one of {', '.join(QueueOrder.values)}."]
    if not (isinstance(accept_threshold, (int, float)) and 0 <= accept_threshold <= 1):
        errors["accept_threshold"] = ["Must be a number from 0 to 1."]
    if errors:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _accept_rule_errors(*, accept_mode, max_accept_error, audit_rate) -> dict:
    errors = {}
    if accept_mode not in AcceptMode.values:
        errors["accept_mode"] = [f"Must be one of {', '.join(AcceptMode.values)}."]
    if not (_number(max_accept_error) and 0.001 <= max_accept_error <= 0.5):
        errors["max_accept_error"] = ["Must be a number from 0.001 to 0.5."]
    if not (_number(audit_rate) and 0 <= audit_rate <= 0.5):
        errors["audit_rate"] = ["Must be a number from 0 to 0.5."]
    return errors


def accept_rule_validate(*, accept_mode, max_accept_error, audit_rate) -> None:
    """Raise ValidationFailed (changing nothing) for an accept rule outside its ranges."""
    errors = _accept_rule_errors(accept_mode=accept_mode, max_accept_error=max_accept_error, audit_rate=audit_rate)
    if errors:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)


@transaction.atomic
def project_create(
    *,
    creator,
    name: str,
    labels: list[LabelSpec],
    description: str = "",
    annotations_per_item: int = 3,
    max_annotations_per_item: int | None = None,
    lease_seconds: int = 600,
    queue_order: str = QueueOrder.FIFO,
    accept_threshold: float | None = None,
    slice_fields: list[str] | None = None,
    accept_mode: str | None = None,
    max_accept_error: float = 0.02,
    audit_rate: float = 0.02,
) -> Project:
    """A project with its labels and manager. A project created with an explicit accept_threshold and
    no accept_mode keeps the raw-score rule (the threshold means what it says); otherwise the accept
    threshold is calibrated on reviewers' decisions."""
    if not name or not name.strip():
        raise ValidationFailed("name is required.", fields={"name": ["This field is required."]})
    if max_annotations_per_item is None:
        max_annotations_per_item = max(annotations_per_item, 5) if isinstance(annotations_per_item, int) else 5
    if accept_mode is None:
        accept_mode = AcceptMode.RAW_SCORE if accept_threshold is not None else AcceptMode.CALIBRATED
    if accept_threshold is None:
        accept_threshold = 0.7
    _validate_labels(labels)
    _validate_settings(
        annotations_per_item=annotations_per_item,
        max_annotations_per_item=max_annotations_per_item,
        lease_seconds=lease_seconds,
        queue_order=queue_order,
        accept_threshold=accept_threshold,
        accept_mode=accept_mode,
        max_accept_error=max_accept_error,
        audit_rate=audit_rate,
    )
    slice_fields = slice_fields_clean(slice_fields if slice_fields is not None else [])
    project = Project.objects.create(
        name=name.strip(),
        description=description,
        annotations_per_item=annotations_per_item,
        max_annotations_per_item=max_annotations_per_item,
        lease_seconds=lease_seconds,
        queue_order=queue_order,
        accept_threshold=accept_threshold,
        accept_mode=accept_mode,
        max_accept_error=max_accept_error,
        audit_rate=audit_rate,
        slice_fields=slice_fields,
        created_by=creator,
    )
    label_objs = LabelClass.objects.bulk_create(
        [
            LabelClass(project=project, key=s.key, name=s.name, guideline=s.guideline, hotkey=s.hotkey, position=i)
            for i, s in enumerate(labels)
        ]
    )
    GuidelineRevision.objects.bulk_create(
        [
            GuidelineRevision(label=lc, text=lc.guideline, author=creator, note="created")
            for lc in label_objs
            if lc.pk and lc.guideline
        ]
    )
    LabelSequence.objects.create(project=project)
    Membership.objects.create(user=creator, project=project, role=Role.MANAGER)
    return project


PROJECT_EDITABLE = (
    "name",
    "description",
    "annotations_per_item",
    "max_annotations_per_item",
    "lease_seconds",
    "queue_order",
    "accept_threshold",
    "accept_mode",
    "max_accept_error",
    "audit_rate",
    "slo_quantile",
    "slo_target_seconds",
    "slice_fields",
)


@transaction.atomic
def project_update(*, project: Project, actor, **changes) -> Project:
    unknown = set(changes) - set(PROJECT_EDITABLE)
    if unknown:
        raise ValidationFailed(
            f"Cannot change {', '.join(sorted(unknown))}.", fields={k: ["Not editable."] for k in unknown}
        )
    project = Project.objects.select_for_update().get(pk=project.pk)
    if "name" in changes and not (changes["name"] or "").strip():
        raise ValidationFailed("name is required.", fields={"name": ["This field may not be blank."]})
    merged = {k: changes.get(k, getattr(project, k)) for k in PROJECT_EDITABLE}
    if "annotations_per_item" in changes and "max_annotations_per_item" not in changes:
        merged["max_annotations_per_item"] = max(merged["max_annotations_per_item"], merged["annotations_per_item"])
    _validate_settings(
        annotations_per_item=merged["annotations_per_item"],
        max_annotations_per_item=merged["max_annotations_per_item"],
        lease_seconds=merged["lease_seconds"],
        queue_order=merged["queue_order"],
        accept_threshold=merged["accept_threshold"],
        accept_mode=merged["accept_mode"],
        max_accept_error=merged["max_accept_error"],
        audit_rate=merged["audit_rate"],
    )
    errors = {}
    if not (isinstance(merged["slo_quantile"], (int, float)) and 0.01 <= merged["slo_quantile"] <= 0.999):
        errors["slo_quantile"] = ["Must be a number from 0.01 to 0.999."]
    if not (isinstance(merged["slo_target_seconds"], int) and merged["slo_target_seconds"] > 0):
        errors["slo_target_seconds"] = ["Must be a positive integer."]
    if errors:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)
    if "slice_fields" in changes:
        merged["slice_fields"] = slice_fields_clean(changes["slice_fields"])
    old_overlap, old_order = project.annotations_per_item, project.queue_order
    for key, value in merged.items():
        setattr(project, key, value.strip() if key == "name" else value)
    project.save()
    if project.annotations_per_item != old_overlap:
        # Items still being labeled follow the new overlap (never below what they already have).
        Item.objects.filter(project=project, status="open", required_annotations=old_overlap).update(
            required_annotations=project.annotations_per_item
        )
    if project.queue_order != old_order:
        # The queue indexes order open items by their own copy of the ordering (see QueueKey): a
        # task re-keys them in batches after commit, not this request (a project may hold millions).
        from labeling.services.work import enqueue_on_commit

        enqueue_on_commit("loupe.queue_order_rekey", project.pk)
    return project


@transaction.atomic
def member_add(*, project: Project, username: str, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(f"role must be one of {', '.join(Role.values)}.", fields={"role": ["Invalid role."]})
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ValidationFailed(f"No user named {username!r}.", fields={"username": ["Unknown user."]})
    membership, created = Membership.objects.select_for_update().get_or_create(
        user=user, project=project, defaults={"role": role}
    )
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    membership.created = created
    return membership


@transaction.atomic
def member_remove(*, project: Project, username: str) -> None:
    membership = Membership.objects.select_for_update().filter(project=project, user__username=username).first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project.")
    if (
        membership.role == Role.MANAGER
        and not Membership.objects.filter(project=project, role=Role.MANAGER).exclude(pk=membership.pk).exists()
    ):
        raise Conflict("A project must keep at least one manager.", code="last_manager")
    membership.delete()
