"""GET /api/triage: the weekly triage meeting's view, in a constant number of queries."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from bugqueue.api.serializers import BugOutput
from bugqueue.selectors.triage import parse_week, triage_week
from common.api.base import ApiView
from common.api.errors import ERRORS
from common.errors import ValidationFailed
from labeling.selectors.access import access_project


class TriageTagShare(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    count = serializers.IntegerField(help_text="Open bugs carrying the tag.")
    occurrences = serializers.IntegerField()
    share = serializers.FloatField()
    cumulative_share = serializers.FloatField(help_text="Running share, tags sorted by count (the Pareto curve).")


class TriageStats(serializers.Serializer):
    opened = serializers.IntegerField()
    closed = serializers.IntegerField()
    reopened = serializers.IntegerField()
    open = serializers.IntegerField()
    open_untagged = serializers.IntegerField()
    median_time_to_triage_seconds = serializers.FloatField(allow_null=True)
    median_time_to_resolve_seconds = serializers.FloatField(allow_null=True)


class TriageTotals(serializers.Serializer):
    new = serializers.IntegerField()
    reopened = serializers.IntegerField()
    backlog = serializers.IntegerField()


class TriageApi(ApiView):
    class Output(serializers.Serializer):
        project = serializers.IntegerField()
        week = serializers.CharField()
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        new = BugOutput(many=True, help_text="Bugs opened this week, by priority then occurrences.")
        reopened = BugOutput(many=True, help_text="Bugs reopened this week (regressions or by hand).")
        backlog = BugOutput(many=True, help_text="Older bugs still untriaged (status new).")
        totals = TriageTotals()
        stats = TriageStats()
        tags = TriageTagShare(many=True, help_text="Tags over the project's open bugs, most frequent first.")

    @extend_schema(
        parameters=[
            OpenApiParameter("project", int, required=True),
            OpenApiParameter("week", str, description="An ISO week such as 2026-W47 (default: this week)."),
            OpenApiParameter(
                "limit", int, description="Bugs listed per section (1-500, default 100); totals count all."
            ),
        ],
        responses={200: Output, **ERRORS},
        operation_id="triage_week",
    )
    def get(self, request):
        if not request.query_params.get("project"):
            raise ValidationFailed("project is required.", fields={"project": ["This parameter is required."]})
        project = access_project(user=request.user, project_id=request.query_params["project"])
        week_start = parse_week(request.query_params.get("week"))
        try:
            limit = int(request.query_params.get("limit", 100))
            if not 1 <= limit <= 500:
                raise ValueError
        except ValueError:
            raise ValidationFailed("limit must be an integer from 1 to 500.", fields={"limit": ["1 to 500."]})
        view = triage_week(project=project, week_start=week_start, limit=limit)
        return Response(
            {
                "project": project.pk,
                "week": view["week"],
                "start": view["start"],
                "end": view["end"],
                "new": BugOutput(view["sections"]["new"], many=True).data,
                "reopened": BugOutput(view["sections"]["reopened"], many=True).data,
                "backlog": BugOutput(view["sections"]["backlog"], many=True).data,
                "totals": view["totals"],
                "stats": view["stats"],
                "tags": view["tags"],
            }
        )
