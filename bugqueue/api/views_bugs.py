"""Bug-queue API: report, list with facets, read, update, comment, resolve, merge and unmerge; tags;
settings.
Thin: permission-checked reads through selectors, writes through services."""

from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from bugqueue.api.report_batch import BatchOutput, report_batch_answer
from bugqueue.api.serializers import (
    BugDetailOutput,
    BugOutput,
    CommentOutput,
    FacetsOutput,
    TagOutput,
    bug_detail_data,
)
from bugqueue.models import BugKind, BugStatus, Priority, Resolution
from bugqueue.selectors.bugs import (
    ORDERINGS,
    access_bug,
    bug_detail,
    bug_facets,
    bug_filters_parse,
    bug_list,
    bug_settings_get,
    tag_list,
)
from bugqueue.selectors.search import MAX_QUERY_CHARS
from bugqueue.services.bug_settings import MAX_DATASET_BATCH_SECONDS, bug_settings_update
from bugqueue.services.bugs import UNSET, bug_resolve, bug_update
from bugqueue.services.comments import comment_add
from bugqueue.services.report import bug_report
from bugqueue.services.report_batch import MAX_REPORTS_PER_BATCH
from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.api.pagination import DefaultPagination
from common.errors import ValidationFailed
from common.http.request_body import BodyLimit
from labeling.selectors.access import MANAGER_ROLES, REVIEW_ROLES, access_project

CONFLICT = {409: ErrorSerializer}
SEARCH_HELP = (
    "The stream's search, as in the search box of /bugs. Terms separated by spaces, all must hold: "
    "`is:unresolved` (open and not snoozed), `is:open` (new, triaged, in progress, snoozed or not), "
    "`is:resolved`, `is:closed` (resolved, won't fix, duplicate), `is:regressed`, `is:snoozed`, "
    "`is:<status>`; `assigned:me`, `assigned:none`, `assigned:<username>`; `tag:<slug>`; `kind:<kind>`; "
    "`model:<model version>`; `priority:p1` or a range `priority:p0..p1`; free text as bare words or "
    '`"a quoted phrase"` (each must appear in the title or description; a single one may be an exact '
    "fingerprint). A comma lists alternatives (`tag:a,b`), a leading `-` negates a term (`-tag:label_flip`), "
    'a value may be quoted (`model:"v3 beta"`). An unknown key, value or tag is a 400 whose message lists '
    "what is known. Combines with the other parameters (all must hold)."
)


def _reject_unknown(data, allowed):
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationFailed(
            f"Unknown fields: {', '.join(unknown)}.", fields={k: ["Unknown field."] for k in unknown}
        )


@extend_schema_field({"type": "object", "additionalProperties": True})
class PayloadField(serializers.JSONField):
    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return super().to_internal_value(data)


class FailureInput(inputs.Input):
    external_id = serializers.CharField(required=False, max_length=255, help_text="An item of the project.")
    payload = PayloadField(
        required=False, help_text="The failing input (an object); without external_id it becomes an item."
    )
    predicted_label = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    expected_label = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="Null when not known yet."
    )
    model_version = serializers.CharField(required=False, allow_blank=True, max_length=128)
    predicted_at = inputs.TimestampField(required=False, allow_null=True)


class BugPage(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = BugOutput(many=True)
    facets = FacetsOutput()


LIST_PARAMETERS = [
    OpenApiParameter("project", int, description="A project id (default: every project you are a member of)."),
    OpenApiParameter(
        "status",
        str,
        many=True,
        enum=[*BugStatus.values, "open", "closed"],
        description="One or more (repeated or comma-separated); open and closed name groups.",
    ),
    OpenApiParameter(
        "tag",
        str,
        many=True,
        description="Tag slug(s) (GET /api/tags); several narrow (bugs carrying all of them). An unknown tag is a 400.",
    ),
    OpenApiParameter("priority", str, many=True, enum=Priority.values, description="One or more."),
    OpenApiParameter("kind", str, many=True, enum=BugKind.values, description="One or more."),
    OpenApiParameter("assignee", str, description="A username, `me`, or `none`."),
    OpenApiParameter(
        "q",
        {"type": "string", "maxLength": MAX_QUERY_CHARS},
        description=SEARCH_HELP,
    ),
    OpenApiParameter("regressed", bool),
    OpenApiParameter("ordering", str, enum=list(ORDERINGS)),
    OpenApiParameter("page", {"type": "integer", "minimum": 1}),
    OpenApiParameter("page_size", {"type": "integer", "minimum": 1, "maximum": DefaultPagination.max_page_size}),
]


class BugListCreateApi(ApiView):
    request_body_limit = BodyLimit(setting="LOUPE_MAX_BATCH_BYTES", what="A bug report")

    class Input(inputs.Input):
        project = serializers.IntegerField(**inputs.ID)
        title = serializers.CharField(max_length=300)
        kind = serializers.ChoiceField(choices=BugKind.choices)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        priority = serializers.ChoiceField(choices=Priority.choices, required=False)
        fingerprint = serializers.CharField(
            required=False, max_length=255, help_text="Default: the project, kind and normalized title."
        )
        model_version = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
        failures = FailureInput(many=True, required=False)

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        created = serializers.BooleanField()
        occurrences = serializers.IntegerField()
        regressed = serializers.BooleanField(help_text="True when this report reopened a resolved bug.")
        status = serializers.CharField()

    @extend_schema(parameters=LIST_PARAMETERS, responses={200: BugPage, **ERRORS}, operation_id="bugs_list")
    def get(self, request):
        project = None
        if request.query_params.get("project"):
            project = access_project(user=request.user, project_id=request.query_params["project"])
        filters = bug_filters_parse(request.query_params)
        qs = bug_list(user=request.user, project=project, filters=filters)
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        response = paginator.get_paginated_response(BugOutput(page, many=True).data)
        response.data["facets"] = bug_facets(user=request.user, project=project, filters=filters)
        return response

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="BugReportBody",
            serializers=[Input, Input(many=True, max_length=MAX_REPORTS_PER_BATCH, min_length=1)],
            resource_type_field_name=None,
            many=False,
        ),
        responses={
            201: Output,
            200: PolymorphicProxySerializer(
                component_name="BugReportAnswer",
                serializers=[Output, BatchOutput],
                resource_type_field_name=None,
            ),
            409: ErrorSerializer,
            413: ErrorSerializer,
            **ERRORS,
        },
        operation_id="bugs_report",
        description="File a report. 201 opens a bug; 200 adds the report's occurrences to the open bug with the "
        "same fingerprint (or to a closed one: a resolved bug reopens with regressed=true only when a failure's "
        "prediction is newer than its resolution). Failures with a payload but no known external_id become items, "
        "which needs the manager role (the role that ingests items): 403 for others, nothing written.\n\n"
        f"A JSON array of reports (at most {MAX_REPORTS_PER_BATCH}; 413 above) files them all in one transaction "
        "and answers 200 with `results`, one per report in order: {index, id, created, occurrences, regressed, "
        "status}, and `counts` (created, grouped). The batch is all or nothing: each report is checked as one "
        "report is, and if any cannot be filed the answer is 400 with every bad report's error under "
        "`error.fields.reports` (by index), and nothing is written. Reports of one fingerprint land on one "
        "bug, also across concurrent batches.",
    )
    def post(self, request):
        if isinstance(request.data, list):
            return report_batch_answer(request, rows=request.data, input_serializer=self.Input)
        _reject_unknown(request.data, self.Input._declared_fields)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        project = access_project(user=request.user, project_id=values.pop("project"))
        values.pop("failures", None)
        result = bug_report(
            project=project,
            reporter=request.user,
            failures=request.data.get("failures"),
            may_add_items=project.user_role in MANAGER_ROLES,
            **values,
        )
        body = {
            "id": result.bug.pk,
            "created": result.created,
            "occurrences": result.occurrences,
            "regressed": result.regressed,
            "status": result.bug.status,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class BugDetailApi(ApiView):
    class PatchInput(inputs.Input):
        status = serializers.ChoiceField(choices=BugStatus.choices, required=False)
        priority = serializers.ChoiceField(choices=Priority.choices, required=False)
        assignee = serializers.CharField(
            required=False, allow_null=True, allow_blank=True, help_text="A member's username, or null to unassign."
        )
        tags = serializers.ListField(
            child=serializers.CharField(), required=False, help_text="The full list of tag slugs."
        )
        tags_add = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            max_length=100,
            help_text="Tag slugs to add (the bug's other tags stay). Not with `tags`.",
        )
        tags_remove = serializers.ListField(
            child=serializers.CharField(),
            required=False,
            max_length=100,
            help_text="Tag slugs to remove (the bug's other tags stay). Not with `tags`.",
        )
        duplicate_of = serializers.IntegerField(
            required=False, allow_null=True, help_text="With status duplicate.", **inputs.ID
        )
        note = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=20_000, help_text="Why (kept in the history)."
        )

    @extend_schema(responses={200: BugDetailOutput, **ERRORS}, operation_id="bugs_retrieve")
    def get(self, request, bug_id):
        bug = access_bug(user=request.user, bug_id=bug_id)
        return Response(bug_detail_data(bug_detail(bug=bug, user=request.user)))

    @extend_schema(
        request=PatchInput,
        responses={200: BugOutput, **CONFLICT, **ERRORS},
        operation_id="bugs_update",
        description="Change status (allowed transitions only: 409 otherwise), priority, assignee, tags (`tags`: the full "
        "list; `tags_add` / `tags_remove`: one change that leaves the other tags alone). "
        "Every change is written to the bug's history. Needs the reviewer or manager role.",
    )
    def patch(self, request, bug_id):
        bug = access_bug(user=request.user, bug_id=bug_id, roles=REVIEW_ROLES)
        _reject_unknown(request.data, self.PatchInput._declared_fields)
        data = self.PatchInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        note = values.pop("note", "")
        changes = {
            k: values.get(k, UNSET)
            for k in ("status", "priority", "assignee", "tags", "tags_add", "tags_remove", "duplicate_of")
        }
        bug = bug_update(bug=bug, actor=request.user, note=note, **changes)
        return Response(BugOutput(bug).data)


class BugCommentsApi(ApiView):
    class Input(inputs.Input):
        body = serializers.CharField(max_length=20_000)

    @extend_schema(request=Input, responses={201: CommentOutput, **ERRORS}, operation_id="bugs_comment")
    def post(self, request, bug_id):
        bug = access_bug(user=request.user, bug_id=bug_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        comment = comment_add(bug=bug, author=request.user, body=data.validated_data["body"])
        return Response(CommentOutput(comment).data, status=status.HTTP_201_CREATED)


class BugResolveApi(ApiView):
    class Input(inputs.Input):
        resolution = serializers.ChoiceField(choices=Resolution.choices)
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=20_000)
        duplicate_of = serializers.IntegerField(
            required=False, allow_null=True, **inputs.ID, help_text="Required with resolution duplicate."
        )
        datasets = serializers.ListField(
            child=serializers.IntegerField(**inputs.ID),
            required=False,
            default=list,
            max_length=100,
            help_text="Validation datasets that get the bug's failures (fixed only); "
            "datasets following the bug's tags get them too.",
        )
        mine_similar = serializers.IntegerField(
            required=False,
            default=0,
            min_value=0,
            max_value=10_000,
            help_text="Queue this many look-alike production items for labeling; they join the datasets once labeled.",
        )

    class Output(BugOutput):
        changed = serializers.SerializerMethodField()
        dataset_flow = serializers.SerializerMethodField()

        class Meta(BugOutput.Meta):
            fields = BugOutput.Meta.fields + ["changed", "dataset_flow"]

        def get_changed(self, obj) -> bool:
            return obj.changed

        def get_dataset_flow(self, obj) -> int | None:
            return obj.flow.pk if obj.flow is not None else None

    @extend_schema(
        request=Input,
        responses={200: Output, **CONFLICT, **ERRORS},
        operation_id="bugs_resolve",
        description="Close a bug as fixed, wont_fix or duplicate (of duplicate_of). Resolving again the "
        "same way changes nothing (changed=false); a bug closed another way answers 409.",
    )
    def post(self, request, bug_id):
        bug = access_bug(user=request.user, bug_id=bug_id, roles=REVIEW_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        result = bug_resolve(bug=bug, actor=request.user, **data.validated_data)
        result.bug.changed = result.changed
        result.bug.flow = result.flow
        return Response(self.Output(result.bug).data)


class TagListApi(ApiView):
    @extend_schema(responses={200: TagOutput(many=True)}, operation_id="tags_list")
    def get(self, request):
        return Response(TagOutput(tag_list(), many=True).data)


class BugSettingsApi(ApiView):
    class Output(serializers.Serializer):
        project = serializers.IntegerField(source="project_id")
        auto_file_failed_predictions = serializers.BooleanField()
        dataset_batch_seconds = serializers.IntegerField(
            help_text="Labels of items waiting to join datasets are gathered this long before one absorb pass "
            "(at most one new version per dataset); 0: at once."
        )
        slice_drop_threshold = serializers.FloatField(
            help_text="An evaluation flags a slice whose accuracy dropped by more than this against the baseline."
        )
        absorb_due_at = serializers.DateTimeField(
            allow_null=True, help_text="When the scheduled absorb pass runs (null: none scheduled)."
        )

    class Input(inputs.Input):
        auto_file_failed_predictions = serializers.BooleanField()
        dataset_batch_seconds = serializers.IntegerField(min_value=0, max_value=MAX_DATASET_BATCH_SECONDS)
        slice_drop_threshold = serializers.FloatField(min_value=0, max_value=1)

    @extend_schema(responses={200: Output, **ERRORS}, operation_id="bug_settings_retrieve")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        return Response(self.Output(bug_settings_get(project=project)).data)

    @extend_schema(request=Input, responses={200: Output, **ERRORS}, operation_id="bug_settings_update")
    def patch(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = self.Input(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if not data.validated_data:  # nothing to change
            return Response(self.Output(bug_settings_get(project=project)).data)
        row = bug_settings_update(project=project, actor=request.user, **data.validated_data)
        return Response(self.Output(row).data)
