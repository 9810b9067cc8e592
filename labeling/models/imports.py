"""Imports of items from an uploaded file (CSV, JSON Lines, a JSON array): the job and its rejected rows.

A job keeps the stored file, the columns and preview read from its first rows, the manager's
mapping of columns to item fields, and its progress counters; the rows refused while ingesting are
kept one per row with their number and reason, so the summary can be downloaded.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .core import Project


class ImportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON Lines"
    JSON = "json", "JSON array"


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded (to map)"
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ImportJob(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.FileField(upload_to="imports/%Y/%m/", max_length=255)
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=8, choices=ImportFormat.choices)
    byte_size = models.BigIntegerField(default=0)
    columns = models.JSONField(default=list)
    preview = models.JSONField(default=list)  # the first rows, as read
    mapping = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=ImportStatus.choices, default=ImportStatus.UPLOADED)
    bytes_read = models.BigIntegerField(default=0)
    rows_read = models.BigIntegerField(default=0)
    created = models.BigIntegerField(default=0)
    updated = models.BigIntegerField(default=0)
    unchanged = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rows_read__gte=0)
                & Q(created__gte=0)
                & Q(updated__gte=0)
                & Q(unchanged__gte=0)
                & Q(rejected__gte=0),
                name="import_job_counts_nonnegative",
            ),
        ]
        indexes = [models.Index(fields=["project", "-id"], name="import_job_project_recent")]

    def __str__(self):
        return f"import {self.pk} of project {self.project_id} ({self.original_name}, {self.status})"

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        if not self.byte_size or self.status not in (ImportStatus.RUNNING, ImportStatus.FAILED):
            return 0
        return min(99, int(100 * self.bytes_read / self.byte_size))


class ImportRejection(models.Model):
    """One refused row: its number in the file (1 = the first data row) and why."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rejections")
    row = models.BigIntegerField()
    external_id = models.CharField(max_length=255, blank=True, default="")
    reason = models.TextField()

    class Meta:
        ordering = ["job_id", "row"]
        indexes = [models.Index(fields=["job", "row"], name="import_rejection_job_row")]
