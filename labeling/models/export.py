"""Exports of the label history: snapshot files built in the background, and export grants.

An export covers the label changes with `since_seq < seq <= until_seq` of one project; both ends
are fixed when the export is requested, so building it again always writes the same bytes.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .core import Project


class ExportFormat(models.TextChoices):
    JSONL = "jsonl", "JSON Lines"
    CSV = "csv", "CSV"
    JSON = "json", "JSON"


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Export(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    format = models.CharField(max_length=8, choices=ExportFormat.choices, default=ExportFormat.JSONL)
    compact = models.BooleanField(default=False)
    since_seq = models.BigIntegerField(default=0)
    until_seq = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    file_name = models.CharField(max_length=255, blank=True, default="")
    row_count = models.BigIntegerField(null=True, blank=True)
    byte_size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")  # of the stored (gzip) file
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Last sign of life (labeling.services.work): while running, the builder's heartbeat; while
    # pending, when its task message was last sent.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(since_seq__gte=0) & Q(until_seq__gte=models.F("since_seq")), name="export_seq_range"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "-id"], name="export_project_recent"),
            models.Index(fields=["status", "created_at"], name="export_status_created"),
        ]

    def __str__(self):
        return f"export {self.pk} of project {self.project_id} ({self.since_seq}, {self.until_seq}] {self.format}"


class ExportGrant(models.Model):
    """Lets one user (typically a service account for a training pipeline) read a project's label
    history and snapshots, with their ordinary API token, and nothing else in that project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="export_grants")
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="export_grant_unique")]
