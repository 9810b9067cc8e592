"""Writes of the model registry: registering a model version and recording a stage change with its
history row. The gate that decides whether a change is allowed lives in bugqueue.services.gate;
this module only writes what it decided."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from common.errors import Conflict, ValidationFailed
from labeling.models import ModelStageChange, ModelVersion, Stage

MAX_VERSION = 128


def _clean_version(version) -> str:
    if not isinstance(version, str) or not version.strip() or len(version.strip()) > MAX_VERSION:
        raise ValidationFailed(
            f"version must be a non-empty string of at most {MAX_VERSION} characters.",
            fields={"version": ["Required, at most 128 characters."]},
        )
    return version.strip()


def model_register(*, project, actor, version: str, description: str = "") -> ModelVersion:
    version = _clean_version(version)
    try:
        with transaction.atomic():
            model = ModelVersion.objects.create(
                project=project, version=version, description=description or "", created_by=actor
            )
            ModelStageChange.objects.create(model=model, from_stage="", to_stage=Stage.CANDIDATE, actor=actor)
    except IntegrityError:
        raise Conflict(
            f"Model version {version!r} is already registered in this project.",
            code="model_exists",
            fields={"version": ["Already registered."]},
        )
    return model


def model_ensure(*, project, version: str, actor=None) -> ModelVersion:
    """The registered model version, registering it as a candidate if it is new (an evaluation or a
    prediction of an unregistered version registers it)."""
    version = _clean_version(version)
    model = ModelVersion.objects.filter(project=project, version=version).first()
    if model is not None:
        return model
    try:
        return model_register(project=project, actor=actor, version=version)
    except Conflict:  # registered concurrently
        return ModelVersion.objects.get(project=project, version=version)


@transaction.atomic
def model_stage_write(
    *, model: ModelVersion, to_stage: str, actor, evaluation_id=None, gate=(), override_reason: str = "", note: str = ""
) -> ModelStageChange:
    """Move a model to a stage (already allowed by the caller) and record the change. A model moved to
    production retires the one there before it (with its own history row)."""
    if to_stage not in Stage.values:
        raise ValidationFailed(
            f"stage must be one of {', '.join(Stage.values)}.", fields={"stage": [f"Unknown stage {to_stage!r}."]}
        )
    model = ModelVersion.objects.select_for_update().get(pk=model.pk)
    now = timezone.now()
    if to_stage == Stage.PRODUCTION:
        for previous in (
            ModelVersion.objects.select_for_update()
            .filter(project_id=model.project_id, stage=Stage.PRODUCTION)
            .exclude(pk=model.pk)
        ):
            ModelStageChange.objects.create(
                model=previous,
                from_stage=previous.stage,
                to_stage=Stage.RETIRED,
                actor=actor,
                note=f"Replaced in production by {model.version}",
            )
            ModelVersion.objects.filter(pk=previous.pk).update(stage=Stage.RETIRED, stage_changed_at=now)
    change = ModelStageChange.objects.create(
        model=model,
        from_stage=model.stage,
        to_stage=to_stage,
        actor=actor,
        evaluation_id=evaluation_id,
        gate=list(gate),
        override_reason=override_reason or "",
        note=note or "",
    )
    ModelVersion.objects.filter(pk=model.pk).update(stage=to_stage, stage_changed_at=now)
    model.refresh_from_db()
    return change
