"""Feedback delay: ground truth observed in production, the rollups the delay report is computed
from, and the per-project state of the rollup refresh and of the feedback-delay SLO."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .core import Item, Project

# The channel of an item's first ground truth (FeedbackDelayBin.channel): annotators and reviewers
# are one channel; an import counts under its source, or this name when it gave none.
HUMAN_CHANNEL = "human"
IMPORTED_CHANNEL = "imported"


class ObservationOutcome(models.TextChoices):
    APPLIED = "applied", "Applied (set or changed the ground truth)"
    CONFIRMED = "confirmed", "Confirmed (agrees with the current ground truth)"
    CONFLICT = "conflict", "Conflict (disagrees with a human decision; item sent to review)"
    SUPERSEDED = "superseded", "Superseded (older than the imported label in force)"
    PENDING = "pending", "Pending (no item with this external_id yet)"


class GroundTruthObservation(models.Model):
    """One label observed in production (a chargeback, a user correction...), as received.

    Append-only and never lost: every accepted row is kept here, whether it set the ground truth,
    agreed with it, conflicted with a human decision, or arrived before its item existed (pending,
    attached when the item is ingested). One row per (project, external_id, source, label): sending
    the same observation again is a no-op."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gt_observations")
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.CASCADE, related_name="gt_observations")
    external_id = models.CharField(max_length=255)
    label = models.CharField(max_length=64)
    source = models.CharField(max_length=64, blank=True, default="")
    observed_at = models.DateTimeField()
    received_at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=ObservationOutcome.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id", "source", "label"], name="gt_observation_once"),
        ]
        indexes = [
            models.Index(fields=["item", "observed_at"], name="gt_observation_item_time"),
            models.Index(
                fields=["project", "external_id"], condition=Q(item__isnull=True), name="gt_observation_pending"
            ),
        ]


class FeedbackDelayBin(models.Model):
    """Predictions that have ground truth, counted per model version × channel of the first truth
    (human, or the import source) × prediction day (UTC) × delay bucket (labeling.stats.survival.EDGES)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    model_version = models.CharField(max_length=128)
    channel = models.CharField(max_length=64)
    pred_day = models.DateField()
    bucket = models.SmallIntegerField()
    delay_day = models.SmallIntegerField()  # whole days from prediction to truth (labeling.stats.survival.BUCKET_DAY)
    n = models.IntegerField()
    n_correct = models.IntegerField()  # prediction label == current ground truth label
    n_conf = models.IntegerField()  # predictions with class probabilities
    sum_conf = models.FloatField()  # sum of max probability
    sum_conf_sq = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "pred_day", "model_version", "channel", "bucket"], name="feedback_delay_bin_key"
            ),
        ]


class FeedbackBacklogBin(models.Model):
    """Predictions still waiting for ground truth, per model version × prediction hour (UTC)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    model_version = models.CharField(max_length=128)
    pred_hour = models.DateTimeField()
    n = models.IntegerField()
    sum_offset = models.FloatField()  # seconds after pred_hour, summed: their mean is the censoring time
    oldest_at = models.DateTimeField()
    n_conf = models.IntegerField()
    sum_conf = models.FloatField()
    sum_conf_sq = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "pred_hour", "model_version"], name="feedback_backlog_bin_key"),
        ]


class FeedbackDirtyDay(models.Model):
    """A prediction day whose bins must be recomputed (predictions written on it)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    marked_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "day"], name="feedback_dirty_day_once")]


class FeedbackState(models.Model):
    """Per project: how far the rollups have followed the label history, and the SLO state last seen
    by the periodic check (so that a breach and a recovery are each announced exactly once)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="feedback_state")
    label_seq = models.BigIntegerField(default=0)  # LabelChange.seq already reflected in the bins
    buckets_version = models.CharField(max_length=32, blank=True, default="")
    refreshed_at = models.DateTimeField(null=True, blank=True)
    slo_breached = models.BooleanField(default=False)
    slo_observed_seconds = models.FloatField(null=True, blank=True)
    slo_checked_at = models.DateTimeField(null=True, blank=True)
    slo_changed_at = models.DateTimeField(null=True, blank=True)
