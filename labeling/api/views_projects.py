from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.batch import read_batch
from common.api.errors import ERRORS, ErrorSerializer
from common.api.pagination import IdCursorPagination
from common.api.schema import NO_NUL
from common.errors import Forbidden, ValidationFailed
from common.http.request_body import BATCH
from labeling.api.serializers import ProjectOutput
from labeling.api.views_items_explorer import (
    FIELD_HELP,
    FIELD_PREFIX,
    LIST_PARAMETERS,
    ExplorerItemOutput,
    filters_from,
    ordering_from,
)
from labeling.models import AcceptMode, QueueOrder, Role
from labeling.models.core import LABEL_KEY_RE
from labeling.selectors.access import MANAGER_ROLES, access_project, project_create_allowed
from labeling.selectors.items_explorer import item_explore
from labeling.selectors.projects import project_list, project_members
from labeling.services.ingestion import items_ingest
from labeling.services.projects import (
    PROJECT_EDITABLE,
    LabelSpec,
    member_add,
    member_remove,
    project_create,
    project_update,
)

MAX_SLO_TARGET_SECONDS = 10 * 366 * 86400
MAX_TEXT = 20_000  # descriptions and guidelines, as bug descriptions
LABELS_ELSEWHERE = (
    "Labels change one at a time: POST .../labels adds one; PATCH .../labels/{key} edits its name, hotkey or "
    "guideline; POST .../labels/{key}/retire, /restore and /merge {into} retire, restore and merge."
)


class LabelInput(inputs.Input):
    key = serializers.RegexField(LABEL_KEY_RE, max_length=64)
    name = serializers.CharField(max_length=200)
    guideline = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_TEXT)
    hotkey = serializers.CharField(required=False, allow_blank=True, default="", max_length=1, trim_whitespace=False)


SLICE_FIELDS_HELP = (
    "Payload keys that define slices (e.g. channel, customer_tier): evaluations report metrics per value, and "
    "GET .../feedback-delay?slice=<field> splits live accuracy by one of them. At most 20 distinct keys of "
    "A-Z, a-z, 0-9, _, . or - (1..64 characters); 'bug' is reserved (datasets are always sliced by bug)."
)


def slice_fields_input(**kwargs):
    return serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z0-9_.-]{1,64}\Z", max_length=64, trim_whitespace=False),
        max_length=20,
        help_text=SLICE_FIELDS_HELP,
        **kwargs,
    )


class ProjectListCreateApi(ApiView):
    class Input(inputs.Input):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_TEXT)
        labels = LabelInput(many=True, min_length=2, max_length=100)
        annotations_per_item = serializers.IntegerField(required=False, default=3, min_value=1, max_value=10)
        max_annotations_per_item = serializers.IntegerField(required=False, min_value=1, max_value=20)
        lease_seconds = serializers.IntegerField(required=False, default=600, min_value=30, max_value=86400)
        queue_order = serializers.ChoiceField(choices=QueueOrder.choices, required=False, default=QueueOrder.FIFO)
        accept_threshold = serializers.FloatField(
            required=False,
            min_value=0,
            max_value=1,
            help_text="The raw-score threshold (default 0.7). Given without accept_mode, the project uses raw_score.",
        )
        accept_mode = serializers.ChoiceField(
            choices=AcceptMode.choices,
            required=False,
            help_text="calibrated (default): derive the threshold from reviewers' decisions so that the estimated "
            "error of accepted items stays <= max_accept_error; raw_score: accept CROWDLAB quality >= accept_threshold.",
        )
        max_accept_error = serializers.FloatField(required=False, default=0.02, min_value=0.001, max_value=0.5)
        audit_rate = serializers.FloatField(required=False, default=0.02, min_value=0, max_value=0.5)
        slice_fields = slice_fields_input(required=False, default=list)

    @extend_schema(responses={200: ProjectOutput(many=True)}, operation_id="projects_list")
    def get(self, request):
        projects = list(project_list(user=request.user))
        roles = dict(request.user.memberships.values_list("project_id", "role"))
        for p in projects:
            p.user_role = Role.MANAGER if request.user.is_staff else roles.get(p.pk)
        return Response(ProjectOutput(projects, many=True).data)

    @extend_schema(
        request=Input,
        responses={201: ProjectOutput, **ERRORS},
        operation_id="projects_create",
        description="Create a project (you become its manager). Needs staff, or the permission staff "
        "give (`can_create_projects` on POST /api/users, or labeling.add_project in the admin): 403 otherwise.",
    )
    def post(self, request):
        if not project_create_allowed(user=request.user):
            raise Forbidden("Creating projects needs staff, or the permission to create projects that staff give.")
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        labels = [LabelSpec(**lab) for lab in values.pop("labels")]
        project = project_create(creator=request.user, labels=labels, **values)
        project.user_role = Role.MANAGER
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(ApiView):
    class PatchInput(inputs.Input):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True, max_length=MAX_TEXT)
        annotations_per_item = serializers.IntegerField(required=False, min_value=1, max_value=10)
        max_annotations_per_item = serializers.IntegerField(required=False, min_value=1, max_value=20)
        lease_seconds = serializers.IntegerField(required=False, min_value=30, max_value=86400)
        queue_order = serializers.ChoiceField(choices=QueueOrder.choices, required=False)
        accept_threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
        accept_mode = serializers.ChoiceField(choices=AcceptMode.choices, required=False)
        max_accept_error = serializers.FloatField(required=False, min_value=0.001, max_value=0.5)
        audit_rate = serializers.FloatField(required=False, min_value=0, max_value=0.5)
        slo_quantile = serializers.FloatField(required=False, min_value=0.01, max_value=0.999)
        slo_target_seconds = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_SLO_TARGET_SECONDS, help_text="At most ten years."
        )
        slice_fields = slice_fields_input(required=False)

    @extend_schema(responses={200: ProjectOutput, **ERRORS}, operation_id="projects_retrieve")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        return Response(ProjectOutput(project).data)

    @extend_schema(request=PatchInput, responses={200: ProjectOutput, **ERRORS}, operation_id="projects_update")
    def patch(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        unknown = set(request.data) - set(PROJECT_EDITABLE) if isinstance(request.data, dict) else set()
        if unknown:
            fields = {k: ["Not editable."] for k in sorted(unknown)}
            message = f"Cannot change {', '.join(sorted(unknown))}."
            if "labels" in unknown:
                fields["labels"] = [LABELS_ELSEWHERE]
                message += " " + LABELS_ELSEWHERE
            raise ValidationFailed(message, fields=fields)
        data = self.PatchInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        role = project.user_role
        project = project_update(project=project, actor=request.user, **data.validated_data)
        project.user_role = role
        return Response(ProjectOutput(project).data)


class MembershipOutput(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class MemberListCreateApi(ApiView):
    class Input(inputs.Input):
        username = serializers.CharField()
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(responses={200: MembershipOutput(many=True), **ERRORS}, operation_id="members_list")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        return Response(MembershipOutput(project_members(project=project), many=True).data)

    @extend_schema(
        request=Input, responses={201: MembershipOutput, 200: MembershipOutput, **ERRORS}, operation_id="members_add"
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        membership = member_add(project=project, **data.validated_data)
        code = status.HTTP_201_CREATED if membership.created else status.HTTP_200_OK
        return Response(MembershipOutput(membership).data, status=code)


class MemberDeleteApi(ApiView):
    @extend_schema(responses={204: None, 409: ErrorSerializer, **ERRORS}, operation_id="members_remove")
    def delete(self, request, project_id, username):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        member_remove(project=project, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FailedCheckOutput(serializers.Serializer):
    field = serializers.CharField(help_text="A payload field, or 'prediction'.")
    check = serializers.CharField(
        help_text="new_field, missing_field, type_change, missing_share, numeric_shift, length_shift, "
        "category_shift, class_mix or confidence_drop."
    )
    observed = serializers.JSONField()
    expected = serializers.JSONField()
    would_have_fired = serializers.IntegerField(help_text="How many of the reference batches this rule fires on.")
    of_last = serializers.IntegerField(help_text="How many recent batches the batch was compared with.")
    examples = serializers.ListField(child=serializers.CharField(), help_text="External ids of rows showing it.")


class IngestResultOutput(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    checks = FailedCheckOutput(
        many=True,
        help_text="The batch's failed data-quality checks against the project's recent batches: empty when it "
        "is within their variation or while the project has fewer than 3 earlier batches. The batch is stored "
        "either way.",
    )


class ItemsCursorPagination(IdCursorPagination):
    """By id, or in the order the view chose (`view.item_ordering`: ends with the id, so ties page
    stably)."""

    def get_ordering(self, request, queryset, view):
        return tuple(getattr(view, "item_ordering", None) or ("id",))


EXTERNAL_ID = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL}
ITEM_ROW = {
    "type": "object",
    "additionalProperties": False,
    "required": ["external_id", "payload"],
    "properties": {
        "external_id": EXTERNAL_ID,
        "payload": {"type": "object"},
        "priority": {"type": "integer", "minimum": -(2**31 - 1), "maximum": 2**31 - 1},
        "prediction": {
            "type": "object",
            "nullable": True,
            "required": ["model_version", "label"],
            "properties": {
                "model_version": {"type": "string"},
                "label": {"type": "string"},
                "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
                "predicted_at": {"type": "string", "format": "date-time"},
            },
        },
    },
}


class _ParamsView:
    """A request seen with some of its query parameters only (for the undeclared-parameter check)."""

    def __init__(self, request, params: dict):
        from django.http import QueryDict

        self.method = request.method
        self.query_params = QueryDict(mutable=True)
        for key, values in params.items():
            self.query_params.setlist(key, values)


class ItemListIngestApi(ApiView):
    request_body_limit = BATCH
    pagination_class = ItemsCursorPagination

    @extend_schema(
        parameters=LIST_PARAMETERS,
        responses={200: ExplorerItemOutput(many=True), **ERRORS},
        operation_id="items_list",
        description="The project's items, filtered and ordered (the item explorer's read). " + FIELD_HELP + " An "
        "annotator sees labels (label, predicted, model_version, confidence) only of items closed to them, and "
        "filters or orders that read labels match only those items. Unknown parameters are a 400 that lists the "
        "accepted ones.",
    )
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        filters = filters_from(request.query_params)
        ordering = ordering_from(request.query_params)
        qs, self.item_ordering = item_explore(project=project, user=request.user, filters=filters, ordering=ordering)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ExplorerItemOutput(page, many=True).data)

    def check_query_params(self, request):
        # field.<name> parameters are open-ended (payload keys): checked by filters_from, not declared.
        if request.method in ("GET", "HEAD") and any(k.startswith(FIELD_PREFIX) for k in request.query_params):
            shim = _ParamsView(
                request, {k: v for k, v in request.query_params.lists() if not k.startswith(FIELD_PREFIX)}
            )
            return super().check_query_params(shim)
        return super().check_query_params(request)

    @extend_schema(
        request={
            "application/json": {"type": "array", "items": ITEM_ROW, "minItems": 1},
            "application/x-ndjson": {"type": "string"},
        },
        responses={200: IngestResultOutput, 201: IngestResultOutput, 413: ErrorSerializer, **ERRORS},
        operation_id="items_ingest",
        description="Upsert items (and their production predictions) by external_id. A JSON array or JSON Lines "
        "of {external_id, payload, priority?, prediction?{model_version,label,probabilities?,predicted_at?}}. "
        "The whole batch is validated first; at most 10,000 rows or 20 MB. The stored batch is then checked "
        "against the project's recent batches (`checks`: what looked unlike them; never a reason to refuse it).",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        rows = read_batch(request)
        result = items_ingest(project=project, rows=rows)
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(result.as_dict(), status=code)
