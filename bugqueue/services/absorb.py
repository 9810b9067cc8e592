"""Items of resolved bugs that waited (for a label, or for a reviewer to settle a conflict) join
their datasets in batches, so a dataset gets one version per batch, not one per labeled item.

A ground-truth change on a waiting item schedules one absorb pass for its project,
BugProjectSettings.dataset_batch_seconds later (0: at once), recorded in absorb_due_at; while a pass
is due later, further labels change nothing (they are absorbed by that pass). A pass clears the due
time it is running for, then writes at most one version per dataset holding every ready row of the
project. A row is ready when its item has ground truth and is not in conflict; it joins with the
item's current label (for a conflict: the reviewer's decision; a conflict that an import rather than
a person ended goes back to review) and keeps its bug. The database is the record: the periodic
sweep runs passes that are due and projects with ready rows and no pass scheduled (a lost message),
and two passes at once are safe (each dataset is absorbed under its row lock, reading the ready rows
after taking it).
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from bugqueue.models import (
    BugProjectSettings,
    Dataset,
    DatasetPending,
    DatasetVersion,
    PendingReason,
    VersionReason,
)
from bugqueue.services.datasets import Addition, dataset_version_create
from labeling.models import GroundTruthMethod, ItemStatus

log = logging.getLogger(__name__)

MAX_BUGS_IN_NOTE = 20


def ready_pending():
    """Waiting rows whose item has ground truth and no open conflict."""
    return DatasetPending.objects.filter(added_in__isnull=True, item__ground_truth__isnull=False).exclude(
        item__status=ItemStatus.CONFLICT
    )


def datasets_absorb_schedule(*, project_id: int, at_once: bool = False, now: datetime | None = None) -> int | None:
    """Schedule the project's absorb pass `dataset_batch_seconds` from now (at once with `at_once`),
    unless one is already due later. Returns the countdown in seconds to send the pass task with, or
    None when a pass was already scheduled (nothing to send)."""
    now = now or timezone.now()
    BugProjectSettings.objects.get_or_create(project_id=project_id)
    delay = (
        0 if at_once else BugProjectSettings.objects.values_list("dataset_batch_seconds", flat=True).get(pk=project_id)
    )
    # One conditional UPDATE: of two concurrent schedulers, the second finds the first's due time.
    scheduled = (
        BugProjectSettings.objects.filter(pk=project_id)
        .filter(Q(absorb_due_at__isnull=True) | Q(absorb_due_at__lte=now))
        .update(absorb_due_at=now + timedelta(seconds=delay))
    )
    return delay if scheduled else None


def datasets_absorb_pass(*, project_id: int, now: datetime | None = None) -> list[DatasetVersion] | None:
    """Absorb every ready row of the project: at most one new version per dataset. Returns the
    versions written, or None (nothing done) when the project's pass is due later than `now`."""
    now = now or timezone.now()
    due = BugProjectSettings.objects.filter(pk=project_id).values_list("absorb_due_at", flat=True).first()
    if due is not None and due > now:
        return None
    BugProjectSettings.objects.filter(pk=project_id, absorb_due_at__lte=now).update(absorb_due_at=None)
    _conflicts_reopen(project_id)
    dataset_ids = sorted(
        set(ready_pending().filter(dataset__project_id=project_id).values_list("dataset_id", flat=True).distinct())
    )
    versions = [v for v in (_absorb_dataset(dataset_id) for dataset_id in dataset_ids) if v is not None]
    if versions:
        log.info(
            "absorb pass of project %s: %s",
            project_id,
            ", ".join(f"dataset {v.dataset_id} v{v.number} (+{v.added})" for v in versions),
        )
    return versions


def _conflicts_reopen(project_id: int) -> None:
    """A waiting conflict whose item left the conflict state without a person deciding (a later
    import replaced the imported label with one that still disagrees with the failure) goes back to
    review instead of joining with that label."""
    from labeling.services.conflicts import ClaimedLabel, items_conflict_raise

    rows = list(
        ready_pending()
        .filter(
            dataset__project_id=project_id,
            reason=PendingReason.CONFLICT,
            item__ground_truth__method=GroundTruthMethod.IMPORTED,
        )
        .exclude(item__ground_truth__label=F("expected_label"))
        .values_list("item_id", "expected_label", "bug_id")
        .distinct()
    )
    by_source = {}
    for item_id, expected, bug_id in rows:
        by_source.setdefault(f"bug:{bug_id}" if bug_id else "bug", []).append(ClaimedLabel(item_id, expected))
    for source, claims in sorted(by_source.items()):
        items_conflict_raise(project_id=project_id, claims=claims, source=source)


def _note(bug_ids: list[int], anonymous: bool) -> str:
    if not bug_ids:
        return "Labeled later"
    shown = ", ".join(f"#{b}" for b in bug_ids[:MAX_BUGS_IN_NOTE])
    more = f" and {len(bug_ids) - MAX_BUGS_IN_NOTE} more" if len(bug_ids) > MAX_BUGS_IN_NOTE else ""
    rest = " (and items of deleted bugs)" if anonymous else ""
    return f"Labeled later for bug{'s' if len(bug_ids) > 1 else ''} {shown}{more}{rest}"


@transaction.atomic
def _absorb_dataset(dataset_id: int) -> DatasetVersion | None:
    dataset = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
    if dataset is None:
        return None
    # Read after the lock: a pass that held it before has committed, and its rows are no longer ready.
    rows = list(
        ready_pending()
        .filter(dataset_id=dataset_id)
        .order_by("pk")
        .values_list("pk", "item_id", "bug_id", "item__ground_truth__label")
    )
    if not rows:
        return None
    bug_ids = sorted({bug_id for _, _, bug_id, _ in rows if bug_id is not None})
    anonymous = any(bug_id is None for _, _, bug_id, _ in rows)
    version = dataset_version_create(
        dataset_id=dataset_id,
        reason=VersionReason.BUG_FOLLOWUP,
        bug_id=bug_ids[0] if len(bug_ids) == 1 and not anonymous else None,
        add=[Addition(item_id, label, bug_id) for _, item_id, bug_id, label in rows],
        note=_note(bug_ids, anonymous),
    )
    number = version.number if version is not None else Dataset.objects.get(pk=dataset_id).latest_version
    DatasetPending.objects.filter(pk__in=[pk for pk, _, _, _ in rows]).update(added_in=number)
    return version


def datasets_absorb_due_projects(*, now: datetime | None = None) -> list[int]:
    """Projects whose pass is due, and projects with ready rows but no pass scheduled."""
    now = now or timezone.now()
    due = set(BugProjectSettings.objects.filter(absorb_due_at__lte=now).values_list("pk", flat=True))
    scheduled = BugProjectSettings.objects.filter(pk=OuterRef("dataset__project_id"), absorb_due_at__isnull=False)
    lost = set(
        ready_pending()
        .exclude(Exists(scheduled))
        .values_list("dataset__project_id", flat=True)
        .distinct()
        .order_by("dataset__project_id")
    )
    return sorted(due | lost)
