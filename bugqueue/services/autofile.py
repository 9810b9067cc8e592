"""Automatic filing: failed predictions found by new ground truth, and feedback-delay SLO breaches.

Labeling appends every ground-truth change to LabelChange with a per-project `seq` in commit order.
The filer keeps a cursor per project (`BugProjectSettings.filed_through_seq`) and reads the changes
after it in batches under the cursor's row lock, so each change is examined exactly once (signal,
retried task or periodic sweep alike). Disagreements with production predictions are grouped by
(model version, predicted -> actual), one bug per group: a burst of label changes makes a handful of
bugs, in a number of queries that depends on the groups, not the changes. A failure is dated by its
prediction (when production made it), not by the filing: see bugqueue.services.grouping.
"""

import hashlib
import logging
from collections import defaultdict

from django.db import transaction
from django.db.models import F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from bugqueue.models import (
    OPEN_STATUSES,
    Bug,
    BugEvent,
    BugKind,
    BugProjectSettings,
    Comment,
    FailureSource,
    Priority,
    Tag,
)
from bugqueue.services.grouping import BugDraft, FailureData, FilingResult, bug_file
from labeling.models import LabelChange, LabelClass, LabelSequence, Prediction, Project
from labeling.templatetags.loupe import duration

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000
FEEDBACK_DELAY_FINGERPRINT = "feedback_delay:slo"


def failed_prediction_fingerprint(*, model_version: str, predicted: str, actual: str) -> str:
    key = f"failed_prediction:{model_version}:{predicted}->{actual}"
    if len(key) <= 255:
        return key
    return "failed_prediction:" + hashlib.sha256(key.encode()).hexdigest()


def _lock_cursor(project_id: int) -> BugProjectSettings:
    row = BugProjectSettings.objects.select_for_update().filter(project_id=project_id).first()
    if row is None:
        BugProjectSettings.objects.bulk_create([BugProjectSettings(project_id=project_id)], ignore_conflicts=True)
        row = BugProjectSettings.objects.select_for_update().get(project_id=project_id)
    return row


@transaction.atomic
def _file_batch(*, project_id: int, batch_size: int):
    """Examine the next `batch_size` changes past the cursor: each item's newest change against its
    production predictions (every model version), each disagreement group filed with one bulk
    insert of its failures. When the project's switch is off the cursor still advances (turning it
    on files from then on). Returns (changes examined, filing results), or None when none wait."""
    cursor = _lock_cursor(project_id)
    changes = list(
        LabelChange.objects.filter(project_id=project_id, seq__gt=cursor.filed_through_seq)
        .order_by("seq")
        .values_list("seq", "item_id", "label", "changed_at")[:batch_size]
    )
    if not changes:
        return None
    results = []
    if cursor.auto_file_failed_predictions:
        newest = {}
        for seq, item_id, label, changed_at in changes:
            newest[item_id] = (seq, label, changed_at)  # ordered by seq: the last one wins
        groups = defaultdict(list)
        for item_id, external_id, mv, predicted, at in (
            Prediction.objects.filter(item_id__in=list(newest))
            .order_by("item_id", "model_version")
            .values_list("item_id", "item__external_id", "model_version", "label", "predicted_at")
        ):
            seq, truth, truth_at = newest[item_id]
            if truth and predicted != truth:  # "" is a retraction: the item has no ground truth again
                groups[(mv, predicted, truth)].append(
                    FailureData(
                        item_id=item_id,
                        external_id=external_id,
                        model_version=mv,
                        predicted_label=predicted,
                        expected_label=truth,
                        predicted_at=at,
                        source=FailureSource.GROUND_TRUTH,
                        label_change_seq=seq,
                        truth_at=truth_at,
                    )
                )
        if groups:
            names = dict(LabelClass.objects.filter(project_id=project_id).values_list("key", "name"))
            now = timezone.now()
            # Sorted: every filer takes the bugs' row locks in the same order (no deadlock).
            for mv, predicted, truth in sorted(groups):
                p_name, t_name = names.get(predicted, predicted), names.get(truth, truth)
                draft = BugDraft(
                    title=f"{mv} predicts {p_name} where the truth is {t_name}",
                    kind=BugKind.FAILED_PREDICTION,
                    description=(
                        f"Production model {mv} predicted '{predicted}' for items whose ground truth is "
                        f"'{truth}'. Filed automatically when the ground truth arrived."
                    ),
                    priority=Priority.P2,
                    model_version=mv,
                    note="Filed automatically: ground truth disagreed with production predictions.",
                )
                fp = failed_prediction_fingerprint(model_version=mv, predicted=predicted, actual=truth)
                results.append(
                    bug_file(
                        project_id=project_id,
                        fingerprint=fp,
                        draft=draft,
                        failures=groups[(mv, predicted, truth)],
                        now=now,
                        count_report=False,
                    )
                )
    cursor.filed_through_seq = changes[-1][0]
    cursor.save(update_fields=["filed_through_seq", "updated_at"])
    return len(changes), results


def failures_file_pending(*, project_id: int, batch_size: int = BATCH_SIZE, max_batches: int | None = None) -> dict:
    """File every failed prediction revealed by label changes not examined yet (idempotent).
    Each batch is its own transaction. Returns a summary."""
    summary = {"changes": 0, "failures": 0, "bugs": set(), "created": 0, "regressed": 0}
    if not Project.objects.filter(pk=project_id).exists():
        return summary
    batches = 0
    while max_batches is None or batches < max_batches:
        out = _file_batch(project_id=project_id, batch_size=batch_size)
        if out is None:
            break
        batches += 1
        n, results = out
        summary["changes"] += n
        for r in results:
            summary["failures"] += r.recorded
            summary["bugs"].add(r.bug.pk)
            summary["created"] += r.created
            summary["regressed"] += r.regressed
    if summary["failures"]:
        logger.info(
            "project %s: %s label changes examined, %s failed predictions filed into %s bugs",
            project_id,
            summary["changes"],
            summary["failures"],
            len(summary["bugs"]),
        )
    return summary


def projects_with_unfiled_changes() -> list[int]:
    """Projects whose label history has changes past the filer's cursor (for the sweep)."""
    filed = Subquery(
        BugProjectSettings.objects.filter(project_id=OuterRef("project_id")).values("filed_through_seq")[:1]
    )
    return list(
        LabelSequence.objects.annotate(filed=Coalesce(filed, Value(0)))
        .filter(last_seq__gt=F("filed"))
        .values_list("project_id", flat=True)
    )


# --- feedback-delay SLO ---------------------------------------------------------------------
@transaction.atomic
def feedback_slo_record(
    *, project_id: int, breached: bool, observed_seconds, target_seconds, quantile, now=None
) -> FilingResult | Bug | None:
    """A breach files (or adds an occurrence to, or reopens) the project's feedback_delay bug; a
    recovery adds a history row and a comment to the open one (people decide when to resolve)."""
    if not Project.objects.filter(pk=project_id).exists():
        return None
    now = now or timezone.now()
    try:
        share = f"{float(quantile):.0%}"
    except (TypeError, ValueError):
        share = str(quantile)
    text = (
        f"{share} of predictions should get their ground truth within {duration(target_seconds)}; "
        f"observed: {duration(observed_seconds)}."
    )
    if breached:
        tag_ids = tuple(Tag.objects.filter(slug="feedback_delay").values_list("pk", flat=True))
        draft = BugDraft(
            title="Feedback-delay SLO breached",
            kind=BugKind.FEEDBACK_DELAY,
            priority=Priority.P1,
            description="Ground truth arrives later than the project's feedback-delay SLO allows. " + text,
            tag_ids=tag_ids,
            note="Filed automatically: feedback-delay SLO breached. " + text,
        )
        result = bug_file(
            project_id=project_id, fingerprint=FEEDBACK_DELAY_FINGERPRINT, draft=draft, failures=[], now=now
        )
        if not result.created:
            BugEvent.objects.create(
                bug=result.bug, field="slo", from_value="", to_value="breached", note=text, created_at=now
            )
        return result
    bug = (
        Bug.objects.select_for_update()
        .filter(project_id=project_id, fingerprint=FEEDBACK_DELAY_FINGERPRINT, status__in=OPEN_STATUSES)
        .first()
    )
    if bug is None:
        return None
    BugEvent.objects.create(
        bug=bug, field="slo", from_value="breached", to_value="recovered", note=text, created_at=now
    )
    Comment.objects.create(bug=bug, author=None, body="Feedback-delay SLO recovered: " + text, created_at=now)
    return bug
