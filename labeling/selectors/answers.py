"""An annotator's recent answers in a project, each with whether it can still be changed."""

from django.db.models import Exists, OuterRef

from common.errors import NotFound
from labeling.models import Annotation, GroundTruth, ItemStatus

RECENT_ANSWERS = 20


def annotation_is_editable(*, item_status: str, has_ground_truth: bool) -> bool:
    """Whether an annotator may still change an answer on an item in this state."""
    return not has_ground_truth and item_status in (ItemStatus.OPEN, ItemStatus.DISPUTED)


def own_annotation_project_id(*, annotation_id: int, user) -> int:
    """The project of `user`'s own annotation; NotFound for anyone else's."""
    project_id = (
        Annotation.objects.filter(pk=annotation_id, annotator_id=user.pk).values_list("project_id", flat=True).first()
    )
    if project_id is None:
        raise NotFound("Annotation not found.")
    return project_id


def my_recent_answers(*, project_id: int, annotator, limit: int = RECENT_ANSWERS) -> list[dict]:
    """The annotator's last `limit` answers in the project, newest first."""
    rows = (
        Annotation.objects.filter(project_id=project_id, annotator=annotator)
        .annotate(has_gt=Exists(GroundTruth.objects.filter(item_id=OuterRef("item_id"))))
        .select_related("item")
        .only("id", "label", "created_at", "item__id", "item__external_id", "item__status")
        .order_by("-id")[:limit]
    )
    return [
        {
            "id": a.pk,
            "item": a.item_id,
            "external_id": a.item.external_id,
            "label": a.label,
            "created_at": a.created_at,
            "editable": annotation_is_editable(item_status=a.item.status, has_ground_truth=a.has_gt),
        }
        for a in rows
    ]
