"""Annotator queue API: claim the next item, submit, skip (each answers what is left for you, the
same `remaining` object as GET my-remaining); the managers' annotation feed; own stats."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.api.pagination import IdCursorPagination
from common.errors import ValidationFailed
from labeling.selectors.access import MANAGER_ROLES, access_project
from labeling.selectors.queue import (
    Progress,
    annotation_feed,
    annotator_remaining,
    annotator_stats,
    assignment_project_id,
    parse_since,
)
from labeling.services.annotations import MAX_SECONDS_SPENT, annotation_submit
from labeling.services.queue.claim import assignment_claim_next
from labeling.services.queue.leases import assignment_skip


class RemainingOutput(serializers.Serializer):
    remaining = serializers.IntegerField(help_text="Items you can still be served (an estimate when not exact).")
    exact = serializers.BooleanField(help_text="True up to 10,000; above that an estimate.")
    text = serializers.CharField(help_text='What the page shows: "42 left" or "about 120,000 left".')


DEPRECATED_REMAINING = "Deprecated: read the top-level `remaining` object. "


class ProgressOutput(serializers.Serializer):
    done_by_me = serializers.IntegerField()
    done_today = serializers.IntegerField()
    remaining = serializers.IntegerField(help_text=DEPRECATED_REMAINING + "The same number as `remaining.remaining`.")
    remaining_capped = serializers.BooleanField(
        help_text=DEPRECATED_REMAINING + "True when `remaining.exact` is false (an estimate)."
    )


class LeaseOutput(serializers.Serializer):
    id = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class QueueItemOutput(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    payload = serializers.JSONField()


class QueueNextApi(ApiView):
    class Input(inputs.Input):
        exclude = serializers.ListField(
            child=serializers.IntegerField(**inputs.ID),
            required=False,
            default=list,
            max_length=10,
            help_text="Assignment ids the client already has in hand (the item on screen, the one fetched "
            "ahead): the answer is another lease. Without it, a lease you hold is returned again.",
        )

    class Output(serializers.Serializer):
        assignment = LeaseOutput()
        item = QueueItemOutput()
        progress = ProgressOutput()
        remaining = RemainingOutput(help_text="What is left for you, the item in hand included.")

    @extend_schema(
        request=Input,
        responses={
            200: Output,
            204: OpenApiResponse(description="Nothing is left for you in this project."),
            409: ErrorSerializer,
            **ERRORS,
        },
        operation_id="queue_next",
        description="Lease the next item to label (or the unexpired lease you already hold).",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        claim = assignment_claim_next(project=project, annotator=request.user, exclude=data.validated_data["exclude"])
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        left = annotator_remaining(project_id=project.pk, annotator=request.user)
        body = {
            "assignment": {"id": claim.assignment_id, "expires_at": claim.expires_at},
            "item": {"id": claim.item_id, "external_id": claim.external_id, "payload": claim.payload},
            "progress": Progress(claim.done_by_me, claim.done_today, left),
            "remaining": left,
        }
        return Response(self.Output(body).data)


class AnnotationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id", allow_null=True)
    item = serializers.IntegerField(source="item_id")
    label = serializers.CharField()
    seconds_spent = serializers.FloatField(allow_null=True)
    is_surplus = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class SubmitApi(ApiView):
    class Input(inputs.Input):
        label = serializers.CharField(max_length=64)
        seconds_spent = serializers.FloatField(
            required=False, allow_null=True, min_value=0, max_value=MAX_SECONDS_SPENT
        )

    class Output(serializers.Serializer):
        annotation = AnnotationOutput()
        item_status = serializers.CharField()
        done_today = serializers.IntegerField(
            help_text="Your submissions in this project today (UTC), this one included."
        )
        remaining = RemainingOutput(help_text="What is left for you after this submission.")

    @extend_schema(
        request=Input,
        responses={201: Output, 409: ErrorSerializer, **ERRORS},
        operation_id="assignment_submit",
        description="Submit a label for your assignment. An expired lease is still accepted (stored as "
        "surplus when the item already has what it needs). 409 when already submitted or skipped.",
    )
    def post(self, request, assignment_id):
        project = access_project(
            user=request.user, project_id=assignment_project_id(assignment_id=assignment_id, user=request.user)
        )
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = annotation_submit(assignment_id=assignment_id, annotator=request.user, **data.validated_data)
        return Response(
            {
                "annotation": AnnotationOutput(outcome.annotation).data,
                "item_status": outcome.item_status,
                "done_today": outcome.done_today,
                "remaining": annotator_remaining(project_id=project.pk, annotator=request.user),
            },
            status=status.HTTP_201_CREATED,
        )


class SkippedOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()


class SkipApi(ApiView):
    class Input(inputs.Input):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    class Output(serializers.Serializer):
        assignment = SkippedOutput()
        remaining = RemainingOutput(help_text="What is left for you after this skip.")

    @extend_schema(
        request=Input,
        responses={200: Output, 409: ErrorSerializer, **ERRORS},
        operation_id="assignment_skip",
        description="Give the item back: its slot is free for others at once and it is never served to you again.",
    )
    def post(self, request, assignment_id):
        project = access_project(
            user=request.user, project_id=assignment_project_id(assignment_id=assignment_id, user=request.user)
        )
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = assignment_skip(
            assignment_id=assignment_id, annotator=request.user, reason=data.validated_data["reason"]
        )
        left = annotator_remaining(project_id=project.pk, annotator=request.user)
        return Response(self.Output({"assignment": assignment, "remaining": left}).data)


class FeedAnnotationOutput(AnnotationOutput):
    item_external_id = serializers.CharField(source="item.external_id")
    annotator = serializers.CharField(source="annotator.username")


class AnnotationFeedPagination(IdCursorPagination):
    pass


class ProjectAnnotationsApi(ApiView):
    pagination_class = AnnotationFeedPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("annotator", str, description="Only this annotator's (username)."),
            OpenApiParameter(
                "since",
                {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "maxLength": 0}]},
                description="Only annotations created at or after this ISO 8601 time (empty: all).",
            ),
        ],
        responses={200: FeedAnnotationOutput(many=True), **ERRORS},
        operation_id="annotations_list",
        description="A project's annotations, oldest first (managers).",
    )
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        qs = annotation_feed(
            project_id=project.pk,
            annotator=request.query_params.get("annotator") or None,
            since=parse_since(request.query_params.get("since")),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(FeedAnnotationOutput(page, many=True).data)


class MeStatsApi(ApiView):
    class Output(serializers.Serializer):
        project = serializers.IntegerField()
        submitted = serializers.IntegerField()
        today = serializers.IntegerField()
        skipped = serializers.IntegerField()
        median_seconds = serializers.FloatField(allow_null=True)
        active_leases = serializers.IntegerField()
        remaining = serializers.IntegerField(help_text="Items you can still be served (as GET my-remaining).")
        remaining_capped = serializers.BooleanField(help_text="True when `remaining` is an estimate.")

    @extend_schema(
        parameters=[OpenApiParameter("project", int, required=True)],
        responses={200: Output, **ERRORS},
        operation_id="me_stats",
        description="Your own counts and median seconds per item in a project.",
    )
    def get(self, request):
        raw = request.query_params.get("project")
        if not raw:
            raise ValidationFailed("project is required.", fields={"project": ["This query parameter is required."]})
        project = access_project(user=request.user, project_id=raw)
        return Response(self.Output(annotator_stats(project_id=project.pk, user=request.user)).data)
