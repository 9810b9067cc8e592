"""A project's label set over time: add, rename, retire, restore and merge labels.

Labels are stored on annotations, ground truth, predictions and history by key, so a key never
changes (rename changes the name only). Every change is recorded as a LabelOperation (who, when, what).
"""

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from common.errors import Conflict, NotFound, ValidationFailed
from labeling.models import (
    Annotation,
    GroundTruth,
    GuidelineRevision,
    LabelChange,
    LabelClass,
    LabelOperation,
    LabelOperationKind,
    Prediction,
    ReviewDecision,
)
from labeling.services.projects import LabelSpec, _validate_labels

MAX_LABELS = 100


def _label_for_update(*, project, key: str) -> LabelClass:
    label = LabelClass.objects.select_for_update().filter(project=project, key=key).first()
    if label is None:
        raise NotFound(f"No label {key!r} in this project.")
    return label


def _check_hotkey(*, project, hotkey: str, exclude_pk=None) -> None:
    if not hotkey:
        return
    if len(hotkey) != 1 or hotkey.isspace():
        raise ValidationFailed("hotkey must be a single visible character.", fields={"hotkey": ["One character."]})
    if hotkey in ("s", "?"):
        raise ValidationFailed(
            f"hotkey {hotkey!r} is reserved (s skips, ? shows the keys).", fields={"hotkey": ["Reserved key."]}
        )
    taken = LabelClass.objects.filter(project=project, hotkey=hotkey).exclude(pk=exclude_pk).first()
    if taken is not None:
        raise Conflict(
            f"Hotkey {hotkey!r} is already used by {taken.key!r}.",
            code="hotkey_taken",
            fields={"hotkey": [f"Already used by {taken.name}."]},
        )


@transaction.atomic
def label_add(*, project, actor, key: str, name: str, hotkey: str = "", guideline: str = "") -> LabelClass:
    """A new label at the end of the project's list."""
    spec = LabelSpec(key=(key or "").strip(), name=(name or "").strip(), hotkey=hotkey or "", guideline=guideline)
    try:
        # The same per-label rules as project creation, checked on this one label.
        _validate_labels([spec, LabelSpec(key="-placeholder-other", name="x")])
    except ValidationFailed as exc:
        problems = exc.fields["labels"]["0"]
        raise ValidationFailed(problems[0][0].upper() + problems[0][1:], fields=_fields_of(problems))
    labels = LabelClass.objects.select_for_update().filter(project=project)
    if labels.filter(key=spec.key).exists():
        raise Conflict(
            f"A label with key {spec.key!r} already exists.", code="label_exists", fields={"key": ["Already used."]}
        )
    if labels.count() >= MAX_LABELS:
        raise Conflict(f"A project has at most {MAX_LABELS} labels.", code="too_many_labels")
    _check_hotkey(project=project, hotkey=spec.hotkey)
    position = (labels.aggregate(m=Max("position"))["m"] or 0) + 1
    try:
        with transaction.atomic():
            label = LabelClass.objects.create(
                project=project,
                key=spec.key,
                name=spec.name,
                hotkey=spec.hotkey,
                guideline=spec.guideline,
                position=position,
            )
    except IntegrityError:
        raise Conflict(f"A label with key {spec.key!r} already exists.", code="label_exists")
    if spec.guideline:
        GuidelineRevision.objects.create(label=label, text=spec.guideline, author=actor, note="created")
    LabelOperation.objects.create(
        project=project, kind=LabelOperationKind.ADD, label_key=label.key, actor=actor, details={"name": label.name}
    )
    return label


def _fields_of(problems: list[str]) -> dict:
    fields = {}
    for p in problems:
        field = next((f for f in ("hotkey", "key", "name") if f in p), "key")
        fields.setdefault(field, []).append(p[0].upper() + p[1:])
    return fields


@transaction.atomic
def label_update(*, project, actor, key: str, name=None, hotkey=None, guideline=None, note: str = "") -> LabelClass:
    """Change a label's name, hotkey or guideline (the key stays: rows refer to it). A new
    guideline is appended to the label's revisions."""
    label = _label_for_update(project=project, key=key)
    changed = []
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationFailed("name is required (at most 200 characters).", fields={"name": ["Required."]})
        if name != label.name:
            LabelOperation.objects.create(
                project=project,
                kind=LabelOperationKind.RENAME,
                label_key=label.key,
                actor=actor,
                details={"from": label.name, "to": name},
            )
            label.name = name
            changed.append("name")
    if hotkey is not None and hotkey != label.hotkey:
        _check_hotkey(project=project, hotkey=hotkey, exclude_pk=label.pk)
        label.hotkey = hotkey
        changed.append("hotkey")
    if guideline is not None and guideline != label.guideline:
        label.guideline = guideline
        changed.append("guideline")
        GuidelineRevision.objects.create(label=label, text=guideline, author=actor, note=note or "edited")
    if changed:
        label.save(update_fields=changed)
    return label


@transaction.atomic
def label_retire(*, project, actor, key: str) -> LabelClass:
    """Stop offering a label to annotators and reviewers. Rows that carry it keep it."""
    label = _label_for_update(project=project, key=key)
    if label.retired_at is not None:
        raise Conflict(f"Label {key!r} is already retired.", code="label_retired")
    active = LabelClass.objects.filter(project=project, retired_at__isnull=True).exclude(pk=label.pk).count()
    if active < 2:
        raise Conflict("A project must keep at least two labels in use.", code="too_few_labels")
    label.retired_at = timezone.now()
    label.save(update_fields=["retired_at"])
    LabelOperation.objects.create(project=project, kind=LabelOperationKind.RETIRE, label_key=key, actor=actor)
    return label


@transaction.atomic
def label_restore(*, project, actor, key: str) -> LabelClass:
    label = _label_for_update(project=project, key=key)
    if label.retired_at is None:
        raise Conflict(f"Label {key!r} is in use, not retired.", code="label_not_retired")
    if label.hotkey and LabelClass.objects.filter(project=project, hotkey=label.hotkey).exclude(pk=label.pk).exists():
        label.hotkey = ""
    label.retired_at = None
    label.save(update_fields=["retired_at", "hotkey"])
    LabelOperation.objects.create(project=project, kind=LabelOperationKind.RESTORE, label_key=key, actor=actor)
    return label


@transaction.atomic
def label_merge(*, project, actor, key: str, into: str) -> dict:
    """Move every annotation, ground truth, prediction and history row from label `key` to `into`,
    retire `key`, and record the merge with the counts moved. Prediction probabilities keep their
    per-label entries (they are the model's output)."""
    if key == into:
        raise ValidationFailed("A label cannot be merged into itself.", fields={"into": ["Choose another label."]})
    # Lock both in a fixed order so two merges cannot deadlock.
    locked = {lc.key: lc for lc in LabelClass.objects.select_for_update().filter(project=project, key__in=[key, into])}
    if key not in locked:
        raise NotFound(f"No label {key!r} in this project.")
    if into not in locked:
        raise ValidationFailed(f"No label {into!r} in this project.", fields={"into": ["Unknown label."]})
    source, target = locked[key], locked[into]
    if target.retired_at is not None:
        raise Conflict(f"Label {into!r} is retired: restore it first.", code="label_retired")
    if source.retired_at is None:
        active = LabelClass.objects.filter(project=project, retired_at__isnull=True).exclude(pk=source.pk).count()
        if active < 2:
            raise Conflict("A project must keep at least two labels in use.", code="too_few_labels")
    moved = {
        "annotations": Annotation.objects.filter(project=project, label=key).update(label=into),
        "ground_truth": GroundTruth.objects.filter(item__project=project, label=key).update(label=into),
        "predictions": Prediction.objects.filter(item__project=project, label=key).update(label=into),
        "history": LabelChange.objects.filter(project=project, label=key).update(label=into),
        "history_previous": LabelChange.objects.filter(project=project, previous_label=key).update(previous_label=into),
    }
    # Review decisions still undoable put the merged label back as its target.
    ReviewDecision.objects.filter(item__project=project, label=key).update(label=into)
    ReviewDecision.objects.filter(item__project=project, previous_label=key).update(previous_label=into)
    if source.retired_at is None:
        source.retired_at = timezone.now()
    if source.hotkey:
        source.hotkey = ""
    source.save(update_fields=["retired_at", "hotkey"])
    LabelOperation.objects.create(
        project=project, kind=LabelOperationKind.MERGE, label_key=key, into_key=into, actor=actor, details=moved
    )
    return moved
