"""Dynamic validation datasets and model evaluations .

A dataset's versions are immutable and numbered from 1. Membership is stored as intervals:
a DatasetMember row says "item X with label L is in the dataset from version `added_in` until
(not including) `removed_in`", so a version is a range query, a new version writes only its delta,
and the label frozen in an old version never changes (a relabel closes the old row and opens a new one).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from labeling.models import Item, Project


class Dataset(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Bugs carrying any of these tags flow into the dataset when they are resolved.
    tags = models.ManyToManyField("bugqueue.Tag", blank=True, related_name="datasets")
    min_accuracy = models.FloatField(null=True, blank=True)
    # Promotion to canary or production needs a passing evaluation on the latest version of every
    # gate dataset (bugqueue.services.gate).
    gate = models.BooleanField(default=False)
    latest_version = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="dataset_name_unique_per_project"),
            models.CheckConstraint(
                condition=Q(min_accuracy__isnull=True) | (Q(min_accuracy__gte=0) & Q(min_accuracy__lte=1)),
                name="dataset_min_accuracy_range",
            ),
        ]

    def __str__(self):
        return self.name


class VersionReason(models.TextChoices):
    MANUAL = "manual", "Manual curation"
    BUG = "bug", "Failures of a resolved bug"
    BUG_FOLLOWUP = "bug_followup", "Items of a resolved bug labeled later"


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    reason = models.CharField(max_length=16, choices=VersionReason.choices)
    bug = models.ForeignKey(
        "bugqueue.Bug", null=True, blank=True, on_delete=models.SET_NULL, related_name="dataset_versions"
    )
    note = models.TextField(blank=True, default="")
    added = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    relabeled = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dataset_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number_unique"),
            models.CheckConstraint(condition=Q(number__gte=1), name="dataset_version_number_positive"),
        ]


class DatasetMember(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="members")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="dataset_memberships")
    label = models.CharField(max_length=64)  # frozen when the row was written
    added_in = models.PositiveIntegerField()
    removed_in = models.PositiveIntegerField(null=True, blank=True)
    bug = models.ForeignKey(
        "bugqueue.Bug", null=True, blank=True, on_delete=models.SET_NULL, related_name="dataset_members"
    )

    class Meta:
        ordering = ["dataset_id", "id"]
        constraints = [
            # An item is in a dataset at most once at any version: one open interval per item.
            models.UniqueConstraint(
                fields=["dataset", "item"], condition=Q(removed_in__isnull=True), name="dataset_member_one_live_row"
            ),
            models.CheckConstraint(
                condition=Q(removed_in__isnull=True) | Q(removed_in__gt=models.F("added_in")),
                name="dataset_member_interval",
            ),
        ]
        indexes = [
            models.Index(fields=["dataset", "added_in", "id"], name="dsmember_added"),
            models.Index(fields=["dataset", "removed_in"], name="dsmember_removed"),
        ]


class PendingReason(models.TextChoices):
    FAILURE = "failure", "Failure of the bug, label unknown"
    SIMILAR = "similar", "Mined as similar to the bug's failures"
    CONFLICT = "conflict", "Failure whose expected label disagrees with the ground truth (waits for a reviewer)"


class DatasetPending(models.Model):
    """An item that joins the dataset (citing the bug) once it has ground truth."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="pending")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="dataset_pending")
    bug = models.ForeignKey(
        "bugqueue.Bug", null=True, blank=True, on_delete=models.SET_NULL, related_name="dataset_pending"
    )
    reason = models.CharField(max_length=16, choices=PendingReason.choices)
    similarity = models.FloatField(null=True, blank=True)
    expected_label = models.CharField(max_length=64, blank=True, default="")  # the failure's, for conflicts
    created_at = models.DateTimeField(default=timezone.now)
    added_in = models.PositiveIntegerField(null=True, blank=True)  # set when it joined

    class Meta:
        ordering = ["dataset_id", "id"]
        constraints = [models.UniqueConstraint(fields=["dataset", "item"], name="dataset_pending_once")]
        indexes = [models.Index(fields=["item", "added_in"], name="dspending_item")]


class FlowStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class BugDatasetFlow(models.Model):
    """The hand-off of a resolved bug to datasets (runs in Celery; progress shown on the bug page)."""

    bug = models.ForeignKey("bugqueue.Bug", on_delete=models.CASCADE, related_name="dataset_flows")
    datasets = models.JSONField(default=list)  # ids chosen at resolution (datasets following tags are added)
    mine_similar = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=FlowStatus.choices, default=FlowStatus.QUEUED)
    added = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(default=0)
    conflicts = models.PositiveIntegerField(default=0)  # failures sent to review (expected label ≠ ground truth)
    mined = models.PositiveIntegerField(default=0)
    versions = models.JSONField(default=list)  # [{"dataset": id, "number": n}]
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["bug_id", "id"]


class Evaluation(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluations")
    model_version = models.CharField(max_length=128)
    n_predictions = models.PositiveIntegerField(default=0)
    n_unknown = models.PositiveIntegerField(default=0)  # predictions for external_ids not in the project
    # "upload": predictions sent by a user; "stored": computed by Loupe from a model's stored predictions
    # (a baseline evaluated on a dataset version it had not seen).
    source = models.CharField(max_length=16, default="upload")
    passed = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["project", "model_version"], name="evaluation_project_model")]


class EvaluationResult(models.Model):
    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="results")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="evaluation_results")
    dataset_version = models.PositiveIntegerField()
    n = models.PositiveIntegerField()
    n_missing = models.PositiveIntegerField()
    accuracy = models.FloatField(null=True)
    macro_f1 = models.FloatField(null=True)
    per_class_recall = models.JSONField(default=dict)
    confusion = models.JSONField(default=dict)  # {"labels": [...], "matrix": [[...]]}, rows = true label
    # The baseline: the production model (else the last promoted one) on the same dataset version.
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    baseline_model = models.CharField(max_length=128, blank=True, default="")
    baseline_missing = models.PositiveIntegerField(default=0)  # bug items the baseline has no prediction for
    regressions = models.PositiveIntegerField(default=0)  # bug items the baseline got right, now wrong
    regressions_by_bug = models.JSONField(default=dict)  # {bug id: count}
    regression_items = models.JSONField(default=list)  # up to 100 external_ids
    # [{field, value, n, accuracy, macro_f1, baseline_accuracy, delta, dropped}]
    slices = models.JSONField(default=list)
    passed = models.BooleanField(default=False)
    reasons = models.JSONField(default=list)
    warnings = models.JSONField(default=list)  # e.g. slices that dropped while the dataset passed

    class Meta:
        ordering = ["evaluation_id", "dataset_id"]
        constraints = [models.UniqueConstraint(fields=["evaluation", "dataset"], name="evaluation_result_once")]
        indexes = [models.Index(fields=["dataset", "dataset_version", "evaluation"], name="evalresult_dataset_version")]


class EvaluationPrediction(models.Model):
    """What an evaluated model predicted for each item of the project (for regressions, click-through
    and evaluating later dataset versions from stored predictions).

    No database foreign keys: an evaluation writes up to millions of these rows in one transaction,
    and PostgreSQL checks a foreign key row by row (locking each item), which cost more than the
    whole evaluation. The rows are written only by bugqueue.services.evaluations with item ids it has
    just resolved in the same transaction, and deletions cascade through Django (on_delete)."""

    evaluation = models.ForeignKey(
        Evaluation, on_delete=models.CASCADE, related_name="predictions", db_constraint=False
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    label = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["evaluation", "item"], name="evaluation_prediction_once")]
