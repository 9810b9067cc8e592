"""Quality runs: one cleanlab scoring of a project's annotations (CROWDLAB consensus and quality per
item, quality per annotator), the outcome it chose for each item, and the per-project trigger setting.

Invariants live in constraints: at most one queued-or-running run per project (two requests at once
cannot both start one); one result per (run, item) and per (run, annotator).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .core import Item, Project

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "PredProbsSource",
    "QualityAnnotatorStat",
    "QualityItemResult",
    "QualityMethod",
    "QualityOutcome",
    "QualityRun",
    "QualityRunStatus",
    "QualitySettings",
    "QualityTrigger",
    "REVIEW_OUTCOMES",
    "ReviewSend",
]


class QualityRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


ACTIVE_RUN_STATUSES = (QualityRunStatus.QUEUED, QualityRunStatus.RUNNING)


class QualityTrigger(models.TextChoices):
    MANUAL = "manual", "On demand"
    AUTO = "auto", "After new disputed items"


class PredProbsSource(models.TextChoices):
    PRODUCTION = "production", "Stored production predictions"
    CROSSVAL_TEXT = "crossval_text", "Out-of-sample TF-IDF + logistic regression on the payload text"
    CROSSVAL_NUMERIC = "crossval_numeric", "Out-of-sample logistic regression on the payload's numeric fields"
    CLASS_PRIOR = "class_prior", "Class frequencies (no usable features or too few items to train on)"


class QualityMethod(models.TextChoices):
    CROWDLAB = "crowdlab", "CROWDLAB (cleanlab.multiannotator)"
    SINGLE_LABEL = "single_label", "Label issues of single-annotated items (cleanlab.rank / cleanlab.filter)"
    NONE = "none", "Nothing to score"


class QualityRun(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quality_runs")
    status = models.CharField(max_length=16, choices=QualityRunStatus.choices, default=QualityRunStatus.QUEUED)
    trigger = models.CharField(max_length=16, choices=QualityTrigger.choices, default=QualityTrigger.MANUAL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # NumPy's global RNG is seeded with this before cleanlab breaks ties at random (reproducible runs).
    seed = models.BigIntegerField(default=0)
    method = models.CharField(max_length=16, choices=QualityMethod.choices, blank=True, default="")
    pred_probs_source = models.CharField(max_length=32, choices=PredProbsSource.choices, blank=True, default="")
    model_versions = models.CharField(max_length=512, blank=True, default="")
    accept_threshold = models.FloatField(null=True, blank=True)  # the threshold the run accepted at
    # The accept rule the run used (labeling.stats.calibration.AcceptRule.as_dict): mode, target, curve,
    # decisions, derived threshold, audited error with its interval, items accepted at other targets.
    calibration = models.JSONField(default=dict, blank=True)
    # The consistent snapshot the run scored: the read transaction's start time, and the newest annotation in it.
    snapshot_at = models.DateTimeField(null=True, blank=True)
    snapshot_max_annotation_id = models.BigIntegerField(null=True, blank=True)
    # Counts.
    n_annotations = models.PositiveIntegerField(default=0)
    n_annotators = models.PositiveIntegerField(default=0)
    n_ignored_annotations = models.PositiveIntegerField(default=0)  # labels no longer in the project
    scored = models.PositiveIntegerField(default=0)
    auto_accepted = models.PositiveIntegerField(default=0)
    to_review = models.PositiveIntegerField(default=0)
    reopened_for_more = models.PositiveIntegerField(default=0)
    skipped_stale = models.PositiveIntegerField(default=0)  # changed by people after the snapshot: left alone
    label_issues = models.PositiveIntegerField(default=0)  # single-annotated items flagged by find_label_issues
    mean_quality = models.FloatField(null=True, blank=True)
    # Wall-clock seconds per phase.
    seconds_read = models.FloatField(null=True, blank=True)
    seconds_pred_probs = models.FloatField(null=True, blank=True)
    seconds_cleanlab = models.FloatField(null=True, blank=True)
    seconds_write = models.FloatField(null=True, blank=True)
    seconds_total = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Last sign of life (labeling.services.work): while running, the worker's heartbeat; while queued,
    # when its task message was last sent. The sweep re-queues a running run whose heartbeat stopped.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Two runs requested at once: the second insert fails here, so only one ever runs.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=["queued", "running"]),
                name="quality_run_one_active_per_project",
            ),
        ]
        indexes = [models.Index(fields=["project", "status", "-id"], name="quality_run_project_status")]

    def __str__(self):
        return f"quality run #{self.pk} ({self.status})"


class QualityOutcome(models.TextChoices):
    ACCEPTED = "accepted", "Accepted as ground truth (consensus)"
    REOPENED = "reopened", "Back to the queue for one more annotation"
    REVIEW = "review", "Sent to the review queue"
    KEPT = "kept", "Already decided (left as is)"
    PENDING = "pending", "Still being annotated"
    STALE = "stale", "Changed after the snapshot (left alone)"


# The outcomes that send an item to the review queue; QualityItemResult indexes only these by quality.
REVIEW_OUTCOMES = [QualityOutcome.REVIEW.value, QualityOutcome.STALE.value]


class QualityItemResult(models.Model):
    """One scored item of one run (derived data, written only by the run service).

    A run inserts a row per annotated item, so the table carries only the indexes its reads need,
    both led by the run: its primary key (run, item), which a run's insert appends to in order, and
    (run, quality) of the rows sent to review, for the review queue. No database foreign keys (db_constraint=False):
    PostgreSQL would check each one at commit with a SELECT ... FOR KEY SHARE on the referenced
    row, which cost more than the insert itself. Rows go with their run (Django's cascade, by the
    (run, item) index); deleting an item leaves its rows to be pruned with their run."""

    # The row's key is (run, item): a separate id column would cost its own index entry and sequence
    # value per row.
    pk = models.CompositePrimaryKey("run", "item")
    run = models.ForeignKey(
        QualityRun, on_delete=models.CASCADE, related_name="item_results", db_constraint=False, db_index=False
    )
    item = models.ForeignKey(
        Item, on_delete=models.DO_NOTHING, related_name="quality_results", db_constraint=False, db_index=False
    )
    consensus_label = models.CharField(max_length=64)
    quality = models.FloatField()
    agreement = models.FloatField()
    num_annotations = models.PositiveSmallIntegerField()
    # ActiveLab score (lower = more informative to label again): the order reopened items are served in.
    active_learning_score = models.FloatField(null=True, blank=True)
    label_issue = models.BooleanField(default=False)
    # The calibrated accept rule's estimate that the consensus is right (null: no fitted rule).
    p_right = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=QualityOutcome.choices)
    # Would have been accepted, sent to review at random to measure the error of accepted items.
    audit = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["run_id", "item_id"]
        # The (run, item) key also serves "this item's latest result" (probing the project's runs newest first).
        # The review queue walks, by quality, only the items a run sent to review (or found changed
        # after its snapshot): indexing every row by quality would cost a random B-tree insert each
        # (labeling.services.resolution).
        indexes = [
            models.Index(
                fields=["run", "quality"], name="quality_result_review", condition=models.Q(outcome__in=REVIEW_OUTCOMES)
            )
        ]


class QualityAnnotatorStat(models.Model):
    run = models.ForeignKey(QualityRun, on_delete=models.CASCADE, related_name="annotator_stats")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # cleanlab's annotator_quality; null when it cannot be estimated (the annotator never overlaps anyone).
    quality = models.FloatField(null=True, blank=True)
    agreement_with_consensus = models.FloatField(null=True, blank=True)
    worst_class = models.CharField(max_length=64, blank=True, default="")
    num_labeled = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["run_id", "annotator_id"]
        constraints = [models.UniqueConstraint(fields=["run", "annotator"], name="quality_annotator_once_per_run")]


class QualitySettings(models.Model):
    """Per-project quality settings, and the counter that triggers a run automatically."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="quality_settings")
    # Start a run after this many new disputed items (0 turns the automatic trigger off).
    auto_run_after_disputed = models.PositiveIntegerField(default=25)
    # New disputed items since the last automatic or manual run was queued; changed only with F().
    disputed_since_run = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class ReviewSend(models.Model):
    """Append-only: an item sent to the review queue (made disputed) by a quality run or by a person,
    from which status, by whom and why (labeling.services.quality.review writes it in the same
    transaction as the move; the item page shows it)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="review_sends", db_index=False)
    from_status = models.CharField(max_length=16)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=64)  # "explorer", "quality-run:<id>"
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["item_id", "id"]
        indexes = [
            models.Index(fields=["item", "id"], name="review_send_item"),
            models.Index(fields=["project", "created_at"], name="review_send_project_time"),
        ]
