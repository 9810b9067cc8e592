"""Annotator task queues: one row per (project, annotator) with that annotator's own counters.

The row is also the annotator's claim lock: `assignment_claim_next` upserts and locks it first, so
two calls by the same annotator (a reload racing a prefetch) are serialised and never hand out more
leases than asked for. The counters change only with F() in labeling.services.annotations / queue and
are recomputed by the reconcile task (labeling.services.queue.counters_reconcile).
"""

from django.conf import settings
from django.db import models


class AnnotatorProgress(models.Model):
    project = models.ForeignKey("labeling.Project", on_delete=models.CASCADE, related_name="annotator_progress")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotator_progress")
    submitted = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    # Submissions on `day` (UTC); a submission on a later day starts the count again.
    day = models.DateField(null=True, blank=True)
    day_submitted = models.PositiveIntegerField(default=0)
    last_claim_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project_id", "annotator_id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "annotator"], name="annotator_progress_unique"),
        ]

    def __str__(self):
        return f"{self.annotator_id}@{self.project_id}: {self.submitted}"
