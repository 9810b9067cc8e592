"""Annotator task queues: one row per (project, annotator) with that annotator's own counters.

The row is also the annotator's claim lock: `assignment_claim_next` upserts and locks it first, so
two calls by the same annotator (a reload racing a prefetch) are serialised and never hand out more
leases than asked for. The counters change only with F() in labeling.services.annotations / queue and
are recomputed by the reconcile task (labeling.services.queue.maintenance.counters_reconcile).
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


# A request for one more annotation is valid while its item is as it was when asked: still disputed,
# with the counters the request recorded (request field, item field). The forms below all derive
# from these two lines: ReopenRequest.objects.valid() (a query over requests), REOPEN_VALID_SQL
# (SQL), reopen_pending() (a query over items, EXISTS) and reopen_requested() (the same through the
# item's reopen_request relation, a join, for aggregates).
REOPEN_STATUS = "disputed"
REOPEN_MATCH = (("required", "required_annotations"), ("count", "annotation_count"))


class ReopenRequestQuerySet(models.QuerySet):
    def valid(self):
        """Requests whose item is still as it was when asked (see REOPEN_MATCH)."""
        return self.filter(item__status=REOPEN_STATUS, **{r: models.F(f"item__{i}") for r, i in REOPEN_MATCH})


class ReopenRequest(models.Model):
    """A quality run's request for one more annotation of a disputed item (adaptive overlap), waiting
    for an annotator to reach it.

    A run does not rewrite the item: it records the request, and the annotator queue turns the item
    `open` (required_annotations + 1, served in `rank` order) when it hands the item out
    (labeling.services.queue.claim). Until then the item is stored as `disputed` but counts as open
    everywhere (reopen_pending below): it is not in the review queue, and the next
    run sees it as the open item it will become.

    A request is valid only while its item is still `disputed` with the counters it was made on
    (`required`, `count`); a reviewer's decision, ground truth or a new annotation makes it stale,
    and stale requests are dropped as the queue meets them.

    No database foreign keys (db_constraint=False), like QualityItemResult: PostgreSQL would check
    each one at commit, a real cost for a run's many requests. Deleting an item through Django deletes
    its request (the ORM's cascade); a request whose item is gone some other way is stale, and
    dropped like one."""

    item = models.OneToOneField(
        "labeling.Item", primary_key=True, on_delete=models.CASCADE, db_constraint=False, related_name="reopen_request"
    )
    project = models.ForeignKey(
        "labeling.Project", on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+"
    )
    rank = models.FloatField()  # cleanlab's active-learning score: lowest first
    required = models.PositiveSmallIntegerField()  # the item's required_annotations when requested
    count = models.PositiveIntegerField()  # the item's annotation_count when requested

    objects = ReopenRequestQuerySet.as_manager()

    class Meta:
        ordering = ["project_id", "rank", "item_id"]
        indexes = [models.Index(fields=["project", "rank", "item"], name="reopen_request_head")]

    def __str__(self):
        return f"{self.item_id}@{self.project_id}: {self.rank:.3f}"


# `{r}` / `{i}`: the aliases of the request and of its item.
REOPEN_VALID_SQL = " AND ".join(
    [f"{{i}}.status = '{REOPEN_STATUS}'", *(f"{{i}}.{i} = {{r}}.{r}" for r, i in REOPEN_MATCH)]
)


def reopen_pending(prefix: str = "") -> models.Q:
    """For a query over items (`prefix` ""), or over rows with an item (`prefix` "item__"): a valid
    request for one more annotation waits for the item, which therefore counts as open, not as
    disputed."""
    return models.Q(**{f"{prefix}status": REOPEN_STATUS}) & models.Q(
        models.Exists(
            ReopenRequest.objects.filter(
                item_id=models.OuterRef(f"{prefix}pk"),
                **{r: models.OuterRef(f"{prefix}{i}") for r, i in REOPEN_MATCH},
            )
        )
    )


def reopen_requested(prefix: str = "") -> models.Q:
    """reopen_pending() through the item's `reopen_request` relation: a LEFT JOIN, evaluated once per
    row, where an aggregate over items (Count(..., filter=...)) would run the EXISTS once per item."""
    return models.Q(
        **{f"{prefix}status": REOPEN_STATUS},
        **{f"{prefix}reopen_request__{r}": models.F(f"{prefix}{i}") for r, i in REOPEN_MATCH},
    )
