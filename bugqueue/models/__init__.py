"""Bug-queue models, one module per area, every model re-exported here: `bugs` (bugs, their events,
comments, failure examples, tags, settings and weekly digests) and `datasets` (versioned validation
datasets and the model evaluations run on them)."""

from .bugs import (  # noqa: F401
    CLOSED_STATUSES,
    OPEN_STATUSES,
    RESOLUTION_STATUS,
    Bug,
    BugCommentMention,
    BugEvent,
    BugKind,
    BugMerge,
    BugOccurrence,
    BugProjectSettings,
    BugStatus,
    Comment,
    Digest,
    FailureExample,
    FailureSource,
    Priority,
    Resolution,
    Tag,
)
from .datasets import (  # noqa: F401
    BugDatasetFlow,
    Dataset,
    DatasetMember,
    DatasetPending,
    DatasetVersion,
    Evaluation,
    EvaluationPrediction,
    EvaluationResult,
    FlowStatus,
    PendingReason,
    VersionReason,
)
