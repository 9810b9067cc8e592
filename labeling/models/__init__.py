"""Labeling models, one module per area; every model is re-exported here.

Add a new area as `labeling/models/<area>.py` and one import line below.
"""

from .accounts import ApiToken, TokenKind, password_stamp  # noqa: F401
from .annotation_edits import AnnotationEdit  # noqa: F401,E402
from .comments import CommentMention, ItemComment  # noqa: F401
from .core import *  # noqa: F401,F403
from .core import (  # noqa: F401
    LABEL_KEY_RE,
    AcceptMode,
    Annotation,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    GroundTruth,
    GroundTruthMethod,
    GuidelineRevision,
    HealthCheck,
    Item,
    ItemStatus,
    LabelChange,
    LabelClass,
    LabelOperation,
    LabelOperationKind,
    LabelSequence,
    Membership,
    Prediction,
    Project,
    QueueOrder,
    Role,
)
from .data_quality import BatchCheckStatus, BatchProfile  # noqa: F401,E402
from .export import Export, ExportFormat, ExportGrant, ExportStatus  # noqa: F401
from .feedback import (  # noqa: F401
    HUMAN_CHANNEL,
    IMPORTED_CHANNEL,
    FeedbackBacklogBin,
    FeedbackDelayBin,
    FeedbackDirtyDay,
    FeedbackState,
    GroundTruthObservation,
    ObservationOutcome,
)
from .imports import ImportFormat, ImportJob, ImportRejection, ImportStatus  # noqa: F401,E402
from .quality import *  # noqa: F401,F403,E402
from .queue import REOPEN_VALID_SQL, AnnotatorProgress, ReopenRequest, reopen_pending, reopen_requested  # noqa: F401
from .registry import GATED_STAGES, ModelStageChange, ModelVersion, Stage  # noqa: F401,E402
from .review import ReviewDecision  # noqa: F401,E402
from .similarity import SimilarityIndex, SimilaritySegment  # noqa: F401,E402
from .work import DeferredTask  # noqa: F401,E402
