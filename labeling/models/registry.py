"""The model registry: the model versions a project runs, their deployment stage, and the append-only
history of stage changes. Stages are changed by the promotion gate (bugqueue.services.gate), which
records which evaluation allowed each change; the evaluation is a bugqueue row, referenced by id."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .core import Project


class Stage(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    SHADOW = "shadow", "Shadow"
    CANARY = "canary", "Canary"
    PRODUCTION = "production", "Production"
    RETIRED = "retired", "Retired"


# Promotion to these stages needs a passing evaluation on every gate dataset.
GATED_STAGES = (Stage.CANARY, Stage.PRODUCTION)


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    version = models.CharField(max_length=128)
    description = models.TextField(blank=True, default="")
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.CANDIDATE)
    stage_changed_at = models.DateTimeField(null=True, blank=True)  # last promotion (null: never promoted)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project_id", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="model_version_unique_per_project"),
            # At most one model version in production per project.
            models.UniqueConstraint(
                fields=["project"], condition=Q(stage="production"), name="model_version_one_in_production"
            ),
        ]

    def __str__(self):
        return self.version


class ModelStageChange(models.Model):
    """One stage change: who, when, from, to, the evaluation that allowed it (or the override reason)."""

    model = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="stage_changes")
    from_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True, default="")
    to_stage = models.CharField(max_length=16, choices=Stage.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    evaluation_id = models.BigIntegerField(null=True, blank=True)  # bugqueue.Evaluation that allowed it
    gate = models.JSONField(default=list)  # per gate dataset: {dataset, name, version, evaluation, passed, reasons}
    override_reason = models.TextField(blank=True, default="")
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["model_id", "id"]
        indexes = [models.Index(fields=["model", "created_at"], name="model_stage_change_model")]
