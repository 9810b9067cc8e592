"""Labeling domain: projects, label classes, members, items, predictions, leases, annotations,
ground truth and its append-only history. Invariants live in constraints; rules live in services.
Long because these models reference one another and are read together; other areas have their own
module (queue, quality, feedback, export, accounts, work)."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import OrderBy, Q
from django.db.models.functions import Cast, Collate

LABEL_KEY_RE = r"^[a-z0-9_-]{1,64}$"


class QueueOrder(models.TextChoices):
    FIFO = "fifo", "First in, first out"
    PRIORITY = "priority", "Priority (high first)"
    UNCERTAINTY = "uncertainty", "Least confident prediction first"
    OLDEST_PREDICTION = "oldest_prediction", "Oldest prediction first"


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    MANAGER = "manager", "Manager"


class AcceptMode(models.TextChoices):
    CALIBRATED = "calibrated", "Calibrated on reviewers' decisions (target error rate)"
    RAW_SCORE = "raw_score", "Raw CROWDLAB quality score >= accept_threshold"


class Project(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    annotations_per_item = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    # Adaptive overlap: items whose consensus is in doubt may get more, up to this many.
    max_annotations_per_item = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    lease_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(30), MaxValueValidator(86400)]
    )
    queue_order = models.CharField(max_length=32, choices=QueueOrder.choices, default=QueueOrder.FIFO)
    accept_threshold = models.FloatField(default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    # How a quality run decides to accept a consensus: "calibrated" derives the score threshold from
    # reviewers' decisions so that the estimated error of accepted items stays <= max_accept_error
    # (labeling.stats.calibration); "raw_score" accepts CROWDLAB quality >= accept_threshold as is.
    accept_mode = models.CharField(max_length=16, choices=AcceptMode.choices, default=AcceptMode.CALIBRATED)
    max_accept_error = models.FloatField(default=0.02, validators=[MinValueValidator(0.001), MaxValueValidator(0.5)])
    # Share of would-be-accepted items sent to review anyway, to measure the error of accepted items.
    audit_rate = models.FloatField(default=0.02, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)])
    # Feedback-delay SLO: `slo_quantile` of predictions have ground truth within `slo_target_seconds`.
    slo_quantile = models.FloatField(default=0.9, validators=[MinValueValidator(0.01), MaxValueValidator(0.999)])
    slo_target_seconds = models.PositiveIntegerField(default=7 * 86400)
    # Payload keys that define slices (subpopulations): evaluations report metrics per value, and the
    # live performance of the delay report can be split by one of them.
    slice_fields = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(annotations_per_item__gte=1) & Q(annotations_per_item__lte=10), name="project_overlap_range"
            ),
            models.CheckConstraint(
                condition=Q(max_annotations_per_item__gte=models.F("annotations_per_item")),
                name="project_max_overlap_gte_overlap",
            ),
            models.CheckConstraint(
                condition=Q(lease_seconds__gte=30) & Q(lease_seconds__lte=86400), name="project_lease_range"
            ),
            models.CheckConstraint(
                condition=Q(accept_threshold__gte=0) & Q(accept_threshold__lte=1), name="project_threshold_range"
            ),
            models.CheckConstraint(
                condition=Q(max_accept_error__gte=0.001) & Q(max_accept_error__lte=0.5),
                name="project_accept_error_range",
            ),
            models.CheckConstraint(condition=Q(audit_rate__gte=0) & Q(audit_rate__lte=0.5), name="project_audit_range"),
        ]

    def __str__(self):
        return self.name


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    key = models.CharField(max_length=64, validators=[RegexValidator(LABEL_KEY_RE)])
    name = models.CharField(max_length=200)
    guideline = models.TextField(blank=True, default="")
    hotkey = models.CharField(max_length=1, blank=True, default="")
    position = models.PositiveSmallIntegerField(default=0)
    # Retired labels are no longer offered to annotators or reviewers; annotations, ground truth and
    # history keep them. NULL: in use.
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="label_key_unique_per_project"),
            models.UniqueConstraint(
                fields=["project", "hotkey"], condition=~Q(hotkey=""), name="label_hotkey_unique_per_project"
            ),
        ]

    def __str__(self):
        return f"{self.key} ({self.name})"


class LabelOperationKind(models.TextChoices):
    ADD = "add", "Added"
    RENAME = "rename", "Renamed"
    RETIRE = "retire", "Retired"
    RESTORE = "restore", "Restored"
    MERGE = "merge", "Merged"


class LabelOperation(models.Model):
    """Append-only log of changes to a project's label set (who, when, what)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_operations")
    kind = models.CharField(max_length=16, choices=LabelOperationKind.choices)
    label_key = models.CharField(max_length=64)
    # merge: the label the rows moved into; rename: the new name (the key never changes).
    into_key = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=dict)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "id"]


class GuidelineRevision(models.Model):
    """Append-only history of a label's guideline (refined from review decisions)."""

    label = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="guideline_revisions")
    text = models.TextField()
    note = models.TextField(blank=True, default="")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label_id", "id"]


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="membership_unique")]


# Queue order of open items: reopened items first (lowest reopen_rank), then the project's ordering,
# ties to the items closest to completion, then id. The ordering is one number per item, QueueKey,
# computed from the item's own columns and its `queue_order` (the project's, copied while the item is
# open): so two partial indexes serve every ordering, one for untouched ("fresh") open items and one
# for touched ones, plus touched items grouped by who touched them (not one index per ordering: each
# would cost every item entering the open set more index entries). labeling.services.queue.claim writes
# the same ORDER BY; keep the two in step.
QUEUE_KEY_SQL = (
    "(CASE {a}queue_order WHEN 'priority' THEN -({a}priority)::float8 WHEN 'uncertainty' THEN -{a}uncertainty "
    "WHEN 'oldest_prediction' THEN extract(epoch FROM {a}first_predicted_at - '1970-01-01 00:00:00+00'::timestamptz)::float8 "
    "ELSE extract(epoch FROM {a}created_at - '1970-01-01 00:00:00+00'::timestamptz)::float8 END)"
)


class QueueKey(models.Func):
    """An open item's place in its project's ordering, lowest first (NULL last): seconds since the
    epoch of created_at (fifo) or first_predicted_at (oldest_prediction), -priority, -uncertainty.
    PostgreSQL only: SQLite, which serves the queue with a portable ORM query, indexes created_at."""

    output_field = models.FloatField()

    def as_sql(self, compiler, connection, **extra_context):
        if connection.vendor == "postgresql":
            return QUEUE_KEY_SQL.format(a=""), []
        return "created_at", []


class QueueIndex(models.Index):
    """A btree index that keeps its NULLS LAST and COLLATE "C" clauses on PostgreSQL and drops them on
    SQLite, which cannot index the first and has no such collation (there the index only speeds up
    the zero-setup demo)."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "sqlite":
            # A plain index built from the same expressions minus those clauses (a Statement, not a
            # string: SQLite migrations that rebuild the table rename its references).
            def plain(e):
                if isinstance(e, OrderBy):
                    return OrderBy(plain(e.expression), descending=e.descending)
                return e.get_source_expressions()[0] if isinstance(e, Collate) else e

            sqlite_index = models.Index(*[plain(e) for e in self.expressions], name=self.name, condition=self.condition)
            return sqlite_index.create_sql(model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)


# The queue's loose index scan over the distinct `touchers` sets compares them as text in byte order:
# a btree over the jsonb itself would compare jsonb containers at every step, for every item entering
# the open set.
TOUCHERS_KEY_SQL = '(touchers::text) COLLATE "C"'


def queue_indexes():
    open_q = Q(status="open")
    cols = (
        models.F("project"),
        models.F("reopen_rank").asc(nulls_last=True),
        OrderBy(QueueKey(), nulls_last=True),
        models.F("annotation_count").desc(),
        models.F("id"),
    )
    return [
        QueueIndex(*cols, name="item_q_fresh", condition=open_q & Q(touchers__isnull=True)),
        QueueIndex(*cols, name="item_q_touched", condition=open_q & Q(touchers__isnull=False)),
        QueueIndex(
            models.F("project"),
            Collate(Cast("touchers", models.TextField()), "C"),
            models.F("id"),
            name="item_q_groups",
            condition=open_q & Q(touchers__isnull=False),
        ),
    ]


class ItemStatus(models.TextChoices):
    OPEN = "open", "Open (needs annotations)"
    DISPUTED = "disputed", "Disputed (needs review)"
    RESOLVED = "resolved", "Resolved (has ground truth)"
    CONFLICT = "conflict", "Conflict (imported label disagrees with a human decision)"


class Item(models.Model):
    # No index of its own: the unique (project, external_id) index serves project lookups.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    external_id = models.CharField(max_length=255)
    payload = models.JSONField(default=dict)
    priority = models.IntegerField(default=0)
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.OPEN)
    # How many annotations this item needs (starts at the project's overlap; adaptive overlap raises it).
    required_annotations = models.PositiveSmallIntegerField(default=3)
    # Stored counter, changed only with F() by the annotation service; reconciled periodically.
    annotation_count = models.PositiveIntegerField(default=0)
    # Denormalised from the newest production prediction, for queue ordering.
    uncertainty = models.FloatField(null=True, blank=True)
    first_predicted_at = models.DateTimeField(null=True, blank=True)
    # Set when a quality run reopens a doubtful item for one more annotation (adaptive overlap):
    # such items are served before fresh ones, lowest rank first (cleanlab's active-learning order).
    reopen_rank = models.FloatField(null=True, blank=True)
    # Sorted ids of the annotators who hold or held an annotate lease on this item (NULL: nobody yet).
    # Written by the queue under the item's row lock; lets a claim skip "mine" and "fresh" items by index.
    touchers = models.JSONField(null=True, blank=True, default=None)
    # The project's queue_order, copied when the item enters the queue (ingestion, a quality run's
    # reopen) and on every open item when the project's changes: the queue indexes order by it.
    queue_order = models.CharField(
        max_length=20, choices=QueueOrder.choices, default=QueueOrder.FIFO, db_default=QueueOrder.FIFO
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="item_external_id_unique_per_project"),
        ]
        indexes = [
            models.Index(fields=["project", "status", "id"], name="item_project_status_id"),
            *queue_indexes(),
        ]

    def __str__(self):
        return f"{self.project_id}:{self.external_id}"

    @property
    def text(self):
        value = self.payload.get("text") if isinstance(self.payload, dict) else None
        return value if isinstance(value, str) else ""


class Prediction(models.Model):
    # No index of its own: the unique (item, model_version) index serves item lookups.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions", db_index=False)
    model_version = models.CharField(max_length=128)
    label = models.CharField(max_length=64)
    probabilities = models.JSONField(null=True, blank=True)
    # The same probabilities as big-endian float64 in the project's label order (labels never change
    # after a project is created), written with them by ingestion: bulk reads take numbers straight
    # from here instead of parsing jsonb. NULL: read the jsonb.
    vector = models.BinaryField(null=True, blank=True, editable=False)
    predicted_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "model_version"], name="prediction_unique_per_model_version"),
        ]
        indexes = [
            # A quality run reads every annotated item's newest prediction with probabilities: this
            # index holds them in that order with what the run needs, so the read is an index-only
            # scan merged with the items, without the table's pages (their jsonb) and without a sort.
            # Costs one more index entry per prediction written.
            models.Index(
                fields=["item", "-predicted_at", "-id"],
                name="prediction_latest",
                include=["model_version", "vector"],
                condition=models.Q(probabilities__isnull=False),
            ),
        ]

    @property
    def confidence(self):
        if self.probabilities:
            return max(self.probabilities.values())
        return None


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class AssignmentKind(models.TextChoices):
    ANNOTATE = "annotate", "Annotate"
    REVIEW = "review", "Review"


class Assignment(models.Model):
    """A lease: one annotator may work on one item until expires_at."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    kind = models.CharField(max_length=16, choices=AssignmentKind.choices, default=AssignmentKind.ANNOTATE)
    status = models.CharField(max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            # An annotator is never handed the same item twice (for the same kind of work).
            models.UniqueConstraint(fields=["item", "annotator", "kind"], name="assignment_once_per_annotator"),
        ]
        indexes = [
            models.Index(fields=["annotator", "status"], name="assignment_annotator_status"),
            models.Index(fields=["item", "status"], name="assignment_item_status"),
            models.Index(fields=["status", "expires_at"], name="assignment_status_expiry"),
            # Slots an item's active leases take (the queue counts the unexpired ones per candidate).
            models.Index(
                fields=["item", "kind", "expires_at"], name="assignment_active_slots", condition=Q(status="active")
            ),
        ]


class Annotation(models.Model):
    # The item's project, copied (an item never changes project): per-project reads (staffing sample,
    # managers' list, agreement) go straight to (project, id), not through every project's annotations.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotations")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotation"
    )
    label = models.CharField(max_length=64)
    seconds_spent = models.FloatField(null=True, blank=True)
    # Stored beyond what the item needed (lease expired and someone else filled the slot): kept, never lost.
    is_surplus = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="annotation_once_per_annotator"),
        ]
        indexes = [
            models.Index(fields=["annotator", "created_at"], name="annotation_annotator_time"),
            models.Index(fields=["project", "id"], name="annotation_project_id"),
        ]


class GroundTruthMethod(models.TextChoices):
    UNANIMOUS = "unanimous", "Unanimous"
    CONSENSUS = "consensus", "Consensus (cleanlab)"
    ADJUDICATED = "adjudicated", "Adjudicated by a reviewer"
    IMPORTED = "imported", "Imported from production"
    # Only in the label history: a reviewer's decision was undone and the item has no ground truth again.
    RETRACTED = "retracted", "Retracted (a decision was undone)"


class GroundTruth(models.Model):
    """The current resolved label of an item (one per item). Every change is in LabelChange."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="ground_truth", primary_key=True)
    label = models.CharField(max_length=64)
    method = models.CharField(max_length=16, choices=GroundTruthMethod.choices)
    score = models.FloatField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField()
    source = models.CharField(max_length=128, blank=True, default="")
    note = models.TextField(blank=True, default="")
    # When ground truth first arrived for this item (never moves once set): the end of the feedback delay.
    first_arrived_at = models.DateTimeField()


class LabelChange(models.Model):
    """Append-only label history. `seq` is per project and assigned in commit order (see
    labeling.services.ground_truth), so `since=<seq>` paging never misses or repeats a change."""

    # Foreign keys without their own indexes: (project, seq) and (item, seq) below serve both. And
    # without database constraints: a row is only ever written by ground_truth_set_many, for items it
    # has just locked, and the commit-time checks (one query per key per row) would run inside the label
    # sequence's lock. Deleting an item or a project through Django still deletes its history.
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="label_changes", db_index=False, db_constraint=False
    )
    seq = models.BigIntegerField()
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="label_changes", db_index=False, db_constraint=False
    )
    # The item's external_id (never changes: it is the ingestion key), copied so that reading the
    # history (the export's hot path) is one index range scan with no join.
    external_id = models.CharField(max_length=255, default="")
    label = models.CharField(max_length=64)
    previous_label = models.CharField(max_length=64, blank=True, default="")
    method = models.CharField(max_length=16, choices=GroundTruthMethod.choices)
    score = models.FloatField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    annotators = models.JSONField(default=list)
    model_version = models.CharField(max_length=128, blank=True, default="")
    source = models.CharField(max_length=128, blank=True, default="")
    note = models.TextField(blank=True, default="")
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["project_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["project", "seq"], name="label_change_seq_unique")]
        # "Did this item change again later?" (compact exports) is an index-only probe.
        indexes = [models.Index(fields=["item", "seq"], name="label_change_item_seq")]


class LabelSequence(models.Model):
    """Per-project counter for LabelChange.seq; its row lock orders label changes by commit."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="label_sequence")
    last_seq = models.BigIntegerField(default=0)


class HealthCheck(models.Model):
    """Written by the health task: proves a worker reached the database through the broker."""

    token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
