"""The item explorer's read: a project's items filtered by text, status, labels, predictions,
annotators, dates and payload fields, in one of a few orders, with each row's ground truth, newest
prediction and confidence beside it.

Blind labeling (labeling.selectors.blind) holds here as everywhere: for an annotator the label
columns are NULL on items still open to them, and every filter or ordering that reads a label (ground
truth, prediction, confidence, disagreement, another annotator's work) only ever matches items whose
labels they may see, so a filter cannot be used to read a hidden label one question at a time."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Case, Count, Exists, F, FloatField, OuterRef, Q, Subquery, TextField, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce

from common.db import is_postgres
from common.db.search import payload_search_q, payload_text
from labeling.models import Annotation, GroundTruth, Item, ItemStatus, Prediction
from labeling.models.queue import reopen_pending
from labeling.selectors.blind import labels_visible_to

FIELD_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
ORDERINGS = {
    "created": "created_at",
    "updated": "updated_at",
    "priority": "priority",
    "confidence": "confidence_key",
}


@dataclass
class ItemFilters:
    """What the explorer was asked for; every field optional. `fields` maps payload keys to values."""

    q: str | None = None
    status: str | None = None
    label: str | None = None
    predicted: str | None = None
    model_version: str | None = None
    confidence_min: float | None = None
    confidence_max: float | None = None
    disagreement: bool | None = None
    agreement_below: float | None = None
    annotator: str | None = None
    external_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    predicted_after: datetime | None = None
    predicted_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    fields: dict[str, str] = field(default_factory=dict)
    ids: list[int] | None = None

    def reads_labels(self, *, own_username: str | None) -> bool:
        """Whether answering needs the items' labels (then an annotator sees only visible items)."""
        return bool(
            self.label
            or self.predicted
            or self.model_version
            or self.confidence_min is not None
            or self.confidence_max is not None
            or self.disagreement is not None
            or self.agreement_below is not None
            or self.predicted_after
            or self.predicted_before
            or (self.annotator and self.annotator != own_username)
        )


def _prediction(model_version: str | None):
    preds = Prediction.objects.filter(item_id=OuterRef("pk"))
    if model_version:
        preds = preds.filter(model_version=model_version)
    return preds.order_by("-predicted_at", "-id")


def item_explore(*, project, user, filters: ItemFilters, ordering: str | None = None):
    """The project's items matching `filters`, annotated with `gt_label`, `predicted_label`,
    `predicted_model`, `confidence` (top probability of the newest prediction) and `labels_visible`,
    each NULL/False where `user` may not see the item's labels. `ordering` is one of ORDERINGS' keys,
    "-" first for descending; ties (and no ordering) go by id. Returns (queryset, order fields)."""
    vis = labels_visible_to(user=user, project=project)
    pred = _prediction(filters.model_version)
    gt = GroundTruth.objects.filter(item_id=OuterRef("pk")).values("label")[:1]
    confidence = Value(1.0, output_field=FloatField()) - F("uncertainty")
    qs = Item.objects.filter(project=project).annotate(
        reopen_requested=reopen_pending(),
        labels_visible=vis.flag(),
        gt_label=_masked(vis, Subquery(gt)),
        predicted_label=_masked(vis, Subquery(pred.values("label")[:1])),
        predicted_model=_masked(vis, Subquery(pred.values("model_version")[:1])),
        confidence=_masked(vis, confidence),
    )
    own = getattr(user, "username", None)
    if filters.reads_labels(own_username=own):
        qs = qs.filter(vis.q())
    if filters.ids is not None:
        qs = qs.filter(pk__in=filters.ids)
    if filters.q:
        pg = is_postgres()
        if not pg:
            qs = qs.annotate(payload_text=payload_text())
        qs = qs.filter(payload_search_q(filters.q, postgres=pg))
    if filters.status == ItemStatus.OPEN:
        qs = qs.filter(Q(status=ItemStatus.OPEN) | reopen_pending())
    elif filters.status == ItemStatus.DISPUTED:
        qs = qs.filter(status=ItemStatus.DISPUTED).exclude(reopen_pending())
    elif filters.status:
        qs = qs.filter(status=filters.status)
    if filters.external_id:
        qs = qs.filter(external_id=filters.external_id)
    if filters.label:
        qs = qs.filter(ground_truth__label=filters.label)
    if filters.model_version:
        qs = qs.filter(Exists(Prediction.objects.filter(item_id=OuterRef("pk"), model_version=filters.model_version)))
    if filters.predicted:
        qs = qs.filter(predicted_label=filters.predicted)
    if filters.confidence_min is not None:
        qs = qs.filter(confidence__gte=filters.confidence_min)
    if filters.confidence_max is not None:
        qs = qs.filter(confidence__lte=filters.confidence_max)
    if filters.disagreement is not None:
        split = (
            Annotation.objects.filter(item_id=OuterRef("pk"))
            .values("item_id")
            .annotate(n=Count("label", distinct=True))
            .filter(n__gt=1)
        )
        qs = qs.filter(Exists(split)) if filters.disagreement else qs.exclude(Exists(split))
    if filters.agreement_below is not None:
        per_label = Annotation.objects.filter(item_id=OuterRef("pk")).values("label").annotate(c=Count("id"))
        top = Subquery(per_label.order_by("-c").values("c")[:1])
        total = Subquery(
            Annotation.objects.filter(item_id=OuterRef("pk")).values("item_id").annotate(c=Count("id")).values("c")[:1]
        )
        qs = qs.annotate(agreement=Cast(top, FloatField()) / Cast(total, FloatField())).filter(
            agreement__lt=filters.agreement_below
        )
    if filters.annotator:
        qs = qs.filter(Exists(Annotation.objects.filter(item_id=OuterRef("pk"), annotator__username=filters.annotator)))
    for name, lookup in (
        ("created_at__gte", filters.created_after),
        ("created_at__lt", filters.created_before),
        ("first_predicted_at__gte", filters.predicted_after),
        ("first_predicted_at__lt", filters.predicted_before),
        ("updated_at__gte", filters.updated_after),
        ("updated_at__lt", filters.updated_before),
    ):
        if lookup is not None:
            qs = qs.filter(**{name: lookup})
    for key, value in filters.fields.items():
        qs = qs.alias(**{f"field_{key}": Cast(KeyTextTransform(key, "payload"), TextField())}).filter(
            **{f"field_{key}": value}
        )
    order = ["id"]
    if ordering:
        desc = ordering.startswith("-")
        col = ORDERINGS[ordering.lstrip("-")]
        if col == "confidence_key":
            qs = qs.annotate(confidence_key=Coalesce("confidence", Value(-1.0, output_field=FloatField())))
        order = [f"-{col}", "-id"] if desc else [col, "id"]
    return qs, order


def _masked(vis, expr):
    """`expr` where the row's labels are visible to the caller, NULL elsewhere."""
    if vis.all:
        return expr
    return Case(When(vis.q(), then=expr), default=Value(None))


def item_detail(*, project, user, item_id: int):
    """One item of the project with everything the item page shows, blind rules applied: its
    annotations (an annotator whose item is still open sees only their own), predictions and label
    history (empty for them). None when the item is not in the project."""
    from labeling.models import LabelChange, ReviewSend

    item = Item.objects.filter(project=project, pk=item_id).annotate(reopen_requested=reopen_pending()).first()
    if item is None:
        return None
    vis = labels_visible_to(user=user, project=project)
    visible = bool(vis.visible_ids([item.pk]))
    annotations = Annotation.objects.filter(item=item).select_related("annotator").order_by("created_at", "id")
    if not visible:
        annotations = annotations.filter(annotator=user)
    return {
        "item": item,
        "labels_visible": visible,
        "annotations": list(annotations),
        "predictions": list(item.predictions.order_by("-predicted_at", "-id")) if visible else [],
        "ground_truth": GroundTruth.objects.filter(item=item).select_related("decided_by").first() if visible else None,
        "history": list(LabelChange.objects.filter(item_id=item.pk).select_related("actor").order_by("seq"))
        if visible
        else [],
        # Who sent the item to review, when and why (newest first; with the labels: a reason may name them).
        "review_sends": list(ReviewSend.objects.filter(item_id=item.pk).select_related("actor").order_by("-id")[:20])
        if visible
        else [],
    }
