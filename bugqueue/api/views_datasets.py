"""Datasets, versions and evaluations API (thin: selectors read, services write).

Long because one module holds every endpoint of the dataset → evaluation loop (datasets, their
curation and item search, version items in three formats, deltas, evaluations with their slices,
baseline and regressions, bug hand-offs), each with the input and output serializers the OpenAPI
schema documents."""

import csv
import io
import json

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from bugqueue.models import BugDatasetFlow, Dataset, DatasetVersion, Evaluation, EvaluationResult
from bugqueue.selectors import datasets as sel
from bugqueue.selectors.bugs import access_bug
from bugqueue.services.curation import UNSET, dataset_curate, dataset_update
from bugqueue.services.datasets import dataset_create
from bugqueue.services.evaluations import (
    evaluation_rerun_stored,
    evaluation_rows_from_jsonl,
    evaluation_run,
    predictions_parse,
)
from common.api import inputs
from common.api.base import ApiView
from common.api.batch import NDJSON_TYPES
from common.api.errors import ERRORS, ErrorSerializer
from common.api.negotiation import FormatIsAQueryParameter
from common.errors import TooLarge, ValidationFailed
from common.http.request_body import BodyLimit
from labeling.models import ItemStatus
from labeling.selectors.access import MANAGER_ROLES, access_project
from labeling.selectors.blind import labels_visible_to

MAX_EVAL_BYTES = 256 * 1024 * 1024
MAX_ID = 2**63 - 1  # a bigint primary key


class DatasetOutput(serializers.ModelSerializer):
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="slug")
    project = serializers.IntegerField(source="project_id")

    class Meta:
        model = Dataset
        fields = [
            "id",
            "project",
            "name",
            "description",
            "tags",
            "min_accuracy",
            "gate",
            "latest_version",
            "created_at",
        ]


class VersionOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)
    bug = serializers.IntegerField(source="bug_id", allow_null=True)

    class Meta:
        model = DatasetVersion
        fields = [
            "number",
            "created_at",
            "created_by",
            "reason",
            "bug",
            "note",
            "added",
            "removed",
            "relabeled",
            "size",
        ]


def _project_param(request, roles=None):
    raw = request.query_params.get("project") if request.method == "GET" else request.data.get("project")
    if raw in (None, ""):
        raise ValidationFailed("project is required.", fields={"project": ["This field is required."]})
    return access_project(user=request.user, project_id=raw, **({"roles": roles} if roles else {}))


class DatasetListCreateApi(ApiView):
    class Input(inputs.Input):
        project = serializers.IntegerField(**inputs.ID)
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
        min_accuracy = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0, max_value=1)
        gate = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Promotion to canary or production needs a passing evaluation on this dataset's latest version.",
        )

    @extend_schema(
        parameters=[OpenApiParameter("project", int, required=True)],
        responses={200: DatasetOutput(many=True), **ERRORS},
        operation_id="datasets_list",
    )
    def get(self, request):
        project = _project_param(request)
        return Response(DatasetOutput(sel.dataset_list(project=project), many=True).data)

    @extend_schema(
        request=Input, responses={201: DatasetOutput, 409: ErrorSerializer, **ERRORS}, operation_id="datasets_create"
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        project = access_project(user=request.user, project_id=values.pop("project"), roles=MANAGER_ROLES)
        dataset = dataset_create(project=project, actor=request.user, **values)
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(ApiView):
    class PatchInput(inputs.Input):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
        gate = serializers.BooleanField(required=False)
        min_accuracy = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
        tags = serializers.ListField(
            child=serializers.CharField(max_length=64),
            required=False,
            max_length=1000,
            help_text="The full list of tag slugs (bugs carrying one of them flow into the dataset).",
        )

    @extend_schema(responses={200: DatasetOutput, **ERRORS}, operation_id="datasets_retrieve")
    def get(self, request, dataset_id):
        return Response(DatasetOutput(sel.access_dataset(user=request.user, dataset_id=dataset_id)).data)

    @extend_schema(
        request=PatchInput,
        responses={200: DatasetOutput, 409: ErrorSerializer, **ERRORS},
        operation_id="datasets_update",
        description="Change a dataset's name, description, gate flag, min_accuracy (null: none) or tags; fields "
        "left out stay. Managers only. 409 when another dataset of the project has the name; on any error "
        "nothing changes. Versions are not touched.",
    )
    def patch(self, request, dataset_id):
        dataset = sel.access_dataset(user=request.user, dataset_id=dataset_id, roles=MANAGER_ROLES)
        data = self.PatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dataset = dataset_update(
            dataset=dataset,
            actor=request.user,
            **{k: v.get(k, UNSET) for k in ("name", "description", "gate", "min_accuracy", "tags")},
        )
        return Response(DatasetOutput(sel.access_dataset(user=request.user, dataset_id=dataset.pk)).data)


class ItemSearchRowOutput(serializers.Serializer):
    external_id = serializers.CharField()
    text = serializers.CharField(help_text="The payload's text, cut at 300 characters.")
    status = serializers.CharField()
    ground_truth = serializers.CharField(allow_null=True)
    in_dataset = serializers.BooleanField(help_text="In the dataset's latest version.")


class ItemSearchOutput(serializers.Serializer):
    results = ItemSearchRowOutput(many=True)
    more = serializers.BooleanField(help_text="More items match than `limit`.")


class DatasetItemSearchApi(ApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                {"type": "string", "maxLength": 200},
                description="Text in the external_id or the payload's text (any case).",
            ),
            OpenApiParameter("status", str, enum=ItemStatus.values),
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
        ],
        responses={200: ItemSearchOutput, **ERRORS},
        operation_id="dataset_item_search",
        description="Items of the dataset's project to add or remove, newest first, with their ground truth and "
        "whether they are in the dataset's latest version. Managers only. The same search as `add_search` "
        "of POST /api/datasets/{id}/versions.",
    )
    def get(self, request, dataset_id):
        dataset = sel.access_dataset(user=request.user, dataset_id=dataset_id, roles=MANAGER_ROLES)
        params = request.query_params
        q = params.get("q", "")
        status_filter = params.get("status") or None
        if status_filter is not None and status_filter not in ItemStatus.values:
            raise ValidationFailed(
                f"status must be one of {', '.join(ItemStatus.values)}.", fields={"status": ["Invalid choice."]}
            )
        if len(q) > 200:
            raise ValidationFailed("q is at most 200 characters.", fields={"q": ["At most 200 characters."]})
        try:
            limit = int(params.get("limit", 50))
            if not 1 <= limit <= 500:
                raise ValueError
        except ValueError:
            raise ValidationFailed("limit must be an integer from 1 to 500.", fields={"limit": ["From 1 to 500."]})
        rows = sel.item_search(
            project_id=dataset.project_id, q=q, status=status_filter, limit=limit + 1, dataset_id=dataset.pk
        )
        results = [
            {
                "external_id": external_id,
                "text": _text(payload)[:300],
                "status": item_status,
                "ground_truth": truth,
                "in_dataset": in_dataset,
            }
            for _, external_id, payload, item_status, truth, in_dataset in rows[:limit]
        ]
        return Response({"results": results, "more": len(rows) > limit})


def _text(payload) -> str:
    value = payload.get("text") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else ""


class SearchInput(inputs.Input):
    q = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    status = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        max_length=16,
        help_text=f"Only items in this status: {', '.join(ItemStatus.values)}.",
    )
    limit = serializers.IntegerField(min_value=1, max_value=10_000)


class ConflictOutput(serializers.Serializer):
    external_id = serializers.CharField()
    expected = serializers.CharField()
    ground_truth = serializers.CharField(allow_null=True)


class RefusedOutput(serializers.Serializer):
    without_ground_truth = serializers.ListField(child=serializers.CharField())
    conflicts = ConflictOutput(many=True)


class DatasetVersionsApi(ApiView):
    request_body_limit = BodyLimit(setting="LOUPE_MAX_BATCH_BYTES", what="A dataset version body")

    class Input(inputs.Input):
        add = serializers.ListField(
            child=serializers.CharField(max_length=255), required=False, default=list, max_length=100_000
        )
        remove = serializers.ListField(
            child=serializers.CharField(max_length=255), required=False, default=list, max_length=100_000
        )
        add_bug = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Add this bug's failures: labelled with the item's ground truth, else the failure's expected "
            "label; a failure whose expected label disagrees with the ground truth is refused (a reviewer decides).",
            **inputs.ID,
        )
        remove_bug = serializers.IntegerField(
            required=False,
            allow_null=True,
            default=None,
            help_text="Remove the items this bug added or whose items are its failures.",
            **inputs.ID,
        )
        add_search = SearchInput(
            required=False,
            allow_null=True,
            default=None,
            help_text="Add the newest `limit` items matching the search that are not in the dataset yet.",
        )
        skip_refused = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Add what can be added and list the refused items in `refused` (default: refuse the "
            "whole request with a 400 listing them).",
        )
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    class CreatedOutput(serializers.Serializer):
        changed = serializers.BooleanField()
        version = VersionOutput(allow_null=True)
        refused = RefusedOutput()

    @extend_schema(responses={200: VersionOutput(many=True), **ERRORS}, operation_id="dataset_versions_list")
    def get(self, request, dataset_id):
        dataset = sel.access_dataset(user=request.user, dataset_id=dataset_id)
        return Response(VersionOutput(sel.dataset_versions(dataset=dataset), many=True).data)

    @extend_schema(
        request=Input,
        responses={201: CreatedOutput, 200: CreatedOutput, **ERRORS},
        operation_id="dataset_versions_create",
        description="One new version with the items added and removed: by external_id (`add`, `remove`), by a "
        "bug (`add_bug`, `remove_bug`) or by a search (`add_search`). 201 with the version, or 200 with "
        "`changed: false` when nothing would change. Items without ground truth and conflicting failures "
        "refuse the whole request (400 listing them in `fields`) unless `skip_refused` is true. Managers only.",
    )
    def post(self, request, dataset_id):
        dataset = sel.access_dataset(user=request.user, dataset_id=dataset_id, roles=MANAGER_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = dataset_curate(
            dataset=dataset,
            actor=request.user,
            add_external_ids=v["add"],
            remove_external_ids=v["remove"],
            add_bug=v["add_bug"],
            remove_bug=v["remove_bug"],
            add_search=v["add_search"],
            skip_refused=v["skip_refused"],
            note=v["note"],
        )
        body = {
            "changed": result.version is not None,
            "version": VersionOutput(result.version).data if result.version else None,
            "refused": result.refused,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.version else status.HTTP_200_OK)


BLIND_LABEL = (
    "The label frozen at that version; null for an annotator while the item may still be "
    "served to them for labeling (blind labeling)."
)


class VersionRowOutput(serializers.Serializer):
    external_id = serializers.CharField()
    label = serializers.CharField(allow_null=True, help_text=BLIND_LABEL)
    payload = serializers.JSONField()
    bug = serializers.IntegerField(allow_null=True)
    added_in = serializers.IntegerField()


class VersionItemsPageOutput(serializers.Serializer):
    version = serializers.IntegerField()
    results = VersionRowOutput(many=True)
    next_after = serializers.IntegerField(allow_null=True)


class DeltaRowOutput(serializers.Serializer):
    external_id = serializers.CharField()
    label = serializers.CharField(allow_null=True, help_text=BLIND_LABEL)
    bug = serializers.IntegerField(allow_null=True)


class DeltaOutput(serializers.Serializer):
    number = serializers.IntegerField()
    against = serializers.IntegerField()
    reason = serializers.CharField()
    bug = serializers.IntegerField(allow_null=True)
    added = DeltaRowOutput(many=True)
    removed = DeltaRowOutput(many=True)


CSV_COLUMNS = ["external_id", "label", "bug", "added_in", "text"]


def _row(r):
    return {"external_id": r[1], "label": r[2], "payload": r[3], "bug": r[4], "added_in": r[5]}


class DatasetVersionItemsApi(ApiView):
    content_negotiation_class = FormatIsAQueryParameter

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=["json", "jsonl", "csv"]),
            OpenApiParameter("after", {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
        ],
        responses={
            (200, "application/json"): VersionItemsPageOutput,
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR, description="format=jsonl: one row per line."
            ),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="format=csv: a header row external_id,label,bug,added_in,text (the payload's text), "
                "then one row per item.",
            ),
            **ERRORS,
        },
        operation_id="dataset_version_items",
        description="Items of a version with the label frozen at that version. JSON pages by `after` "
        "(the `next_after` of the previous page); `format=jsonl` and `format=csv` stream the whole version.",
    )
    def get(self, request, dataset_id, number, format=None):
        dataset = sel.access_dataset(user=request.user, dataset_id=dataset_id)
        sel.dataset_version(dataset=dataset, number=number)
        visibility = labels_visible_to(user=request.user, project=dataset.project)
        fmt = request.query_params.get("format", "json")
        if fmt == "jsonl":

            def lines():
                for r in sel.version_row_stream(dataset_id=dataset.pk, number=number, visibility=visibility):
                    yield json.dumps(_row(r), ensure_ascii=False) + "\n"

            response = StreamingHttpResponse(lines(), content_type="application/x-ndjson; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="dataset-{dataset.pk}-v{number}.jsonl"'
            return response
        if fmt == "csv":

            def csv_lines():
                buf = io.StringIO()
                writer = csv.writer(buf)
                writer.writerow(CSV_COLUMNS)
                for r in sel.version_row_stream(dataset_id=dataset.pk, number=number, visibility=visibility):
                    writer.writerow([r[1], r[2] or "", "" if r[4] is None else r[4], r[5], _text(r[3])])
                    if buf.tell() > 64 * 1024:
                        yield buf.getvalue()
                        buf.seek(0)
                        buf.truncate()
                yield buf.getvalue()

            response = StreamingHttpResponse(csv_lines(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="dataset-{dataset.pk}-v{number}.csv"'
            return response
        if fmt != "json":
            raise ValidationFailed("format must be json, jsonl or csv.", fields={"format": ["Invalid choice."]})
        try:
            after = int(request.query_params.get("after", 0))
            limit = int(request.query_params.get("limit", 500))
            if not (0 <= after <= MAX_ID and 1 <= limit <= 5000):
                raise ValueError
        except ValueError:
            raise ValidationFailed(
                "after must be an integer from 0 (a row id) and limit an integer from 1 to 5000.",
                fields={"after": ["An integer from 0."], "limit": ["An integer from 1 to 5000."]},
            )
        rows = sel.version_rows(
            dataset_id=dataset.pk, number=number, visibility=visibility, after_id=after, limit=limit
        )
        return Response(
            {
                "version": number,
                "results": [_row(r) for r in rows],
                "next_after": rows[-1][0] if len(rows) == limit else None,
            }
        )


class DatasetVersionDeltaApi(ApiView):
    @extend_schema(responses={200: DeltaOutput, **ERRORS}, operation_id="dataset_version_delta")
    def get(self, request, dataset_id, number):
        dataset = sel.access_dataset(user=request.user, dataset_id=dataset_id)
        return Response(sel.version_delta(dataset=dataset, number=number, user=request.user))


class SliceOutput(serializers.Serializer):
    field = serializers.CharField(help_text='A slice field of the project, or "bug" (the bug that added the item).')
    value = serializers.CharField(
        help_text='The payload value (JSON strings as they are, other JSON compact); "(none)" when the key is '
        'missing or null, "(other)" for the values beyond the 50 largest of the field.'
    )
    n = serializers.IntegerField(help_text="Members of the slice with a known label.")
    accuracy = serializers.FloatField(allow_null=True)
    macro_f1 = serializers.FloatField(allow_null=True)
    baseline_accuracy = serializers.FloatField(allow_null=True, help_text="The baseline model on the same items.")
    delta = serializers.FloatField(allow_null=True, help_text="accuracy − baseline_accuracy.")
    dropped = serializers.BooleanField(
        help_text="delta below −slice_drop_threshold (bug settings, 0.05 by default) on at least 5 items: "
        "a warning, not a failure."
    )


class PreviousOutput(serializers.Serializer):
    evaluation = serializers.IntegerField()
    model_version = serializers.CharField()
    source = serializers.CharField(help_text='"upload", or "stored": computed by Loupe from stored predictions.')
    accuracy = serializers.FloatField(allow_null=True)
    macro_f1 = serializers.FloatField(allow_null=True)
    accuracy_change = serializers.FloatField(allow_null=True)


class ResultOutput(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    dataset_name = serializers.CharField(source="dataset.name")
    previous = serializers.SerializerMethodField(help_text="The baseline's result on the same dataset version.")
    regressions_by_bug = serializers.DictField(
        child=serializers.IntegerField(), help_text="{bug id: items of that bug the baseline got right, now wrong}"
    )
    slices = SliceOutput(many=True)
    warnings = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = EvaluationResult
        fields = [
            "dataset",
            "dataset_name",
            "dataset_version",
            "n",
            "n_missing",
            "accuracy",
            "macro_f1",
            "per_class_recall",
            "confusion",
            "baseline_model",
            "baseline_missing",
            "regressions",
            "regressions_by_bug",
            "regression_items",
            "slices",
            "passed",
            "reasons",
            "warnings",
            "previous",
        ]

    @extend_schema_field(PreviousOutput(allow_null=True))
    def get_previous(self, obj):
        p = obj.previous
        if p is None:
            return None
        return {
            "evaluation": p.evaluation_id,
            "model_version": p.evaluation.model_version,
            "source": p.evaluation.source,
            "accuracy": p.accuracy,
            "macro_f1": p.macro_f1,
            "accuracy_change": None if (p.accuracy is None or obj.accuracy is None) else obj.accuracy - p.accuracy,
        }


class EvaluationOutput(serializers.ModelSerializer):
    project = serializers.IntegerField(source="project_id")
    source = serializers.CharField(
        help_text='"upload": predictions sent by a user; "stored": computed by Loupe from the stored predictions '
        "of the model (a baseline on a version it had not seen, or POST /api/evaluations/rerun)."
    )
    results = ResultOutput(many=True, read_only=True)

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "project",
            "model_version",
            "source",
            "n_predictions",
            "n_unknown",
            "passed",
            "created_at",
            "results",
        ]


BASELINE_DOC = (
    " Each dataset's latest version is evaluated and compared with the baseline: the project's model in "
    "production, else the one promoted last (never a model that was only a candidate, never the evaluated "
    "model), on the same dataset version. When the baseline has no result on that version, Loupe evaluates "
    "it there from its stored predictions (those its earlier evaluations kept, newest first, then its "
    'production predictions) and saves that as an evaluation with source "stored": the request need not '
    "include the baseline's predictions. A dataset fails when accuracy is below its min_accuracy, an item "
    "has no prediction, or an item of a resolved bug that the baseline got right is now wrong (regressions, "
    'regressions_by_bug). Slices (the project\'s slice_fields and "bug") carry their change against the '
    "baseline; a slice that dropped is listed in warnings and does not fail the dataset."
)


class _Rows(serializers.Field):
    """A list of prediction rows, passed on as they are: predictions_parse checks each row."""

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("Must be a list.")
        return data


class EvaluationListCreateApi(ApiView):
    request_body_limit = BodyLimit(max_bytes=MAX_EVAL_BYTES, what="An evaluation body")

    class Input(inputs.Input):
        project = serializers.IntegerField(**inputs.ID)
        model_version = serializers.CharField(max_length=128)
        predictions = _Rows()
        datasets = serializers.ListField(
            child=serializers.IntegerField(**inputs.ID), required=False, default=list, max_length=1000
        )

    @extend_schema(
        parameters=[OpenApiParameter("project", int, required=True), OpenApiParameter("model_version", str)],
        responses={200: EvaluationOutput(many=True), **ERRORS},
        operation_id="evaluations_list",
    )
    def get(self, request):
        project = _project_param(request)
        evaluations = sel.evaluations_visible(
            user=request.user, project=project, model_version=request.query_params.get("model_version")
        )
        return Response(EvaluationOutput(evaluations, many=True).data)

    @extend_schema(
        request={"application/json": {"type": "object"}, "application/x-ndjson": {"type": "string"}},
        parameters=[
            OpenApiParameter("project", int),
            OpenApiParameter("model_version", str),
            OpenApiParameter("datasets", str, description="JSON Lines only: comma-separated dataset ids"),
        ],
        responses={201: EvaluationOutput, 413: ErrorSerializer, **ERRORS},
        operation_id="evaluations_create",
        description="JSON: {project, model_version, predictions:[{external_id,label,probabilities?}], datasets?}. "
        "JSON Lines: one prediction per line, with project, model_version and datasets as query parameters. "
        "Every prediction for an item of the project is kept (so later dataset versions can be evaluated from "
        "them) and the model version is registered (as a candidate when new)." + BASELINE_DOC,
    )
    def post(self, request):
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type in NDJSON_TYPES:
            params = request.query_params
            project = access_project(user=request.user, project_id=params.get("project"), roles=MANAGER_ROLES)
            model_version = params.get("model_version", "")
            datasets = serializers.ListField(child=serializers.IntegerField(**inputs.ID), max_length=1000)
            try:
                datasets = datasets.run_validation([x for x in params.get("datasets", "").split(",") if x.strip()])
            except serializers.ValidationError:
                raise ValidationFailed("datasets must be comma-separated ids.", fields={"datasets": ["Invalid."]})
            rows = evaluation_rows_from_jsonl(request._request, max_bytes=MAX_EVAL_BYTES)
        else:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
            if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                raise TooLarge("A JSON evaluation body holds at most 20 MB; send JSON Lines for more (up to 256 MB).")
            data = self.Input(data=request.data)
            data.is_valid(raise_exception=True)
            body = data.validated_data
            project = access_project(user=request.user, project_id=body["project"], roles=MANAGER_ROLES)
            model_version, datasets, rows = body["model_version"], body["datasets"], body["predictions"]
        batch = predictions_parse(project=project, rows=rows)
        evaluation = evaluation_run(
            project=project, actor=request.user, model_version=model_version, batch=batch, dataset_ids=datasets or None
        )
        evaluation = sel.evaluation_list(project=project).get(pk=evaluation.pk)
        return Response(EvaluationOutput(evaluation).data, status=status.HTTP_201_CREATED)


class EvaluationDetailApi(ApiView):
    @extend_schema(responses={200: EvaluationOutput, **ERRORS}, operation_id="evaluations_retrieve")
    def get(self, request, evaluation_id):
        evaluation = sel.evaluation_visible(user=request.user, evaluation_id=evaluation_id)
        return Response(EvaluationOutput(evaluation).data)


class EvaluationRerunApi(ApiView):
    class Input(inputs.Input):
        project = serializers.IntegerField(**inputs.ID)
        model_version = serializers.CharField(max_length=128)
        datasets = serializers.ListField(
            child=serializers.IntegerField(**inputs.ID), required=False, default=list, max_length=1000
        )

    @extend_schema(
        request=Input,
        responses={201: EvaluationOutput, 409: ErrorSerializer, **ERRORS},
        operation_id="evaluations_rerun",
        description="Evaluate a model version again on the latest version of the project's datasets (or of "
        "`datasets`) from its stored predictions, without uploading them: how a model is re-checked after a "
        'dataset gets a new version. The evaluation has source "stored"; 409 (no_stored_predictions) when '
        "the model has none." + BASELINE_DOC,
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        body = data.validated_data
        project = access_project(user=request.user, project_id=body["project"], roles=MANAGER_ROLES)
        evaluation = evaluation_rerun_stored(
            project=project,
            model_version=body["model_version"],
            actor=request.user,
            dataset_ids=body["datasets"] or None,
        )
        evaluation = sel.evaluation_list(project=project).get(pk=evaluation.pk)
        return Response(EvaluationOutput(evaluation).data, status=status.HTTP_201_CREATED)


class FlowOutput(serializers.ModelSerializer):
    class Meta:
        model = BugDatasetFlow
        fields = [
            "id",
            "status",
            "datasets",
            "mine_similar",
            "added",
            "pending",
            "conflicts",
            "mined",
            "versions",
            "error",
            "created_at",
            "finished_at",
        ]


class BugDatasetFlowsApi(ApiView):
    @extend_schema(responses={200: FlowOutput(many=True), **ERRORS}, operation_id="bug_dataset_flows")
    def get(self, request, bug_id):
        bug = access_bug(user=request.user, bug_id=bug_id)
        return Response(FlowOutput(sel.bug_dataset_flows(bug=bug), many=True).data)
