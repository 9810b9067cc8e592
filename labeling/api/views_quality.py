"""Quality runs, the review queue, annotator statistics and agreement. Thin: selectors read,
services write, errors are common.errors (one error shape).

Long because the review lease, the reviewer's context (annotations, consensus, the explanation of a
consensus nobody chose) and the agreement figures with their definitions are documented field by
field for the OpenAPI schema, beside the runs they come from."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.api.pagination import DefaultPagination, ItemCursorPagination
from common.errors import ValidationFailed
from labeling.api.serializers import LabelOutput
from labeling.models import AcceptMode, QualityOutcome
from labeling.selectors import quality as sq
from labeling.selectors.access import MANAGER_ROLES, REVIEW_ROLES, access_project
from labeling.services.quality.runs import quality_run_request, quality_settings_update
from labeling.services.resolution import item_resolve, review_next, review_skip
from labeling.services.review_undo import item_resolve_undo

CONFLICT = {409: ErrorSerializer}


class RunCountsOutput(serializers.Serializer):
    scored = serializers.IntegerField()
    auto_accepted = serializers.IntegerField()
    to_review = serializers.IntegerField()
    reopened_for_more = serializers.IntegerField()
    skipped_stale = serializers.IntegerField()
    label_issues = serializers.IntegerField()
    annotations = serializers.IntegerField(source="n_annotations")
    annotators = serializers.IntegerField(source="n_annotators")
    ignored_annotations = serializers.IntegerField(source="n_ignored_annotations")


class RunTimingsOutput(serializers.Serializer):
    read = serializers.FloatField(source="seconds_read", allow_null=True)
    pred_probs = serializers.FloatField(source="seconds_pred_probs", allow_null=True)
    cleanlab = serializers.FloatField(source="seconds_cleanlab", allow_null=True)
    write = serializers.FloatField(source="seconds_write", allow_null=True)
    total = serializers.FloatField(source="seconds_total", allow_null=True)


class QualityRunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    status = serializers.CharField()
    trigger = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    error = serializers.CharField()
    method = serializers.CharField()
    pred_probs_source = serializers.CharField()
    model_versions = serializers.CharField()
    seed = serializers.IntegerField()
    accept_threshold = serializers.FloatField(
        allow_null=True,
        help_text="The threshold the run accepted at: on the estimated chance the consensus is right (p_right) in "
        "the calibrated mode, on the CROWDLAB quality score in the raw-score mode (null: the default rule).",
    )
    calibration = serializers.JSONField(
        help_text="The run's accept rule: mode, rule (calibrated | default), max_accept_error, decisions (decided "
        "items), examples (their scored consensus labels before the decision), threshold, threshold_on (p_right), "
        "reopenable_threshold (1 - target: items that can still get a label), ranker (weights of quality, "
        "agreement, num_annotations), estimated_error, curve_on, curve (bins: count, right, share_right, fitted), "
        "audit (audited, wrong, error, low, high: Wilson 95%), audits_sent, would_accept ({target: items})."
    )
    snapshot_at = serializers.DateTimeField(allow_null=True)
    snapshot_max_annotation_id = serializers.IntegerField(allow_null=True)
    mean_quality = serializers.FloatField(allow_null=True)
    counts = RunCountsOutput(source="*")
    timings = RunTimingsOutput(source="*")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class QualityRunListCreateApi(ApiView):
    pagination_class = DefaultPagination

    @extend_schema(responses={200: QualityRunOutput(many=True), **ERRORS}, operation_id="quality_runs_list")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=REVIEW_ROLES)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            sq.run_list(project=project).select_related("requested_by"), request, view=self
        )
        return paginator.get_paginated_response(QualityRunOutput(page, many=True).data)

    @extend_schema(
        request=None,
        responses={202: QualityRunOutput, **CONFLICT, **ERRORS},
        operation_id="quality_runs_create",
        description="Queue a cleanlab scoring of the project (manager). 409 `run_in_progress` (with `fields.run_id`) "
        "when a run is already queued or running.",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        run = quality_run_request(project_id=project.pk, requested_by=request.user)
        return Response(QualityRunOutput(run).data, status=status.HTTP_202_ACCEPTED)


class QualityRunDetailApi(ApiView):
    @extend_schema(responses={200: QualityRunOutput, **ERRORS}, operation_id="quality_runs_retrieve")
    def get(self, request, run_id):
        run = sq.access_run(user=request.user, run_id=run_id, roles=REVIEW_ROLES)
        return Response(QualityRunOutput(run).data)


class QualityRunItemsApi(ApiView):
    class Output(serializers.Serializer):
        item_id = serializers.IntegerField()
        external_id = serializers.CharField(source="item.external_id")
        consensus_label = serializers.CharField()
        quality = serializers.FloatField()
        agreement = serializers.FloatField()
        num_annotations = serializers.IntegerField()
        active_learning_score = serializers.FloatField(allow_null=True)
        label_issue = serializers.BooleanField()
        outcome = serializers.CharField()
        audit = serializers.BooleanField(help_text="Sent to review as an audit of the accept rule.")
        p_right = serializers.FloatField(
            allow_null=True,
            help_text="The calibrated accept rule's estimated chance that the consensus is right (null: no fitted rule).",
        )

    pagination_class = ItemCursorPagination

    @extend_schema(
        parameters=[OpenApiParameter("outcome", str, enum=QualityOutcome.values)],
        responses={200: Output(many=True), **ERRORS},
        operation_id="quality_run_items_list",
    )
    def get(self, request, run_id):
        run = sq.access_run(user=request.user, run_id=run_id, roles=REVIEW_ROLES)
        outcome = request.query_params.get("outcome")
        if outcome is not None and outcome not in QualityOutcome.values:
            raise ValidationFailed(
                f"outcome must be one of {', '.join(QualityOutcome.values)}.", fields={"outcome": ["Invalid choice."]}
            )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(sq.run_results(run=run, outcome=outcome), request, view=self)
        return paginator.get_paginated_response(self.Output(page, many=True).data)


class ReviewItemOutput(serializers.Serializer):
    class Lease(serializers.Serializer):
        id = serializers.IntegerField()
        expires_at = serializers.DateTimeField()

    class ItemBody(serializers.Serializer):
        id = serializers.IntegerField()
        external_id = serializers.CharField()
        payload = serializers.JSONField()
        status = serializers.CharField()
        annotation_count = serializers.IntegerField()

    class AnnotationBody(serializers.Serializer):
        annotator = serializers.CharField()
        label = serializers.CharField()
        label_name = serializers.CharField()
        seconds_spent = serializers.FloatField(allow_null=True)
        agrees_with_consensus = serializers.BooleanField()

    class PredictionBody(serializers.Serializer):
        model_version = serializers.CharField()
        label = serializers.CharField()
        probabilities = serializers.JSONField(allow_null=True)
        predicted_at = serializers.DateTimeField()

    class QualityBody(serializers.Serializer):
        run_id = serializers.IntegerField()
        consensus_label = serializers.CharField()
        quality = serializers.FloatField()
        agreement = serializers.FloatField()
        num_annotations = serializers.IntegerField()
        outcome = serializers.CharField()

    class ConflictBody(serializers.Serializer):
        class GroundTruthBody(serializers.Serializer):
            label = serializers.CharField()
            method = serializers.CharField()
            source = serializers.CharField()
            decided_at = serializers.DateTimeField()

        class ClaimBody(serializers.Serializer):
            label = serializers.CharField()
            source = serializers.CharField(
                help_text="Who claims it: an import source, or bug:<id> for a bug's failure."
            )
            observed_at = serializers.DateTimeField()

        ground_truth = GroundTruthBody(allow_null=True)
        claims = ClaimBody(many=True)

    class MajorityBody(serializers.Serializer):
        label = serializers.CharField()
        name = serializers.CharField()
        votes = serializers.IntegerField()
        of = serializers.IntegerField(help_text="The item's annotations.")

    class CurrentBody(serializers.Serializer):
        label = serializers.CharField()
        name = serializers.CharField()
        method = serializers.CharField()

    lease = Lease(allow_null=True)
    item = ItemBody()
    annotations = AnnotationBody(many=True)
    prediction = PredictionBody(allow_null=True)
    quality = QualityBody(allow_null=True)
    labels = LabelOutput(many=True)
    conflict = ConflictBody(
        allow_null=True,
        help_text="For an item in conflict: its ground truth and the labels that disagree with it; else null.",
    )
    majority = MajorityBody(allow_null=True, help_text="The label most annotators chose; null on a tie.")
    suggested_label = serializers.CharField(
        allow_null=True,
        help_text="The label to highlight: the consensus if some annotator chose it, else the majority label; "
        "never a label nobody chose.",
    )
    explanation = serializers.CharField(
        allow_blank=True, help_text="Why the consensus is a label no annotator chose, in words; empty otherwise."
    )
    current_label = CurrentBody(
        allow_null=True, help_text="A disputed item's ground truth, kept until the reviewer decides; else null."
    )


def review_payload(ctx: sq.ReviewContext) -> dict:
    r = ctx.result
    return {
        "lease": {"id": ctx.lease.pk, "expires_at": ctx.lease.expires_at} if ctx.lease else None,
        "item": ctx.item,
        "annotations": ctx.annotations,
        "prediction": ctx.prediction,
        "quality": None
        if r is None
        else {
            "run_id": r.run_id,
            "consensus_label": r.consensus_label,
            "quality": r.quality,
            "agreement": r.agreement,
            "num_annotations": r.num_annotations,
            "outcome": r.outcome,
        },
        "labels": ctx.labels,
        "conflict": ctx.conflict,
        "majority": ctx.majority,
        "suggested_label": ctx.suggested_label,
        "explanation": ctx.explanation,
        "current_label": ctx.current,
    }


class ReviewNextApi(ApiView):
    @extend_schema(
        request=None,
        responses={200: ReviewItemOutput, 204: None, **ERRORS},
        operation_id="review_next",
        description="Lease the lowest-quality disputed (or conflicting) item for review (reviewer or manager); "
        "the same lease again while it is held. 204 when the review queue is empty.",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=REVIEW_ROLES)
        lease = review_next(project=project, reviewer=request.user)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        ctx = sq.review_context(item=lease.item, lease=lease)
        return Response(ReviewItemOutput(review_payload(ctx)).data)


class ReviewSkipApi(ApiView):
    class Input(inputs.Input):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)

    @extend_schema(
        request=Input,
        responses={204: None, **CONFLICT, **ERRORS},
        operation_id="review_skip",
        description="Give your review lease on this item back; 409 `no_lease` if you hold none.",
    )
    def post(self, request, item_id):
        item = sq.access_item(user=request.user, item_id=item_id, roles=REVIEW_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        review_skip(item=item, reviewer=request.user, reason=data.validated_data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemResolveApi(ApiView):
    class Input(inputs.Input):
        label = serializers.CharField(max_length=64)
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
        append_to_guideline = serializers.BooleanField(required=False, default=False)

    class Output(serializers.Serializer):
        item_id = serializers.IntegerField()
        label = serializers.CharField()
        method = serializers.CharField()
        seq = serializers.IntegerField(allow_null=True, help_text="Label-history sequence number (null: unchanged).")
        guideline_revision_id = serializers.IntegerField(allow_null=True)

    @extend_schema(
        request=Input,
        responses={200: Output, **ERRORS},
        operation_id="items_resolve",
        description="Decide an item's label (reviewer or manager): ground truth with method `adjudicated`, "
        "the reviewer and the note, in the label history. `append_to_guideline` adds the note to the "
        "label's guideline (a new guideline revision). The decision can be undone for "
        "`LOUPE_REVIEW_UNDO_SECONDS` (600 by default) with POST /api/items/{id}/resolve/undo.",
    )
    def post(self, request, item_id):
        item = sq.access_item(user=request.user, item_id=item_id, roles=REVIEW_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        res = item_resolve(item=item, reviewer=request.user, **data.validated_data)
        return Response(
            self.Output(
                {
                    "item_id": res.item_id,
                    "label": res.label,
                    "method": "adjudicated",
                    "seq": res.change.seq if res.change else None,
                    "guideline_revision_id": res.guideline_revision.pk if res.guideline_revision else None,
                }
            ).data
        )


class ItemResolveUndoApi(ApiView):
    class Output(serializers.Serializer):
        item_id = serializers.IntegerField()
        undone_label = serializers.CharField(help_text="The label the undone decision had set.")
        label = serializers.CharField(
            allow_null=True, help_text="The item's ground truth again: the previous label, or null when it had none."
        )
        method = serializers.CharField(help_text="The restored label's method, or `retracted`.")
        seq = serializers.IntegerField(help_text="Label-history sequence number of the change the undo appended.")
        status = serializers.CharField(help_text="The item's status again (`disputed` or `conflict`: reviewable).")
        guideline_revision_id = serializers.IntegerField(
            allow_null=True, help_text="The revision that took the decision's note out of the guideline."
        )
        guideline_kept = serializers.CharField(
            help_text="Why the decision's note stayed in the guideline (edited since); empty otherwise."
        )

    @extend_schema(
        request=None,
        responses={200: Output, **ERRORS, **CONFLICT},
        operation_id="items_resolve_undo",
        description="Undo the latest decision on an item, within `LOUPE_REVIEW_UNDO_SECONDS` of it (600 by "
        "default), by the reviewer who made it or a manager. The label history stays append-only: the undo "
        "appends the previous ground truth again, or, when there was none, a retraction (label empty, method "
        "`retracted`; the item is disputed again). A note the decision appended to a guideline is taken out "
        "with a new revision unless the guideline changed since (`guideline_kept` says so). The item becomes "
        "the caller's current review lease. 409 `nothing_to_undo`, `already_undone`, `undo_expired` (too late), "
        "`changed_since` (the label changed after the decision).",
    )
    def post(self, request, item_id):
        item = sq.access_item(user=request.user, item_id=item_id, roles=REVIEW_ROLES)
        undo = item_resolve_undo(item=item, user=request.user)
        return Response(
            self.Output(
                {
                    "item_id": undo.item_id,
                    "undone_label": undo.undone_label,
                    "label": undo.change.label or None,
                    "method": undo.change.method,
                    "seq": undo.change.seq,
                    "status": undo.status,
                    "guideline_revision_id": undo.guideline_revision.pk if undo.guideline_revision else None,
                    "guideline_kept": undo.guideline_kept,
                }
            ).data
        )


class AnnotatorListApi(ApiView):
    class Output(serializers.Serializer):
        annotator_id = serializers.IntegerField()
        username = serializers.CharField()
        annotations = serializers.IntegerField()
        agreement_with_consensus = serializers.FloatField(allow_null=True)
        quality = serializers.FloatField(allow_null=True, help_text="cleanlab annotator quality (latest done run).")
        worst_class = serializers.CharField()
        median_seconds = serializers.FloatField(allow_null=True)
        skips = serializers.IntegerField()
        run_id = serializers.IntegerField(allow_null=True)

    @extend_schema(responses={200: Output(many=True), **ERRORS}, operation_id="annotators_list")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=REVIEW_ROLES)
        return Response(self.Output(sq.annotator_table(project=project), many=True).data)


class AgreementApi(ApiView):
    class Output(serializers.Serializer):
        class Fleiss(serializers.Serializer):
            value = serializers.FloatField(allow_null=True)
            annotations_per_item = serializers.IntegerField()
            items = serializers.IntegerField(help_text="Items with at least annotations_per_item labels.")
            items_with_fewer = serializers.IntegerField(help_text="Items with 2 or more labels but fewer than k.")
            labels_left_out = serializers.IntegerField(help_text="Labels beyond the first k of an item.")
            definition = serializers.CharField()

        class Pair(serializers.Serializer):
            annotator_a = serializers.CharField()
            annotator_b = serializers.CharField()
            shared_items = serializers.IntegerField()
            kappa = serializers.FloatField(allow_null=True)

        class Definitions(serializers.Serializer):
            krippendorff_alpha = serializers.CharField()
            fleiss_kappa = serializers.CharField()
            pairwise_cohen_kappa = serializers.CharField()
            observed_agreement = serializers.CharField()

        class Confusion(serializers.Serializer):
            labels = serializers.ListField(child=serializers.CharField())
            counts = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
            rates = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))

        annotations = serializers.IntegerField()
        annotators = serializers.IntegerField()
        items = serializers.IntegerField()
        items_with_2_or_more = serializers.IntegerField()
        observed_agreement = serializers.FloatField(allow_null=True)
        krippendorff_alpha = serializers.FloatField(allow_null=True)
        fleiss_kappa = Fleiss(allow_null=True)
        pairwise_cohen_kappa = Pair(many=True)
        min_shared_items = serializers.IntegerField()
        definitions = Definitions(help_text="What each figure is computed over, in words.")
        confusion = Confusion()

    @extend_schema(responses={200: Output, **ERRORS}, operation_id="agreement_retrieve")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=REVIEW_ROLES)
        return Response(self.Output(sq.project_agreement(project=project)).data)


class QualitySettingsApi(ApiView):
    class Input(inputs.Input):
        auto_run_after_disputed = serializers.IntegerField(min_value=0, max_value=1_000_000)
        accept_mode = serializers.ChoiceField(choices=AcceptMode.choices)
        max_accept_error = serializers.FloatField(min_value=0.001, max_value=0.5)
        audit_rate = serializers.FloatField(min_value=0, max_value=0.5)

    class Output(serializers.Serializer):
        auto_run_after_disputed = serializers.IntegerField()
        disputed_since_run = serializers.IntegerField()
        accept_mode = serializers.CharField(source="project.accept_mode")
        max_accept_error = serializers.FloatField(source="project.max_accept_error")
        audit_rate = serializers.FloatField(source="project.audit_rate")
        accept_threshold = serializers.FloatField(source="project.accept_threshold")

    @extend_schema(responses={200: Output, **ERRORS}, operation_id="quality_settings_retrieve")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=REVIEW_ROLES)
        return Response(self.Output(sq.quality_settings(project=project)).data)

    @extend_schema(
        request=Input,
        responses={200: Output, **ERRORS},
        operation_id="quality_settings_update",
        description="auto_run_after_disputed: start a run after this many new disputed items (0: off). "
        "accept_mode: calibrated (the threshold is derived so that the estimated error of accepted items stays "
        "<= max_accept_error, 0.001-0.5) or raw_score (CROWDLAB quality >= the project's accept_threshold). "
        "audit_rate (0-0.5): share of would-be-accepted items sent to review to measure their error.",
    )
    def patch(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = self.Input(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if not data.validated_data:  # nothing to change
            return Response(self.Output(sq.quality_settings(project=project)).data)
        row = quality_settings_update(project=project, **data.validated_data)
        return Response(self.Output(row).data)
