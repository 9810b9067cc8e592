"""API for changing a project's label set: add, edit (name, hotkey, guideline), retire, restore, merge."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from labeling.api.views_export import LabelHistoryApi
from labeling.api.views_projects import MAX_TEXT
from labeling.models.core import LABEL_KEY_RE
from labeling.selectors.access import MANAGER_ROLES, access_project
from labeling.services.labels import label_add, label_merge, label_restore, label_retire, label_update


class LabelClassOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    hotkey = serializers.CharField()
    guideline = serializers.CharField()
    position = serializers.IntegerField()
    retired = serializers.SerializerMethodField()
    retired_at = serializers.DateTimeField(allow_null=True)

    def get_retired(self, obj) -> bool:
        return obj.retired_at is not None


class LabelAddInput(inputs.Input):
    key = serializers.RegexField(LABEL_KEY_RE, max_length=64)
    name = serializers.CharField(max_length=200)
    guideline = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_TEXT)
    hotkey = serializers.CharField(required=False, allow_blank=True, default="", max_length=1, trim_whitespace=False)


class LabelsApi(LabelHistoryApi):
    """GET: the label history (as before); POST: add a label."""

    @extend_schema(
        request=LabelAddInput,
        responses={201: LabelClassOutput, 409: ErrorSerializer, **ERRORS},
        operation_id="labels_create",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = LabelAddInput(data=request.data)
        data.is_valid(raise_exception=True)
        label = label_add(project=project, actor=request.user, **data.validated_data)
        return Response(LabelClassOutput(label).data, status=status.HTTP_201_CREATED)


class LabelDetailApi(ApiView):
    class PatchInput(inputs.Input):
        name = serializers.CharField(max_length=200, required=False)
        hotkey = serializers.CharField(required=False, allow_blank=True, max_length=1, trim_whitespace=False)
        guideline = serializers.CharField(required=False, allow_blank=True, max_length=MAX_TEXT)
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    @extend_schema(
        request=PatchInput,
        responses={200: LabelClassOutput, 409: ErrorSerializer, **ERRORS},
        operation_id="labels_update",
    )
    def patch(self, request, project_id, key):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = self.PatchInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        label = label_update(project=project, actor=request.user, key=key, **data.validated_data)
        return Response(LabelClassOutput(label).data)


class LabelRetireApi(ApiView):
    @extend_schema(
        request=None, responses={200: LabelClassOutput, 409: ErrorSerializer, **ERRORS}, operation_id="labels_retire"
    )
    def post(self, request, project_id, key):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        return Response(LabelClassOutput(label_retire(project=project, actor=request.user, key=key)).data)


class LabelRestoreApi(ApiView):
    @extend_schema(
        request=None, responses={200: LabelClassOutput, 409: ErrorSerializer, **ERRORS}, operation_id="labels_restore"
    )
    def post(self, request, project_id, key):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        return Response(LabelClassOutput(label_restore(project=project, actor=request.user, key=key)).data)


class MergeOutput(serializers.Serializer):
    key = serializers.CharField()
    into = serializers.CharField()
    moved = serializers.DictField(child=serializers.IntegerField())


class LabelMergeApi(ApiView):
    class Input(inputs.Input):
        into = serializers.RegexField(LABEL_KEY_RE, max_length=64)

    @extend_schema(
        request=Input, responses={200: MergeOutput, 409: ErrorSerializer, **ERRORS}, operation_id="labels_merge"
    )
    def post(self, request, project_id, key):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        into = data.validated_data["into"]
        moved = label_merge(project=project, actor=request.user, key=key, into=into)
        return Response({"key": key, "into": into, "moved": moved})
