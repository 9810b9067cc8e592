from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from common.api.base import ApiView
from common.api.batch import read_batch
from common.api.errors import ERRORS, ErrorSerializer
from common.http.request_body import BATCH
from labeling.api.views_projects import EXTERNAL_ID
from labeling.models import Stage
from labeling.selectors.access import MANAGER_ROLES, REVIEW_ROLES, access_project
from labeling.selectors.feedback import feedback_delay_report, feedback_filters_parse
from labeling.services.feedback import ground_truth_import

# A day, a date-time (its UTC day), or empty (no bound).
DAY = {
    "anyOf": [
        {"type": "string", "format": "date"},
        {"type": "string", "format": "date-time"},
        {"type": "string", "maxLength": 0},
    ]
}
OUTCOMES = ["applied", "confirmed", "conflict", "superseded", "pending", "unchanged"]


class GroundTruthRowOutput(serializers.Serializer):
    index = serializers.IntegerField()
    external_id = serializers.CharField()
    outcome = serializers.ChoiceField(choices=OUTCOMES)
    message = serializers.CharField(required=False)


GROUND_TRUTH_ROW = {
    "type": "object",
    "additionalProperties": False,
    "required": ["external_id", "label"],
    "properties": {
        "external_id": EXTERNAL_ID,
        "label": {"type": "string", "description": "A label key of the project."},
        "observed_at": {"type": "string", "format": "date-time"},
        "source": {"type": "string", "maxLength": 64},
    },
}


class GroundTruthImportApi(ApiView):
    request_body_limit = BATCH

    class Output(serializers.Serializer):
        received = serializers.IntegerField()
        applied = serializers.IntegerField(help_text="Set or changed the item's ground truth (method imported).")
        confirmed = serializers.IntegerField(help_text="Agreed with the ground truth already there.")
        conflicts = serializers.IntegerField(
            help_text="Disagreed with a human decision: nothing overwritten, the item went to review (status conflict)."
        )
        superseded = serializers.IntegerField(help_text="Older than the imported label in force: kept, not applied.")
        pending = serializers.IntegerField(
            help_text="No item with this external_id yet: kept, applied when the item is ingested."
        )
        unchanged = serializers.IntegerField(help_text="Already received earlier: nothing written.")
        rows = GroundTruthRowOutput(many=True, help_text="One entry per row sent, in order.")

    @extend_schema(
        request={
            "application/json": {"type": "array", "items": GROUND_TRUTH_ROW, "minItems": 1},
            "application/x-ndjson": {"type": "string"},
        },
        responses={200: Output, 201: Output, 413: ErrorSerializer, **ERRORS},
        operation_id="ground_truth_import",
        description=(
            "Late ground truth observed in production (a chargeback, a user correction...). A JSON array or JSON "
            "Lines of {external_id, label, observed_at?, source?}; observed_at defaults to now and becomes the "
            "time the truth arrived. The whole batch is validated first (400 lists every bad row, nothing written; "
            "at most 10,000 rows or 20 MB, else 413). Idempotent: a row is identified by (external_id, source, "
            "label) and sending it again changes nothing. Every row gets an outcome: applied, confirmed, "
            "conflict (disagrees with a human decision: neither label is overwritten, the item's status becomes "
            "conflict so the review queue serves it), superseded, pending (unknown external_id: the row is "
            "accepted, kept and applied once an item with that external_id is ingested; it is reported, never "
            "dropped) or unchanged. 201 when anything new was recorded, 200 otherwise."
        ),
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        rows = read_batch(request)
        result = ground_truth_import(project=project, rows=rows, actor=request.user)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(self.Output(result.as_dict()).data, status=code)


class DelayQuantilesOutput(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p90 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class DelayCoverageOutput(serializers.Serializer):
    age_days = serializers.IntegerField()
    fraction_labeled = serializers.FloatField()


class DelayCohortOutput(serializers.Serializer):
    week = serializers.DateField(help_text="Monday of the ISO week of prediction (UTC).")
    predictions = serializers.IntegerField()
    fraction_labeled_by_day = serializers.ListField(
        child=serializers.FloatField(),
        help_text="[d] = share labeled within d+1 days; listed only while all the week's predictions are that old.",
    )


class DelayBacklogOutput(serializers.Serializer):
    unlabeled = serializers.IntegerField()
    oldest_age_seconds = serializers.FloatField(allow_null=True)


class DelaySloOutput(serializers.Serializer):
    quantile = serializers.FloatField()
    target_seconds = serializers.IntegerField()
    observed_seconds = serializers.FloatField(allow_null=True)
    breached = serializers.BooleanField()


class DelayStaffingOutput(serializers.Serializer):
    arrivals_per_day = serializers.FloatField()
    median_seconds_per_annotation = serializers.FloatField(allow_null=True)
    annotations_per_item = serializers.FloatField(
        help_text="Measured mean annotations per completed item (the configured overlap until one is completed)."
    )
    annotations_per_item_source = serializers.ChoiceField(choices=["measured", "configured"])
    configured_annotations_per_item = serializers.IntegerField()
    completed_items = serializers.IntegerField(help_text="Resolved items with at least one annotation.")
    annotator_hours_per_day_needed = serializers.FloatField(allow_null=True)
    reviews_per_item = serializers.FloatField(help_text="Review decisions per completed item.")
    reviews_per_day = serializers.FloatField()
    median_seconds_per_review = serializers.FloatField(allow_null=True)
    review_hours_per_day_needed = serializers.FloatField(allow_null=True)
    hours_per_day_needed = serializers.FloatField(allow_null=True, help_text="Annotator-hours plus review hours.")
    days_to_clear_backlog = serializers.FloatField(allow_null=True)
    definitions = serializers.DictField(child=serializers.CharField(), help_text="Each figure's definition.")


class DelayLivePerformanceOutput(serializers.Serializer):
    week = serializers.DateField()
    accuracy_on_labeled = serializers.FloatField(allow_null=True)
    fraction_labeled = serializers.FloatField()
    estimated_accuracy = serializers.FloatField(allow_null=True)
    interval = serializers.ListField(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2)


class LiveNumbersOutput(serializers.Serializer):
    predictions = serializers.IntegerField()
    labeled = serializers.IntegerField(help_text="Predictions with ground truth (of the chosen source, if any).")
    labeled_fraction = serializers.FloatField(allow_null=True)
    correct = serializers.IntegerField(help_text="Labeled predictions whose label equals the ground truth.")
    accuracy_on_labeled = serializers.FloatField(allow_null=True, help_text="correct / labeled; null when none.")
    accuracy_interval = serializers.ListField(
        child=serializers.FloatField(),
        allow_null=True,
        min_length=2,
        max_length=2,
        help_text="95% Wilson interval of accuracy_on_labeled.",
    )


class LiveModelOutput(LiveNumbersOutput):
    model_version = serializers.CharField()
    mean_confidence = serializers.FloatField(
        allow_null=True, help_text="Mean max probability over its predictions that carry probabilities."
    )


class LiveStageOutput(LiveNumbersOutput):
    stage = serializers.ChoiceField(
        choices=Stage.choices, allow_null=True, help_text="null: model versions that are not registered."
    )
    mean_confidence = serializers.FloatField(allow_null=True)
    model_versions = LiveModelOutput(many=True)


class SliceStageOutput(LiveNumbersOutput):
    stage = serializers.ChoiceField(choices=Stage.choices, allow_null=True)


class SliceModelOutput(LiveNumbersOutput):
    model_version = serializers.CharField()
    stage = serializers.ChoiceField(choices=Stage.choices, allow_null=True)


class SliceValueOutput(LiveNumbersOutput):
    value = serializers.CharField(help_text='The payload value as text; "(none)": no such key; "(other)": the rest.')
    by_stage = SliceStageOutput(many=True)
    by_model_version = SliceModelOutput(many=True)


class LiveSliceOutput(serializers.Serializer):
    field = serializers.CharField()
    values = SliceValueOutput(many=True, help_text='At most 50 values (most predictions first), then "(other)".')
    capped = serializers.BooleanField(help_text='True when values beyond the first 50 were folded into "(other)".')


class FeedbackDelayApi(ApiView):
    class Output(serializers.Serializer):
        predictions = serializers.IntegerField()
        labeled = serializers.IntegerField()
        labeled_fraction = serializers.FloatField(allow_null=True)
        delay_seconds = DelayQuantilesOutput(help_text="Kaplan-Meier percentiles (censoring-aware).")
        naive_delay_seconds = DelayQuantilesOutput(
            help_text="Percentiles over labeled predictions only (biased short)."
        )
        coverage = DelayCoverageOutput(many=True)
        cohorts = DelayCohortOutput(many=True)
        backlog = DelayBacklogOutput()
        slo = DelaySloOutput()
        staffing = DelayStaffingOutput()
        live_performance = DelayLivePerformanceOutput(many=True)
        live_by_stage = LiveStageOutput(
            many=True,
            help_text="Live performance per deployment stage (a model version's current stage), production first, "
            "then canary, shadow, candidate, retired; each with its model versions. Every stage holding a registered "
            "version that the filters select is listed.",
        )
        live_by_slice = LiveSliceOutput(
            allow_null=True, help_text="Live accuracy per value of the slice field (?slice=); null without it."
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since", DAY, description="First prediction day (UTC, inclusive): 2026-03-01 or a date-time."
            ),
            OpenApiParameter("until", DAY, description="Last prediction day (UTC, inclusive; not before since)."),
            OpenApiParameter("model_version", str),
            OpenApiParameter(
                "source",
                str,
                description="Count ground truth from this channel only: human, imported "
                "or an import source; other truth counts as not arrived.",
            ),
            OpenApiParameter(
                "stage",
                str,
                enum=Stage.values,
                description="Only the model versions now in this deployment stage (delay figures and live "
                "performance).",
            ),
            OpenApiParameter(
                "slice",
                str,
                description="A slice field the project declares (Project.slice_fields): adds live_by_slice, live "
                "accuracy per value of that payload key.",
            ),
        ],
        responses={200: Output, **ERRORS},
        operation_id="feedback_delay",
        description=(
            "Delay between predictions and their ground truth. Percentiles are Kaplan-Meier estimates with "
            "predictions still waiting censored at their age (the cut-off is now), beside the naive labeled-only "
            "percentiles; null when the estimate never reaches that share. Computed from rollups (never one row "
            "per prediction). live_by_stage splits live performance by deployment stage (shadow beside production); "
            "?slice=<field> adds live_by_slice, computed from the predictions themselves (one grouped query). "
            "Unknown parameters, bad dates, unknown model versions, sources, stages or slice fields answer 400."
        ),
    )
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=REVIEW_ROLES)
        filters = feedback_filters_parse(project=project, params=request.query_params)
        report = feedback_delay_report(project=project, filters=filters)
        return Response(self.Output(report).data)
