"""A reviewer's decisions, kept so that one can be undone for a short while.

One row per decision that changed an item's ground truth (item_resolve). It records what the
decision replaced (the previous ground truth and item status, the guideline text before a note was
appended), so an undo can put it back as new history rows; `undone_at` makes undoing twice a conflict.
The decision's ground truth row carries the same `decided_at`: while the item's GroundTruth still has
this label, method and time, nothing has changed it since.
"""

from django.conf import settings
from django.db import models

from .core import GuidelineRevision, Item


class ReviewDecision(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="review_decisions")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=64)
    decided_at = models.DateTimeField()
    # What the decision replaced: "" previous_label means the item had no ground truth.
    previous_status = models.CharField(max_length=16)
    previous_label = models.CharField(max_length=64, blank=True, default="")
    previous_method = models.CharField(max_length=16, blank=True, default="")
    previous_score = models.FloatField(null=True, blank=True)
    previous_source = models.CharField(max_length=128, blank=True, default="")
    previous_note = models.TextField(blank=True, default="")
    previous_decided_at = models.DateTimeField(null=True, blank=True)
    # The guideline revision the decision appended its note with, and the text before it.
    guideline_revision = models.ForeignKey(
        GuidelineRevision, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    guideline_before = models.TextField(blank=True, default="")
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["item", "-id"], name="review_decision_item"),
            models.Index(fields=["reviewer", "-decided_at"], name="review_decision_reviewer"),
        ]
