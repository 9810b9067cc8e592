"""Labels claimed by another part of Loupe (a bug's failure says what the model should have
predicted) that disagree with an item's ground truth.

Such a claim never overwrites the ground truth, whatever its method: it is kept as a
GroundTruthObservation with outcome ``conflict`` (its source names the claimant, e.g. ``bug:21``),
and the item is marked ``conflict``, which puts it in the review queue exactly like late ground
truth that disagrees with a human decision. The reviewer's decision (item_resolve) ends the
conflict and is announced like any other ground-truth change.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from common.db.locks import lock_rows
from labeling.models import GroundTruth, GroundTruthObservation, Item, ItemStatus, ObservationOutcome
from labeling.services.ground_truth import Decision, ground_truth_set_many


@dataclass(frozen=True)
class ClaimedLabel:
    item_id: int
    label: str


@transaction.atomic
def items_conflict_raise(*, project_id: int, claims: list[ClaimedLabel], source: str, actor=None) -> list[int]:
    """For each claim whose label differs from its item's current ground truth: keep the claim as a
    ``conflict`` observation and mark the item ``conflict`` (review queue). Claims on items without
    ground truth, agreeing with it, or on items of another project are ignored. Idempotent: a claim
    recorded before is not stored twice, and an item already in conflict stays so.
    Returns the ids of the items in conflict because of these claims, sorted."""
    claims = [c for c in claims if c.label]
    if not claims:
        return []
    item_ids = sorted({c.item_id for c in claims})
    lock_rows(Item.objects.filter(pk__in=item_ids, project_id=project_id))
    current = {
        item_id: (label, method, external_id)
        for item_id, label, method, external_id in GroundTruth.objects.filter(
            item_id__in=item_ids, item__project_id=project_id
        ).values_list("item_id", "label", "method", "item__external_id")
    }
    now = timezone.now()
    observations, conflicted = {}, {}
    for c in claims:
        gt = current.get(c.item_id)
        if gt is None or gt[0] == c.label:
            continue
        conflicted[c.item_id] = gt
        observations[(c.item_id, c.label)] = GroundTruthObservation(
            project_id=project_id,
            item_id=c.item_id,
            external_id=gt[2],
            label=c.label,
            source=source[:64],
            observed_at=now,
            received_at=now,
            outcome=ObservationOutcome.CONFLICT,
            actor=actor,
        )
    if not conflicted:
        return []
    GroundTruthObservation.objects.bulk_create(list(observations.values()), ignore_conflicts=True)
    # Repeating the current label and method writes no label change; it only sets the status.
    ground_truth_set_many(
        project_id=project_id,
        decisions=[
            Decision(item_id=i, label=label, method=method, status=ItemStatus.CONFLICT)
            for i, (label, method, _) in sorted(conflicted.items())
        ],
        actor=actor,
    )
    return sorted(conflicted)
