"""The item explorer's API: the filters of GET /api/projects/{id}/items (read here, answered by
labeling.selectors.items_explorer) and the managers' bulk actions on the items chosen by ids or by the
same filters. The list view itself is ItemListIngestApi (views_projects), which also ingests."""

from __future__ import annotations

import math

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS
from common.errors import ValidationFailed
from common.timestamps import parse_timestamp
from labeling.api.serializers import ItemOutput
from labeling.models import ItemStatus
from labeling.selectors.access import MANAGER_ROLES, access_project
from labeling.selectors.items_explorer import FIELD_NAME_RE, ORDERINGS, ItemFilters, item_explore
from labeling.services.items_bulk import ACTIONS, MAX_ITEMS, items_bulk_apply

ORDERING_CHOICES = [o for k in ORDERINGS for o in (k, f"-{k}")]
FIELD_PREFIX = "field."
MAX_Q = 500

_TEXT = {
    "q": 'Full-text search in the payload\'s string values (words, "phrases", -excluded, or). PostgreSQL '
    "uses the full-text index; SQLite matches each word as a substring.",
    "label": "Ground-truth label.",
    "predicted": "Label of the newest prediction (of model_version when given).",
    "model_version": "Items with a prediction of this model version.",
    "annotator": "Username of someone who annotated the item.",
    "external_id": "Exact external id.",
}
_FLOATS = {
    "confidence_min": "Top probability of the newest prediction, at least.",
    "confidence_max": "Top probability of the newest prediction, at most.",
    "agreement_below": "Share of annotations agreeing with the most common label is below this (0..1).",
}
_TIMES = {
    "created_after": "Created at or after (ISO 8601; naive is UTC).",
    "created_before": "Created before.",
    "predicted_after": "First predicted at or after.",
    "predicted_before": "First predicted before.",
    "updated_after": "Updated at or after.",
    "updated_before": "Updated before.",
}

FILTER_PARAMETERS = [
    OpenApiParameter("status", str, enum=ItemStatus.values),
    *[OpenApiParameter(name, str, description=text) for name, text in _TEXT.items()],
    *[OpenApiParameter(name, float, description=text) for name, text in _FLOATS.items()],
    OpenApiParameter("disagreement", bool, description="true: items whose annotations disagree; false: the others."),
    *[OpenApiParameter(name, str, description=text) for name, text in _TIMES.items()],
]
LIST_PARAMETERS = [
    *FILTER_PARAMETERS,
    OpenApiParameter(
        "ordering",
        str,
        enum=ORDERING_CHOICES,
        description="Sort by created, updated, priority or confidence; '-' first for descending. Default: id.",
    ),
]
FIELD_HELP = (
    "Any number of field.<name>=<value> parameters filter on payload fields (the field's text equals "
    "the value); names are 1..64 of A-Z, a-z, 0-9, _ and -."
)


def _one(params, name):
    values = params.getlist(name)
    if len(values) > 1:
        raise ValidationFailed(f"{name} may be given once.", fields={name: ["Given more than once."]})
    return values[0] if values else None


def filters_from(params) -> ItemFilters:
    """Read the explorer's filters from query parameters (or a bulk body's `filters` object, as a
    dict of strings); a bad value is a 400 naming it."""
    get = (lambda n: _one(params, n)) if hasattr(params, "getlist") else params.get
    errors: dict = {}
    f = ItemFilters()
    for name in _TEXT:
        value = get(name)
        if value is not None:
            if not isinstance(value, str) or not value.strip() or len(value) > (MAX_Q if name == "q" else 255):
                errors[name] = [f"A non-empty string of at most {MAX_Q if name == 'q' else 255} characters."]
            else:
                setattr(f, name, value.strip())
    status = get("status")
    if status is not None:
        if status not in ItemStatus.values:
            errors["status"] = [f"One of {', '.join(ItemStatus.values)}."]
        f.status = status
    for name in _FLOATS:
        raw = get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not 0.0 <= value <= 1.0:
            errors[name] = ["A number from 0 to 1."]
        else:
            setattr(f, name, value)
    raw = get("disagreement")
    if raw is not None:
        text = str(raw).lower()
        if text not in ("true", "false", "1", "0"):
            errors["disagreement"] = ["true or false."]
        else:
            f.disagreement = text in ("true", "1")
    for name in _TIMES:
        raw = get(name)
        if raw is None:
            continue
        try:
            setattr(f, name, parse_timestamp(raw, field=name))
        except ValueError as exc:
            errors[name] = [str(exc)]
    keys = params.keys() if hasattr(params, "keys") else []
    for key in keys:
        if not key.startswith(FIELD_PREFIX):
            continue
        name = key[len(FIELD_PREFIX) :]
        value = get(key)
        if not FIELD_NAME_RE.match(name):
            errors[key] = ["Field names are 1..64 of A-Z, a-z, 0-9, _ and -."]
        elif not isinstance(value, str) or len(value) > 255:
            errors[key] = ["A string of at most 255 characters."]
        else:
            f.fields[name] = value
    if errors:
        first = next(iter(errors))
        raise ValidationFailed(f"{first}: {errors[first][0]}", fields=errors)
    return f


def ordering_from(params) -> str | None:
    value = _one(params, "ordering")
    if value is not None and value not in ORDERING_CHOICES:
        raise ValidationFailed(
            f"ordering must be one of {', '.join(ORDERING_CHOICES)}.", fields={"ordering": ["Invalid choice."]}
        )
    return value


class ExplorerItemOutput(ItemOutput):
    """An item as the explorer lists it. Label columns are null where the caller may not see them
    (labels_visible false: blind labeling)."""

    label = serializers.CharField(source="gt_label", allow_null=True, read_only=True)
    predicted = serializers.CharField(source="predicted_label", allow_null=True, read_only=True)
    model_version = serializers.CharField(source="predicted_model", allow_null=True, read_only=True)
    confidence = serializers.SerializerMethodField()
    labels_visible = serializers.BooleanField(read_only=True)

    class Meta(ItemOutput.Meta):
        fields = [*ItemOutput.Meta.fields, "label", "predicted", "model_version", "confidence", "labels_visible"]

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_confidence(self, obj):
        value = getattr(obj, "confidence", None)
        return None if value is None else round(value, 6)


class ItemsBulkApi(ApiView):
    class Input(inputs.Input):
        action = serializers.ChoiceField(choices=["set_priority", "send_to_review", "delete", "add_to_dataset"])
        ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=MAX_ITEMS)
        filters = serializers.DictField(
            child=serializers.CharField(max_length=MAX_Q),
            required=False,
            help_text='The list\'s query parameters as strings (e.g. {"q": "refund", "status": "open"}).',
        )
        value = serializers.IntegerField(required=False, help_text="The priority, for set_priority.")
        reason = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=2000,
            help_text="Why, for send_to_review: recorded with each item sent (shown on its page) with the caller.",
        )

    class Output(serializers.Serializer):
        action = serializers.CharField()
        matched = serializers.IntegerField()
        changed = serializers.IntegerField()
        skipped = serializers.IntegerField()

    @extend_schema(
        request=Input,
        responses={200: Output, **ERRORS},
        operation_id="items_bulk",
        description="Managers: apply an action to items chosen by `ids` or by `filters` (the list's filters; at "
        f"most {MAX_ITEMS:,} items). set_priority sets `value`; send_to_review makes annotated open or resolved "
        "items disputed, recording who sent each and why (`reason`; as a quality run does); delete removes "
        "only items nobody worked on (no annotation, assignment, ground truth, "
        "bug or dataset row), counting the others as skipped. add_to_dataset is the datasets API's "
        "(POST /api/datasets/{id}/versions with the items' external ids in `add`) and is refused here.",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        ser = self.Input(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        action = data["action"]
        if action == "add_to_dataset":
            raise ValidationFailed(
                "add_to_dataset is done through the datasets API with the items' external ids.",
                fields={"action": ["Use the datasets API."]},
            )
        if ("ids" in data) == ("filters" in data):
            raise ValidationFailed("Give either ids or filters.", fields={"ids": ["Give either ids or filters."]})
        if action == "set_priority" and data.get("value") is None:
            raise ValidationFailed("set_priority needs a value.", fields={"value": ["Required for set_priority."]})
        if "ids" in data:
            ids = data["ids"]
            if not ids:
                raise ValidationFailed("ids is empty.", fields={"ids": ["At least one id."]})
        else:
            unknown = sorted(
                k
                for k in data["filters"]
                if k not in {p.name for p in FILTER_PARAMETERS} and not k.startswith(FIELD_PREFIX)
            )
            if unknown:
                raise ValidationFailed(
                    f"Unknown filter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
                    code="unknown_parameter",
                    fields={"filters": [f"Unknown: {', '.join(unknown)}."]},
                )
            qs, _ = item_explore(project=project, user=request.user, filters=filters_from(data["filters"]))
            ids = list(qs.order_by("id").values_list("id", flat=True)[: MAX_ITEMS + 1])
            if len(ids) > MAX_ITEMS:
                raise ValidationFailed(
                    f"The filters match more than {MAX_ITEMS:,} items; narrow them.",
                    fields={"filters": ["Too many items."]},
                )
        result = items_bulk_apply(
            project=project,
            item_ids=ids,
            action=action,
            value=data.get("value"),
            actor=request.user,
            reason=data["reason"],
        )
        return Response(result.as_dict())


__all__ = ["ACTIONS", "ExplorerItemOutput", "ItemsBulkApi", "LIST_PARAMETERS", "filters_from", "ordering_from"]
