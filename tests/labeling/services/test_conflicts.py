"""A label claimed elsewhere that disagrees with the ground truth: kept, never applied; the item goes
to the review queue as a conflict."""

import pytest

from labeling.models import GroundTruth, GroundTruthObservation, Item, ItemStatus, LabelChange
from labeling.services.conflicts import ClaimedLabel, items_conflict_raise
from labeling.services.ground_truth import ground_truth_set
from tests.labeling.factories import ItemFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def test_only_disagreeing_claims_raise_conflicts_and_nothing_is_overwritten(
    project, django_capture_on_commit_callbacks
):
    disputed, agreeing, unlabeled = (ItemFactory(project=project) for _ in range(3))
    foreign = ItemFactory(project=ProjectFactory())
    for item in (disputed, agreeing, foreign):
        ground_truth_set(item=item, label="neg", method="imported")
    changes_before = LabelChange.objects.count()
    claims = [
        ClaimedLabel(disputed.pk, "pos"),
        ClaimedLabel(agreeing.pk, "neg"),
        ClaimedLabel(unlabeled.pk, "pos"),
        ClaimedLabel(foreign.pk, "pos"),
        ClaimedLabel(disputed.pk, ""),
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert items_conflict_raise(project_id=project.pk, claims=claims, source="bug:7") == [disputed.pk]
    assert callbacks == []  # no ground-truth change is announced
    assert items_conflict_raise(project_id=project.pk, claims=claims, source="bug:7") == [disputed.pk]  # idempotent

    statuses = dict(Item.objects.filter(pk__in=[disputed.pk, agreeing.pk, foreign.pk]).values_list("pk", "status"))
    assert statuses == {disputed.pk: ItemStatus.CONFLICT, agreeing.pk: ItemStatus.RESOLVED, foreign.pk: "resolved"}
    assert GroundTruth.objects.get(item=disputed).label == "neg"
    assert LabelChange.objects.count() == changes_before
    (obs,) = GroundTruthObservation.objects.all()
    assert (obs.item_id, obs.label, obs.source, obs.outcome, obs.external_id) == (
        disputed.pk,
        "pos",
        "bug:7",
        "conflict",
        disputed.external_id,
    )
