"""An annotator's own recent answers, and changing one while its item is undecided."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from labeling.api.views_queue import RemainingOutput
from labeling.selectors.access import access_project
from labeling.selectors.answers import my_recent_answers, own_annotation_project_id
from labeling.selectors.queue import annotator_remaining
from labeling.services.annotation_edit import annotation_edit


class AnswerOutput(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField()
    external_id = serializers.CharField()
    label = serializers.CharField()
    created_at = serializers.DateTimeField()
    editable = serializers.BooleanField(help_text="False once the item is decided (ask a reviewer).")


class MyAnswersApi(ApiView):
    class Output(serializers.Serializer):
        results = AnswerOutput(many=True)

    @extend_schema(
        responses={200: Output, **ERRORS},
        operation_id="my_answers",
        description="Your last 20 answers in this project, newest first.",
    )
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        rows = my_recent_answers(project_id=project.pk, annotator=request.user)
        return Response(self.Output({"results": rows}).data)


class MyRemainingApi(ApiView):
    Output = RemainingOutput

    @extend_schema(
        responses={200: Output, **ERRORS},
        operation_id="my_remaining",
        description="How many items are left for you in this project: exact up to 10,000, an estimate above. "
        "queue/next, submit and skip answer the same object as `remaining`.",
    )
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        return Response(self.Output(annotator_remaining(project_id=project.pk, annotator=request.user)).data)


class AnnotationEditApi(ApiView):
    class Input(inputs.Input):
        label = serializers.CharField(max_length=64)

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        item = serializers.IntegerField(source="item_id")
        label = serializers.CharField()

    @extend_schema(
        request=Input,
        responses={200: Output, 409: ErrorSerializer, **ERRORS},
        operation_id="annotation_edit",
        description="Change the label of your own annotation while its item is undecided. 409 (code "
        '"decided") once the item has ground truth: a reviewer changes it then.',
    )
    def post(self, request, annotation_id):
        access_project(
            user=request.user, project_id=own_annotation_project_id(annotation_id=annotation_id, user=request.user)
        )
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        ann = annotation_edit(annotation_id=annotation_id, annotator=request.user, label=data.validated_data["label"])
        return Response(self.Output(ann).data)
