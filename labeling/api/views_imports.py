"""Importing items from a file (CSV, JSON Lines, a JSON array) through the API.

Flow: POST /api/projects/{id}/imports with the file (multipart; `mapping` as a JSON string and
`start=true` optional) answers the columns, a preview of the first rows and the default mapping;
PATCH /api/imports/{id} changes the mapping; POST /api/imports/{id}/start ingests it in the
background; GET /api/imports/{id} reports progress; GET /api/imports/{id}/rejected.csv lists the
refused rows with their reasons. Managers only, as for POST /api/projects/{id}/items.
"""

import json

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.errors import ValidationFailed
from common.http.request_body import BodyLimit
from labeling.selectors.access import MANAGER_ROLES, access_project
from labeling.selectors.imports import access_import
from labeling.services.file_import import (
    IMPORT_MAX_BYTES,
    import_create,
    import_map,
    import_start,
    rejections_csv_lines,
)

UPLOAD = BodyLimit(max_bytes=IMPORT_MAX_BYTES, what="An import file")

MAPPING_HELP = (
    "{external_id: column, text?: column, payload?: [columns kept in the payload], priority?: column, "
    "label?: column (the prediction's label), probabilities?: column holding a JSON object, or "
    "prob_columns?: {label key: column}, model_version?: column, model_version_default?: string, "
    "predicted_at?: column}. Unset fields are null. A row whose predicted_at is blank gets the time of import."
)


class ImportOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    status = serializers.CharField()
    original_name = serializers.CharField()
    format = serializers.CharField()
    byte_size = serializers.IntegerField()
    columns = serializers.ListField(child=serializers.CharField())
    preview = serializers.ListField(child=serializers.DictField(), help_text="The first rows; _row is the row number.")
    mapping = serializers.DictField(help_text=MAPPING_HELP)
    percent = serializers.IntegerField()
    rows_read = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = serializers.IntegerField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


def _mapping_field(raw):
    if raw in (None, ""):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ValidationFailed("mapping must be a JSON object.", fields={"mapping": ["Not JSON."]})


class ProjectImportsApi(ApiView):
    parser_classes = [MultiPartParser]
    request_body_limit = UPLOAD

    @extend_schema(
        operation_id="imports_create",
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "mapping": {"type": "string", "description": "JSON: " + MAPPING_HELP},
                    "start": {"type": "boolean"},
                },
                "required": ["file"],
            }
        },
        responses={201: ImportOutput, 413: ErrorSerializer, **ERRORS},
        description="Upload a CSV, JSON Lines or JSON array file of items. Answers its columns, a preview of the "
        "first rows and a mapping (the one given, or a default guessed from the column names). With start=true "
        "the import starts at once; otherwise POST /api/imports/{id}/start.",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        mapping = _mapping_field(request.data.get("mapping"))
        start = str(request.data.get("start", "")).lower() in ("1", "true", "on", "yes")
        job = import_create(project=project, actor=request.user, upload=request.FILES.get("file"), mapping=mapping)
        if start:
            job = import_start(job=job)
        return Response(ImportOutput(job).data, status=status.HTTP_201_CREATED)


class ImportDetailApi(ApiView):
    class Input(inputs.Input):
        mapping = serializers.JSONField(help_text=MAPPING_HELP)

    @extend_schema(operation_id="imports_retrieve", responses={200: ImportOutput, **ERRORS})
    def get(self, request, import_id):
        return Response(ImportOutput(access_import(user=request.user, import_id=import_id)).data)

    @extend_schema(
        operation_id="imports_map",
        request=Input,
        responses={200: ImportOutput, 409: ErrorSerializer, **ERRORS},
        description="Set the mapping of an import not started yet (409 once started).",
    )
    def patch(self, request, import_id):
        job = access_import(user=request.user, import_id=import_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(ImportOutput(import_map(job=job, mapping=data.validated_data["mapping"])).data)


class ImportStartApi(ApiView):
    class Input(inputs.Input):
        mapping = serializers.JSONField(required=False, help_text=MAPPING_HELP)

    @extend_schema(
        operation_id="imports_start",
        request=Input,
        responses={202: ImportOutput, **ERRORS},
        description="Start ingesting in the background (with `mapping` when given); poll GET /api/imports/{id}. "
        "Starting an import already started changes nothing.",
    )
    def post(self, request, import_id):
        job = access_import(user=request.user, import_id=import_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        job = import_start(job=job, mapping=data.validated_data.get("mapping"))
        job.refresh_from_db()
        return Response(ImportOutput(job).data, status=status.HTTP_202_ACCEPTED)


class ImportRejectedApi(ApiView):
    @extend_schema(
        operation_id="imports_rejected",
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="row,external_id,reason"),
            **ERRORS,
        },
        description="The rows refused so far, with their row number (1 = the first data row) and reason.",
    )
    def get(self, request, import_id):
        job = access_import(user=request.user, import_id=import_id)
        response = StreamingHttpResponse(rejections_csv_lines(job=job), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-rejected.csv"'
        response["Cache-Control"] = "private, no-store"
        return response
