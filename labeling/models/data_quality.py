"""Data quality of ingested batches: one profile per batch, the checks it failed and the bugs filed
for them. The recent profiles of a project are the reference the next batch is checked against
(labeling.stats.data_profile, labeling.services.data_checks)."""

from django.db import models

from .core import Project


class BatchCheckStatus(models.TextChoices):
    LEARNING = "learning", "Learning (too few earlier batches to compare with)"
    SKIPPED = "skipped", "Skipped (too few rows to profile reliably)"
    OK = "ok", "Within recent variation"
    FAILED = "failed", "Failed checks"


class BatchProfile(models.Model):
    """An ingested batch's profile (labeling.stats.data_profile.profile_batch), what its checks
    found (`checks`: the failed ones, with observed and expected figures and the backtest) and the
    bugs filed for them (`bug_ids`: "field:check" -> bug id, set by the bug queue)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batch_profiles")
    rows = models.PositiveIntegerField()
    profile = models.JSONField()
    status = models.CharField(max_length=16, choices=BatchCheckStatus.choices)
    checks = models.JSONField(default=list, blank=True)
    bug_ids = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["project", "-id"], name="batch_profile_recent")]

    def __str__(self):
        return f"batch {self.pk} of project {self.project_id} ({self.status})"
