"""An annotator changing their own answer while its item is still undecided.

The edit runs under the item's row lock (the lock every queue writer takes first) and then settles
the item as a submission would: an item that has all its required annotations becomes unanimous
ground truth when the votes now agree, or stays disputed when they do not. Once an item is decided
(ground truth, or any status other than open/disputed-without-ground-truth) the answer is the
reviewer's to change: the edit is refused with code "decided".
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from common.errors import Conflict, NotFound, ValidationFailed
from labeling.models import Annotation, AnnotationEdit, GroundTruth, Item, ItemStatus, LabelClass
from labeling.selectors.answers import annotation_is_editable
from labeling.services.annotations import item_settle


@transaction.atomic
def annotation_edit(*, annotation_id: int, annotator, label: str, now: datetime | None = None) -> Annotation:
    """Change the label of `annotator`'s own annotation, record the change, and re-settle the item."""
    now = now or timezone.now()
    ann = Annotation.objects.filter(pk=annotation_id, annotator=annotator).only("id", "item_id").first()
    if ann is None:
        raise NotFound("Annotation not found.")
    item = (
        Item.objects.select_for_update(of=("self",))
        .only("id", "project_id", "status", "annotation_count", "required_annotations")
        .get(pk=ann.item_id)
    )
    ann = Annotation.objects.select_for_update().get(pk=annotation_id)
    if not LabelClass.objects.filter(project_id=item.project_id, key=label).exists():
        raise ValidationFailed(f"Unknown label {label!r} for this project.", fields={"label": ["Unknown label."]})
    decided = not annotation_is_editable(
        item_status=item.status, has_ground_truth=GroundTruth.objects.filter(item_id=item.pk).exists()
    )
    if decided:
        raise Conflict(
            "This item has been decided; ask a reviewer to change its label.",
            code="decided",
        )
    if ann.label == label:
        return ann
    AnnotationEdit.objects.create(annotation=ann, editor=annotator, old_label=ann.label, new_label=label, at=now)
    Annotation.objects.filter(pk=ann.pk).update(label=label)
    ann.label = label
    if item.status == ItemStatus.DISPUTED and not ann.is_surplus:
        labels = set(Annotation.objects.filter(item_id=item.pk, is_surplus=False).values_list("label", flat=True))
        if len(labels) == 1:
            item_settle(item=item, now=now)
    return ann
