"""Bug queue domain: bugs grouped by fingerprint, their tags, failure examples, history, comments,
occurrences over time, per-project settings and weekly digests.

Invariants live in constraints (one open bug per fingerprint and project); rules live in
`bugqueue.services`. `bugqueue` depends on `labeling`; labeling never imports this module.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from labeling.models import Item, Project


class BugKind(models.TextChoices):
    FAILED_PREDICTION = "failed_prediction", "Failed prediction"
    USER_REPORT = "user_report", "User report"
    DATA_QUALITY = "data_quality", "Data-quality alert"
    FEEDBACK_DELAY = "feedback_delay", "Feedback-delay breach"
    OTHER = "other", "Other"


class BugStatus(models.TextChoices):
    NEW = "new", "New"
    TRIAGED = "triaged", "Triaged"
    IN_PROGRESS = "in_progress", "In progress"
    RESOLVED = "resolved", "Resolved"
    WONT_FIX = "wont_fix", "Won't fix"
    DUPLICATE = "duplicate", "Duplicate"


OPEN_STATUSES = (BugStatus.NEW, BugStatus.TRIAGED, BugStatus.IN_PROGRESS)
CLOSED_STATUSES = (BugStatus.RESOLVED, BugStatus.WONT_FIX, BugStatus.DUPLICATE)


class Priority(models.TextChoices):
    P0 = "p0", "P0 (urgent)"
    P1 = "p1", "P1 (high)"
    P2 = "p2", "P2 (normal)"
    P3 = "p3", "P3 (low)"


class Resolution(models.TextChoices):
    FIXED = "fixed", "Fixed"
    WONT_FIX = "wont_fix", "Won't fix"
    DUPLICATE = "duplicate", "Duplicate"


RESOLUTION_STATUS = {
    Resolution.FIXED: BugStatus.RESOLVED,
    Resolution.WONT_FIX: BugStatus.WONT_FIX,
    Resolution.DUPLICATE: BugStatus.DUPLICATE,
}


class Tag(models.Model):
    """A curated failure type (seeded by a data migration; staff edit them in the admin)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField()
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "slug"]

    def __str__(self):
        return self.slug


class Bug(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="bugs")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=32, choices=BugKind.choices)
    status = models.CharField(max_length=16, choices=BugStatus.choices, default=BugStatus.NEW)
    priority = models.CharField(max_length=2, choices=Priority.choices, default=Priority.P2)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_bugs"
    )
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="bugs")
    # Groups repeated reports: default sha256(kind + normalized title); clients may send their own.
    fingerprint = models.CharField(max_length=255)
    model_version = models.CharField(max_length=128, blank=True, default="")
    # Stored counter: changed only with F() in the filing service; reconciled from BugOccurrence.
    occurrences = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    regressed = models.BooleanField(default=False)
    regressed_at = models.DateTimeField(null=True, blank=True)
    reopened_at = models.DateTimeField(null=True, blank=True)
    triaged_at = models.DateTimeField(null=True, blank=True)  # first time the bug left "new"
    # When the bug was last closed (resolved, won't fix or duplicate); `resolution` says how.
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True, default="")
    resolution_note = models.TextField(blank=True, default="")
    # The newest model version among the bug's failures when it was resolved (see regression rule).
    resolved_model_version = models.CharField(max_length=128, blank=True, default="")
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    # Snooze (Sentry's "ignore"): an open bug hidden from the default stream until any condition set
    # here is met (none set: until someone unsnoozes it). See bugqueue.services.snooze.
    snoozed = models.BooleanField(default=False)
    snoozed_at = models.DateTimeField(null=True, blank=True)
    snoozed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    snooze_until = models.DateTimeField(null=True, blank=True)
    # Returns when `occurrences` reaches this total (occurrences at snooze time + N).
    snooze_until_occurrences = models.PositiveIntegerField(null=True, blank=True)
    # Returns when failures filed after `snooze_after_failure_id` touch this many distinct items.
    snooze_items = models.PositiveIntegerField(null=True, blank=True)
    snooze_after_failure_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Grouping is race-free: two concurrent reports of one fingerprint cannot both open a bug.
            models.UniqueConstraint(
                fields=["project", "fingerprint"],
                condition=Q(status__in=["new", "triaged", "in_progress"]),
                name="bug_one_open_per_fingerprint",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status", "priority"], name="bug_project_status_prio"),
            models.Index(fields=["project", "fingerprint"], name="bug_project_fingerprint"),
            models.Index(fields=["project", "created_at"], name="bug_project_created"),
            models.Index(fields=["project", "resolved_at"], name="bug_project_resolved"),
            models.Index(
                fields=["snooze_until"], name="bug_snooze_until", condition=Q(snoozed=True, snooze_until__isnull=False)
            ),
            # The stream's default order: its first page is read from the index, not sorted.
            models.Index(
                fields=["project", "priority", "-occurrences", "-last_seen", "id"], name="bug_stream_priority"
            ),
            # Free-text search (icontains on title and description) uses trigram indexes on
            # PostgreSQL, made by migration 0006 (SQLite scans).
        ]

    def __str__(self):
        return f"#{self.pk} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class BugEvent(models.Model):
    """Append-only history of a bug: who, when, which field, from what, to what (and why)."""

    bug = models.ForeignKey(Bug, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    field = models.CharField(max_length=32)
    from_value = models.TextField(blank=True, default="")
    to_value = models.TextField(blank=True, default="")
    note = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["bug_id", "id"]
        indexes = [models.Index(fields=["bug", "id"], name="bugevent_bug_id")]


class Comment(models.Model):
    bug = models.ForeignKey(Bug, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    mentions = models.ManyToManyField(settings.AUTH_USER_MODEL, through="BugCommentMention", related_name="+")

    class Meta:
        ordering = ["bug_id", "id"]


class BugCommentMention(models.Model):
    """One member named with @username in a bug comment (mailed once, when the comment was posted)."""

    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="mention_rows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comment", "user"], name="bug_comment_mention_once")]
        indexes = [models.Index(fields=["user", "created_at"], name="bug_mention_user_time")]


class FailureSource(models.TextChoices):
    REPORT = "report", "Reported"
    GROUND_TRUTH = "ground_truth", "Ground truth disagreed with the prediction"


class FailureExample(models.Model):
    """A concrete failing input of a bug: an Item of the project (a reported payload becomes one),
    the model version, what it predicted and what was expected (null: not known yet)."""

    bug = models.ForeignKey(Bug, on_delete=models.CASCADE, related_name="failures")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="bug_failures")
    external_id = models.CharField(max_length=255, blank=True, default="")
    payload = models.JSONField(null=True, blank=True)  # as reported; null when only an item was referenced
    model_version = models.CharField(max_length=128, blank=True, default="")
    predicted_label = models.CharField(max_length=64, blank=True, default="")
    expected_label = models.CharField(max_length=64, null=True, blank=True)
    predicted_at = models.DateTimeField(null=True, blank=True)
    # When the failure happened: the prediction's time when known, else when its ground truth
    # arrived, else when it was filed. Bug.first_seen / last_seen and the occurrence rows follow it.
    occurred_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=FailureSource.choices, default=FailureSource.REPORT)
    # For automatically filed failures: the LabelChange that revealed it (exactly-once filing).
    label_change_seq = models.BigIntegerField(null=True, blank=True)
    # The bug it was filed into, when a merge moved it elsewhere (null: filed into `bug`); an
    # unmerge moves it back (bugqueue.services.merge).
    origin_bug = models.ForeignKey(Bug, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["bug_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "label_change_seq", "model_version"],
                condition=Q(label_change_seq__isnull=False),
                name="failure_once_per_label_change",
            ),
        ]
        indexes = [
            models.Index(fields=["bug", "id"], name="failure_bug_id"),
            models.Index(fields=["bug", "occurred_at"], name="failure_bug_occurred"),
            # A bug's breakdown (counts by model version, predicted and expected label) from the
            # index alone, without visiting a large bug's rows.
            models.Index(
                fields=["bug", "model_version", "predicted_label", "expected_label"],
                name="failure_bug_breakdown",
                include=["occurred_at"],
            ),
        ]


class BugOccurrence(models.Model):
    """Occurrences of a bug at one time: a report without failures (seen_at: when it was filed), or
    the failures of one filing that happened on one UTC day (seen_at: the earliest of them). The
    source of truth for Bug.occurrences (reconciled periodically) and the occurrences-over-time chart."""

    bug = models.ForeignKey(Bug, on_delete=models.CASCADE, related_name="occurrence_rows")
    count = models.PositiveIntegerField()
    seen_at = models.DateTimeField()
    # As FailureExample.origin_bug: the bug it was filed into when a merge moved it.
    origin_bug = models.ForeignKey(Bug, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["bug_id", "id"]
        indexes = [models.Index(fields=["bug", "seen_at"], include=["count"], name="occurrence_bug_time_count")]


class BugMerge(models.Model):
    """One bug merged into another (Sentry's merge): the source became a duplicate of the target and
    its failures and occurrence rows moved there (each keeps the bug it was filed into in
    `origin_bug`). Later reports of the source's fingerprint follow `duplicate_of` to the target.
    `source_before` and `tags_added` let an unmerge put everything back exactly; comments stay on
    the source. At most one merge of a bug is in force (not unmerged) at a time."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey(Bug, on_delete=models.CASCADE, related_name="merged_in")
    source = models.ForeignKey(Bug, on_delete=models.CASCADE, related_name="merged_into")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    failures = models.PositiveIntegerField(default=0)  # failure examples moved
    occurrences = models.PositiveIntegerField(default=0)  # occurrences moved (sum of the rows' counts)
    tags_added = models.JSONField(default=list)  # tag ids the target got from the source
    # The source's closing fields before the merge (status, resolution, ...), restored by an unmerge.
    source_before = models.JSONField(default=dict)
    target_first_seen = models.DateTimeField()
    target_last_seen = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    unmerged_at = models.DateTimeField(null=True, blank=True)
    unmerged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source"], condition=Q(unmerged_at__isnull=True), name="bugmerge_one_in_force_per_source"
            ),
        ]


class BugProjectSettings(models.Model):
    """Per-project bug-queue settings (no row means the defaults), and the automatic filer's cursor."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="bug_settings")
    auto_file_failed_predictions = models.BooleanField(default=True)
    # Label changes with seq <= this have been examined for failed predictions (commit-order cursor).
    filed_through_seq = models.BigIntegerField(default=0)
    # Items of resolved bugs that get their label join datasets in batches: the first such label
    # schedules an absorb pass this many seconds later (0: at once); the pass writes at most one
    # version per dataset. absorb_due_at is when the scheduled pass runs (null: none scheduled).
    dataset_batch_seconds = models.PositiveIntegerField(default=600)
    absorb_due_at = models.DateTimeField(null=True, blank=True)
    # An evaluation flags a slice whose accuracy dropped by more than this against the baseline.
    slice_drop_threshold = models.FloatField(default=0.05)
    updated_at = models.DateTimeField(auto_now=True)


class Digest(models.Model):
    """The stored weekly digest of a project (built by Celery beat, mailed to its managers)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="bug_digests")
    week_start = models.DateField()  # the Monday of the ISO week
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    sent_to = models.JSONField(default=list)

    class Meta:
        ordering = ["project_id", "-week_start"]
        constraints = [models.UniqueConstraint(fields=["project", "week_start"], name="digest_once_per_week")]

    @property
    def week_label(self) -> str:
        year, week, _ = self.week_start.isocalendar()
        return f"{year}-W{week:02d}"
