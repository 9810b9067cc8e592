"""Labeled-delta export API: the label history since a cursor (paged JSON or streamed JSON Lines / CSV),
snapshot files built in the background, and export grants.

Who may export: project managers (staff count as managers) and users holding an export grant on the
project (`/api/projects/{id}/export-grants`, managed by managers). A grant is meant for a pipeline's
service account: with its ordinary API token it can read that project's labels and snapshots, nothing else.
"""

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.api.negotiation import FormatIsAQueryParameter
from common.api.pagination import IdCursorPagination
from common.errors import Conflict, ValidationFailed
from labeling.models import ExportFormat, ExportStatus
from labeling.selectors.access import MANAGER_ROLES, access_project
from labeling.selectors.export import (
    access_export,
    access_project_export,
    cursor_decode,
    cursor_encode,
    export_grant_list,
    export_list,
    label_history_bounds,
    label_history_pages,
)
from labeling.services.export import (
    CONTENT_TYPES,
    encode_delta,
    export_grant_add,
    export_grant_remove,
    export_request,
)

JSON_PAGE_DEFAULT = 1000
JSON_PAGE_MAX = 10_000


class LabelRowOutput(serializers.Serializer):
    seq = serializers.IntegerField()
    external_id = serializers.CharField()
    label = serializers.CharField(
        allow_blank=True, help_text="Empty when a decision was withdrawn (method `retracted`): drop the item."
    )
    previous_label = serializers.CharField(allow_null=True)
    method = serializers.CharField()
    score = serializers.FloatField(allow_null=True)
    model_version = serializers.CharField(required=False, help_text="Only present when the change names one.")
    annotators = serializers.ListField(child=serializers.CharField(), help_text="Usernames.")
    changed_at = serializers.DateTimeField()


class LabelHistoryApi(ApiView):
    content_negotiation_class = FormatIsAQueryParameter

    class Input(serializers.Serializer):
        since = serializers.CharField(required=False, allow_blank=True, default="0")
        limit = serializers.IntegerField(required=False, min_value=1, max_value=inputs.INT32[1])
        format = serializers.ChoiceField(choices=ExportFormat.choices, required=False, default=ExportFormat.JSON)
        compact = serializers.BooleanField(required=False, default=False)

    class PageOutput(serializers.Serializer):
        results = LabelRowOutput(many=True)
        next_cursor = serializers.CharField()
        has_more = serializers.BooleanField()

    @extend_schema(
        operation_id="labels_delta",
        parameters=[
            OpenApiParameter(
                "since", str, description="A cursor (next_cursor of the previous call), or 0 for the start."
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1},
                description=f"json: rows per page (default {JSON_PAGE_DEFAULT}, at most "
                f"{JSON_PAGE_MAX}); jsonl/csv: at most this many rows (default: the whole delta).",
            ),
            OpenApiParameter("format", str, enum=ExportFormat.values, description="json (default), jsonl or csv."),
            OpenApiParameter(
                "compact", bool, description="Only the latest state of each item changed since the cursor."
            ),
        ],
        responses={
            (200, "application/json"): PageOutput,
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                description=(
                    'One row per line; the last line is {"next_cursor": ..., "rows": n}. Header X-Next-Cursor.'
                ),
            ),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description=(
                    "Header row, one row per change; the last line is #next_cursor=<cursor>;rows=<n>. "
                    "Header X-Next-Cursor."
                ),
            ),
            **ERRORS,
        },
        description="The label changes after `since` in seq (commit) order. Paging with the returned cursor "
        "delivers every change exactly once, even while labels keep changing. json pages; jsonl and csv "
        "stream the whole delta with the next cursor in the X-Next-Cursor header and as the last line.",
    )
    def get(self, request, project_id):
        project = access_project_export(user=request.user, project_id=project_id)
        data = self.Input(data=request.query_params)
        data.is_valid(raise_exception=True)
        q = data.validated_data
        fmt, compact, limit = q["format"], q["compact"], q.get("limit")
        since = cursor_decode(q["since"], project_id=project.pk)
        if fmt == ExportFormat.JSON:
            limit = limit or JSON_PAGE_DEFAULT
            if limit > JSON_PAGE_MAX:
                raise ValidationFailed(
                    f"limit: at most {JSON_PAGE_MAX} rows per JSON page (stream jsonl or csv for more).",
                    fields={"limit": [f"Ensure this value is less than or equal to {JSON_PAGE_MAX}."]},
                )
        bounds = label_history_bounds(project_id=project.pk, since=since, limit=limit, compact=compact)
        next_cursor = cursor_encode(project_id=project.pk, seq=bounds.until)
        pages = label_history_pages(
            project_id=project.pk,
            since=bounds.since,
            until=bounds.until,
            compact=compact,
            horizon=bounds.head,
            page_rows=limit if fmt == ExportFormat.JSON else None,
        )
        if fmt == ExportFormat.JSON:
            body = b"".join(
                encode_delta(fmt=fmt, pages=pages, next_cursor=next_cursor, has_more=bounds.until < bounds.head)
            )
            response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
        else:
            # The rows are read page by page while the client reads: the bounds are fixed above.
            response = StreamingHttpResponse(
                encode_delta(fmt=fmt, pages=pages, next_cursor=next_cursor), content_type=CONTENT_TYPES[fmt]
            )
            response["Content-Disposition"] = (
                f'attachment; filename="project-{project.pk}-labels-{bounds.since}-{bounds.until}.{fmt}"'
            )
            response["X-Accel-Buffering"] = "no"  # let a proxy pass chunks through as they come
        response["X-Next-Cursor"] = next_cursor
        response["Cache-Control"] = "no-store"
        return response


class ExportOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    status = serializers.CharField()
    format = serializers.CharField()
    compact = serializers.BooleanField()
    since_seq = serializers.IntegerField()
    until_seq = serializers.IntegerField()
    since_cursor = serializers.SerializerMethodField()
    next_cursor = serializers.SerializerMethodField(help_text="Where the next delta starts: this export's end.")
    row_count = serializers.IntegerField(allow_null=True)
    byte_size = serializers.IntegerField(allow_null=True, help_text="Size of the gzip file.")
    sha256 = serializers.CharField(help_text="SHA-256 of the gzip file, as downloaded.")
    download_url = serializers.SerializerMethodField()
    error = serializers.CharField()
    requested_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_since_cursor(self, obj) -> str:
        return "0" if obj.since_seq == 0 else cursor_encode(project_id=obj.project_id, seq=obj.since_seq)

    def get_next_cursor(self, obj) -> str:
        return cursor_encode(project_id=obj.project_id, seq=obj.until_seq)

    def get_download_url(self, obj) -> str | None:
        if obj.status != ExportStatus.DONE:
            return None
        url = reverse("api-export-download", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def get_requested_by(self, obj) -> str | None:
        return obj.requested_by.username if obj.requested_by_id else None


class ExportsPagination(IdCursorPagination):
    ordering = "-id"


class ProjectExportsApi(ApiView):
    class Input(inputs.Input):
        format = serializers.ChoiceField(choices=ExportFormat.choices, required=False, default=ExportFormat.JSONL)
        since = serializers.CharField(required=False, allow_blank=True, default="0")
        compact = serializers.BooleanField(required=False, default=False)

    pagination_class = ExportsPagination

    @extend_schema(operation_id="exports_list", responses={200: ExportOutput(many=True), **ERRORS})
    def get(self, request, project_id):
        project = access_project_export(user=request.user, project_id=project_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(export_list(project=project), request, view=self)
        return paginator.get_paginated_response(ExportOutput(page, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="exports_create",
        request=Input,
        responses={202: ExportOutput, 200: ExportOutput, **ERRORS},
        description="Ask for a snapshot file (gzip) of the changes after `since` up to now. Answers 202 and builds "
        "it in the background; poll GET /api/exports/{id}. If an export of exactly this range, format and "
        "compaction already exists (nothing changed since), answers 200 with it.",
    )
    def post(self, request, project_id):
        project = access_project_export(user=request.user, project_id=project_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        export, created = export_request(project=project, actor=request.user, **data.validated_data)
        body = ExportOutput(export, context={"request": request}).data
        return Response(
            body,
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
            headers={"Location": reverse("api-export", args=[export.pk])},
        )


class ExportDetailApi(ApiView):
    @extend_schema(operation_id="exports_retrieve", responses={200: ExportOutput, **ERRORS})
    def get(self, request, export_id):
        export = access_export(user=request.user, export_id=export_id)
        return Response(ExportOutput(export, context={"request": request}).data)


class ExportDownloadApi(ApiView):
    @extend_schema(
        operation_id="exports_download",
        responses={(200, "application/gzip"): OpenApiTypes.BINARY, 409: ErrorSerializer, **ERRORS},
        description="The snapshot file (gzip of JSON Lines, CSV or JSON), checked against the caller's access.",
    )
    def get(self, request, export_id):
        export = access_export(user=request.user, export_id=export_id)
        if export.status != ExportStatus.DONE:
            raise Conflict(f"Export {export.pk} is {export.status}, not ready to download.", code="not_ready")
        filename = f"project-{export.project_id}-labels-{export.since_seq}-{export.until_seq}.{export.format}.gz"
        response = FileResponse(
            default_storage.open(export.file_name, "rb"),
            as_attachment=True,
            filename=filename,
            content_type="application/gzip",
        )
        response["X-Content-SHA256"] = export.sha256  # hex, as in GET /api/exports/{id}
        response["Cache-Control"] = "private, no-store"
        return response


class ExportGrantOutput(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    granted_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_granted_by(self, obj) -> str | None:
        return obj.granted_by.username if obj.granted_by_id else None


class ExportGrantsApi(ApiView):
    class Input(inputs.Input):
        username = serializers.CharField()

    @extend_schema(operation_id="export_grants_list", responses={200: ExportGrantOutput(many=True), **ERRORS})
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        return Response(ExportGrantOutput(export_grant_list(project=project), many=True).data)

    @extend_schema(
        operation_id="export_grants_add",
        request=Input,
        responses={201: ExportGrantOutput, 200: ExportGrantOutput, **ERRORS},
        description="Let a user (e.g. a pipeline's service account) export this project's labels "
        "with their API token. The grant allows exports only.",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        grant, created = export_grant_add(project=project, username=data.validated_data["username"], actor=request.user)
        return Response(
            ExportGrantOutput(grant).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class ExportGrantDeleteApi(ApiView):
    @extend_schema(operation_id="export_grants_remove", responses={204: None, **ERRORS})
    def delete(self, request, project_id, username):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        export_grant_remove(project=project, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)
