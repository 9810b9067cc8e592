"""Model registry API: register model versions, read them with their stage history and newest
evaluations, ask the promotion gate, promote (thin: selectors read, services write). Any member
reads; registering and promoting need the manager role."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from bugqueue.selectors.models import model_with_summary, models_with_summaries
from bugqueue.services.gate import MAX_OVERRIDE, gate_check, model_promote
from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS, ErrorSerializer
from common.errors import NotFound, ValidationFailed
from labeling.models import GATED_STAGES, ModelVersion, Stage
from labeling.selectors.access import MANAGER_ROLES, access_project
from labeling.selectors.registry import baseline_model, model_get, model_history
from labeling.services.registry import MAX_VERSION, model_register

CONFLICT = {409: ErrorSerializer}


class EvaluationSummaryOutput(serializers.Serializer):
    evaluation = serializers.IntegerField()
    dataset = serializers.IntegerField()
    name = serializers.CharField()
    dataset_version = serializers.IntegerField()
    latest_version = serializers.IntegerField(help_text="The dataset's latest version now.")
    accuracy = serializers.FloatField(allow_null=True)
    passed = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())
    baseline_model = serializers.CharField(help_text="The model compared with; empty when there was none.")
    regressions = serializers.IntegerField()
    regressions_by_bug = serializers.DictField(child=serializers.IntegerField(), help_text="{bug id: count}")
    warnings = serializers.ListField(child=serializers.CharField(), help_text="E.g. slices that dropped.")
    created_at = serializers.DateTimeField()


class ModelOutput(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None)
    evaluations = EvaluationSummaryOutput(
        many=True, read_only=True, help_text="The newest result of this version on each dataset."
    )

    class Meta:
        model = ModelVersion
        fields = ["version", "description", "stage", "stage_changed_at", "created_at", "created_by", "evaluations"]


class GateDatasetOutput(serializers.Serializer):
    dataset = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField(help_text="The dataset's latest version, the one the gate needs.")
    evaluation = serializers.IntegerField(allow_null=True)
    passed = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())


class ChangeOutput(serializers.Serializer):
    id = serializers.IntegerField()
    from_stage = serializers.CharField(help_text="Empty for the registration row.")
    to_stage = serializers.CharField()
    actor = serializers.CharField(source="actor.username", default=None)
    created_at = serializers.DateTimeField()
    evaluation = serializers.IntegerField(source="evaluation_id", allow_null=True)
    gate = GateDatasetOutput(many=True)
    override_reason = serializers.CharField()
    note = serializers.CharField()


class ModelDetailOutput(ModelOutput):
    history = serializers.SerializerMethodField()

    class Meta(ModelOutput.Meta):
        fields = [*ModelOutput.Meta.fields, "history"]

    @extend_schema_field(ChangeOutput(many=True))
    def get_history(self, obj):
        return ChangeOutput(model_history(model=obj), many=True).data


class GateOutput(serializers.Serializer):
    stage = serializers.ChoiceField(choices=Stage.choices)
    current_stage = serializers.CharField(help_text="The model's stage now (one of the stages).")
    allowed = serializers.BooleanField(help_text="Whether a promotion without override_reason would go through.")
    gated = serializers.BooleanField(help_text="Whether this stage needs the gate (canary, production).")
    baseline = serializers.CharField(
        allow_null=True, help_text="The model compared with: in production, else the last promoted one."
    )
    datasets = GateDatasetOutput(many=True)


class PromoteOutput(serializers.Serializer):
    model = ModelDetailOutput()
    change = ChangeOutput()


def _model(project, version) -> ModelVersion:
    model = model_get(project=project, version=version) if "\x00" not in version else None
    if model is None:
        raise NotFound(f"Model version {version!r} is not registered in this project.", code="model_not_found")
    model.project = project
    return model


class ModelListCreateApi(ApiView):
    class Input(inputs.Input):
        version = serializers.CharField(max_length=MAX_VERSION)
        description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)

    @extend_schema(responses={200: ModelOutput(many=True), **ERRORS}, operation_id="models_list")
    def get(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id)
        return Response(ModelOutput(models_with_summaries(project=project), many=True).data)

    @extend_schema(
        request=Input,
        responses={201: ModelDetailOutput, **CONFLICT, **ERRORS},
        operation_id="models_register",
        description="Register a model version as a candidate (409 model_exists if it is registered).",
    )
    def post(self, request, project_id):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        model = model_register(project=project, actor=request.user, **data.validated_data)
        return Response(ModelDetailOutput(model_with_summary(model=model)).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(ApiView):
    @extend_schema(responses={200: ModelDetailOutput, **ERRORS}, operation_id="models_retrieve")
    def get(self, request, project_id, version):
        project = access_project(user=request.user, project_id=project_id)
        return Response(ModelDetailOutput(model_with_summary(model=_model(project, version))).data)


class ModelGateApi(ApiView):
    @extend_schema(
        parameters=[OpenApiParameter("stage", str, enum=Stage.values, description="Default: production.")],
        responses={200: GateOutput, **ERRORS},
        operation_id="models_gate",
        description="The gate's answer for promoting this version to `stage`, without promoting. Canary and "
        "production need, on the latest version of every gate dataset, a passing evaluation of this version "
        "compared with the current baseline (the model in production, else the last promoted one).",
    )
    def get(self, request, project_id, version):
        project = access_project(user=request.user, project_id=project_id)
        stage = request.query_params.get("stage", Stage.PRODUCTION)
        if stage not in Stage.values:
            raise ValidationFailed(
                f"stage must be one of {', '.join(Stage.values)}.", fields={"stage": [f"Unknown stage {stage!r}."]}
            )
        model = _model(project, version)
        gated = stage in GATED_STAGES
        datasets = gate_check(project=project, model=model) if gated else []
        baseline = baseline_model(project=project, exclude_version=model.version)
        return Response(
            {
                "stage": stage,
                "current_stage": model.stage,
                "allowed": all(d["passed"] for d in datasets) and model.stage != stage,
                "gated": gated,
                "baseline": baseline.version if baseline is not None else None,
                "datasets": datasets,
            }
        )


class ModelPromoteApi(ApiView):
    class Input(inputs.Input):
        stage = serializers.ChoiceField(choices=Stage.choices)
        override_reason = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=MAX_OVERRIDE,
            help_text="Managers: promote although the gate refuses; recorded on the history row.",
        )
        note = serializers.CharField(required=False, allow_blank=True, default="", max_length=10_000)

    @extend_schema(
        request=Input,
        responses={200: PromoteOutput, **CONFLICT, **ERRORS},
        operation_id="models_promote",
        description="Move the version to `stage` with a history row. Canary and production pass the gate "
        "(see …/gate) or answer 409 gate_failed with fields.datasets naming the failing datasets; an "
        "override_reason promotes anyway. Promotion to production retires the model there.",
    )
    def post(self, request, project_id, version):
        project = access_project(user=request.user, project_id=project_id, roles=MANAGER_ROLES)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        change = model_promote(project=project, actor=request.user, version=version, **data.validated_data)
        model = model_with_summary(model=_model(project, version))
        return Response({"model": ModelDetailOutput(model).data, "change": ChangeOutput(change).data})
