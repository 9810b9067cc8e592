"""Reads of the model registry: a project's model versions, their stage history, and the baseline a
candidate is compared with (the model in production, else the last promoted one)."""

from labeling.models import ModelStageChange, ModelVersion, Stage


def models_list(*, project):
    return ModelVersion.objects.filter(project=project).select_related("created_by").order_by("-created_at", "-id")


def model_get(*, project, version: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(project=project, version=version).first()


def model_history(*, model):
    return ModelStageChange.objects.filter(model=model).select_related("actor").order_by("id")


def model_versions_in_stage(*, project, stage: str) -> list[str]:
    return list(ModelVersion.objects.filter(project=project, stage=stage).values_list("version", flat=True))


def baseline_model(*, project, exclude_version: str | None = None) -> ModelVersion | None:
    """The model a candidate is compared with: the one in production, else the one promoted last
    (any stage but candidate); never the candidate itself. None before any promotion."""
    qs = ModelVersion.objects.filter(project=project)
    if exclude_version is not None:
        qs = qs.exclude(version=exclude_version)
    production = qs.filter(stage=Stage.PRODUCTION).first()
    if production is not None:
        return production
    return (
        qs.exclude(stage=Stage.CANDIDATE)
        .filter(stage_changed_at__isnull=False)
        .order_by("-stage_changed_at", "-id")
        .first()
    )
