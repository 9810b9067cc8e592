"""A label the annotators agreed on, contradicted by the run's consensus: it goes to a person, keeps
its ground truth until then, and the reviewer's decision settles it."""

import numpy as np
import pytest

from labeling.models import GroundTruth, Item, QualityItemResult, ReopenRequest, ReviewSend
from labeling.services.quality.plan import plan_outcomes
from labeling.services.quality.snapshot import Snapshot
from labeling.services.resolution import item_resolve, review_next
from labeling.stats import consensus
from tests.labeling.factories import annotators, crowd_project, load_crowd, simulate_crowd
from tests.labeling.services.quality.helpers import ACCURACIES, results_by_item, run_now


def _snap(status, gt_label, gt_method, n_annotators=3, labels=None):
    n = len(status)
    return Snapshot(
        project_id=1,
        label_keys=["bug", "feature", "billing"],
        snapshot_at=None,
        max_annotation_id=None,
        item_ids=np.arange(1, n + 1),
        annotator_ids=np.arange(1, n_annotators + 1),
        labels=np.zeros((n, n_annotators)) if labels is None else np.array(labels, dtype=float),
        n_annotations=n * n_annotators,
        n_ignored=0,
        prod_probs=None,
        annotator_members=np.arange(1, n_annotators + 2),  # one annotator left to ask
        status=np.array(status, dtype=object),
        required=np.full(n, 3),
        annotation_count=np.full(n, n_annotators),
        gt_label=np.array(gt_label, dtype=object),
        gt_method=np.array(gt_method, dtype=object),
        version=np.zeros(n, dtype=np.int64),
    )


def _scores(consensus_idx, quality, agreement, num_annotations):
    n = len(consensus_idx)
    return consensus.CrowdScores(
        method="crowdlab",
        consensus=np.array(consensus_idx),
        quality=np.array(quality, dtype=float),
        agreement=np.array(agreement, dtype=float),
        num_annotations=np.array(num_annotations),
        active_learning=np.zeros(n),
        label_issue=np.zeros(n, dtype=bool),
        annotator_quality=np.zeros(3),
        annotator_agreement=np.zeros(3),
        annotator_worst_class=np.zeros(3, dtype=int),
        annotator_num_labeled=np.zeros(3, dtype=int),
    )


def test_plan_sends_a_contradicted_agreement_to_review_and_keeps_the_rest():
    snap = _snap(
        status=["resolved", "resolved", "resolved", "resolved", "resolved", "resolved"],
        gt_label=["bug", "bug", "bug", "bug", "bug", "bug"],
        gt_method=["unanimous", "unanimous", "consensus", "adjudicated", "unanimous", "unanimous"],
    )
    scores = _scores(
        consensus_idx=[1, 0, 1, 1, 0, 1],  # feature, bug, feature, feature, bug, feature
        quality=[0.4, 0.3, 0.5, 0.2, 0.95, 0.4],
        agreement=[0.0, 1.0, 0.0, 0.0, 1.0, 0.0],
        num_annotations=[3, 3, 4, 3, 3, 1],
    )
    plan = plan_outcomes(snap, scores, accept_threshold=0.7, max_annotations=5)
    assert plan.outcome.tolist() == [
        "review",  # all three said bug, the consensus is feature: a person decides (never reopened)
        "kept",  # the consensus agrees with the annotators, whatever its score
        "review",  # a run's accepted label that a later run contradicts
        "kept",  # a reviewer's decision stands
        "kept",
        "reopened",  # one annotator's doubted label: ask one more, as before
    ]
    assert plan.actionable.tolist() == [True, False, True, False, False, True]


def test_a_later_run_leaves_a_doubted_agreement_in_review():
    bug, feature = 0, 1
    snap = _snap(
        status=["disputed", "disputed", "disputed"],
        gt_label=["bug", "bug", "bug"],
        gt_method=["unanimous", "unanimous", "consensus"],
        labels=[[bug, bug, bug], [bug, feature, bug], [bug, feature, bug]],
    )
    scores = _scores(
        consensus_idx=[feature, feature, feature],
        quality=[0.3, 0.3, 0.3],
        agreement=[0.0, 1 / 3, 1 / 3],
        num_annotations=[3, 3, 3],
    )
    plan = plan_outcomes(snap, scores, accept_threshold=0.7, max_annotations=5)
    assert plan.outcome.tolist() == [
        "review",  # still waiting for the reviewer: not reopened
        "reopened",  # a stale single-label ground truth the annotators no longer agree on: disputed as usual
        "review",  # a run's accepted label another run contradicts, waiting for the reviewer
    ]


@pytest.mark.django_db
def test_no_unanimous_label_the_consensus_rejects_is_kept_silently():
    project, manager = crowd_project(k=4, accept_threshold=0.7)
    users = annotators(project, 10)
    crowd = simulate_crowd(n_items=400, accuracies=ACCURACIES, n_classes=4, per_item=3, seed=3)
    load_crowd(project, users, crowd)
    unanimous = dict(
        GroundTruth.objects.filter(item__project=project, method="unanimous").values_list("item_id", "label")
    )

    run = run_now(project)
    assert run.status == "done", run.error
    res = results_by_item(run)
    doubted = {pk for pk, label in unanimous.items() if res[pk].consensus_label != label}
    assert doubted, "the simulated crowd has unanimous items the consensus rejects"
    for pk in unanimous:
        r = res[pk]
        if pk in doubted:
            assert r.agreement == 0 and r.outcome == "review"
        else:
            assert r.outcome == "kept"
    # The label stays as it is until a reviewer decides.
    assert dict(GroundTruth.objects.filter(item_id__in=doubted).values_list("item_id", "label")) == {
        pk: unanimous[pk] for pk in doubted
    }
    assert set(GroundTruth.objects.filter(item_id__in=doubted).values_list("method", flat=True)) == {"unanimous"}
    assert set(Item.objects.filter(pk__in=doubted).values_list("status", flat=True)) == {"disputed"}
    assert run.to_review == QualityItemResult.objects.filter(run=run, outcome="review").count()
    # Each move to review left its record: from which status, by which run, why.
    sends = list(ReviewSend.objects.filter(item_id__in=doubted).values_list("item_id", "from_status", "source"))
    assert sorted(sends) == sorted((pk, "resolved", f"quality-run:{run.pk}") for pk in doubted)
    assert all(f"Quality run #{run.pk}" in r for r in ReviewSend.objects.values_list("reason", flat=True))

    # A later run leaves them waiting for the reviewer (never reopened for more annotations).
    later = results_by_item(run_now(project))
    assert {later[pk].outcome for pk in doubted} == {"review"}
    assert not ReopenRequest.objects.filter(item_id__in=doubted).exists()
    assert set(GroundTruth.objects.filter(item_id__in=doubted).values_list("method", flat=True)) == {"unanimous"}

    # The review queue serves every one of them; the reviewer's decision is the ground truth.
    served = set()
    for _ in range(1000):  # until the queue is empty
        lease = review_next(project=project, reviewer=manager)
        if lease is None:
            break
        served.add(lease.item_id)
        item_resolve(item=lease.item, reviewer=manager, label=res[lease.item_id].consensus_label)
    assert doubted <= served
    for gt in GroundTruth.objects.filter(item_id__in=doubted):
        assert (gt.method, gt.label) == ("adjudicated", res[gt.item_id].consensus_label)
    assert set(Item.objects.filter(pk__in=doubted).values_list("status", flat=True)) == {"resolved"}

    # A later run keeps the reviewer's decision.
    again = results_by_item(run_now(project))
    assert {again[pk].outcome for pk in doubted} == {"kept"}
