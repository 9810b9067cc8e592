"""An annotator's recent answers in a project, each with whether it can still be changed."""

from django.db.models import Exists, F, OuterRef

from common.errors import NotFound
from labeling.models import Annotation, Assignment, AssignmentStatus, GroundTruth, Item, ItemStatus

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


REMAINING_EXACT_UP_TO = 10_000
REMAINING_ESTIMATE_CAP = 1_000_000


def my_remaining(*, project_id: int, annotator) -> dict:
    """How many items this annotator can still be served: exact up to REMAINING_EXACT_UP_TO, above
    that an estimate from the project's open items (rounded to two significant figures)."""
    servable = (
        Item.objects.filter(project_id=project_id, status=ItemStatus.OPEN)
        .filter(annotation_count__lt=F("required_annotations"))
        # the items on their screen (active leases) count as left; answered or skipped ones do not
        .exclude(
            Exists(
                Assignment.objects.filter(item_id=OuterRef("pk"), annotator_id=annotator.pk).exclude(
                    status=AssignmentStatus.ACTIVE
                )
            )
        )
    )
    n = servable.values("pk")[: REMAINING_EXACT_UP_TO + 1].count()
    if n <= REMAINING_EXACT_UP_TO:
        return {"remaining": n, "exact": True, "text": f"{n:,} left"}
    total = (
        Item.objects.filter(project_id=project_id, status=ItemStatus.OPEN).values("pk")[:REMAINING_ESTIMATE_CAP].count()
    )
    about = int(float(f"{max(total, n):.2g}"))
    return {"remaining": about, "exact": False, "text": f"about {about:,} left"}
