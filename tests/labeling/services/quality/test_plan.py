"""Quality runs: correctness on a simulated crowd and the outcome each item gets (accept, reopen, review, keep)."""

import warnings

import numpy as np
import pytest
from scipy.stats import spearmanr

from labeling.api.serializers import ItemOutput
from labeling.models import (
    Annotation,
    GroundTruth,
    Item,
    LabelChange,
    QualityAnnotatorStat,
    QualityItemResult,
    ReopenRequest,
    Role,
)
from labeling.selectors.projects import item_list, project_list_with_counts
from labeling.selectors.quality import review_queue_size
from labeling.services.queue.claim import assignment_claim_next
from tests.labeling.factories import (
    UserFactory,
    add_member,
    annotate,
    annotators,
    crowd_project,
    load_crowd,
    simulate_crowd,
)
from tests.labeling.services.quality.helpers import ACCURACIES, majority_vote_accuracy, results_by_item, run_now


@pytest.mark.django_db
def test_simulated_crowd_consensus_is_cleanlabs_and_beats_majority_vote():
    from cleanlab.multiannotator import get_label_quality_multiannotator

    project, _ = crowd_project(k=5)
    users = annotators(project, 10)
    crowd = simulate_crowd(n_items=1000, accuracies=ACCURACIES, n_classes=5, per_item=3, seed=4, model_accuracy=0.8)
    items = load_crowd(project, users, crowd)
    run = run_now(project)
    assert run.status == "done", run.error
    assert (run.method, run.pred_probs_source, run.scored, run.n_annotators) == ("crowdlab", "production", 1000, 10)

    # cleanlab on the very same inputs (annotator columns in user-id order, the stored probabilities).
    pp = crowd.pred_probs / crowd.pred_probs.sum(axis=1, keepdims=True)
    np.random.seed(run.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = get_label_quality_multiannotator(
            crowd.labels, pp, consensus_method="best_quality", quality_method="crowdlab", verbose=False
        )
    keys = ["c0", "c1", "c2", "c3", "c4"]
    got = results_by_item(run)
    ours = np.array([keys.index(got[it.pk].consensus_label) for it in items])
    theirs = expected["label_quality"]["consensus_label"].to_numpy()
    assert (ours == theirs).all()
    assert np.allclose(
        [got[it.pk].quality for it in items], expected["label_quality"]["consensus_quality_score"], atol=1e-9
    )

    loupe_acc = (ours == crowd.true).mean()
    mv_acc = majority_vote_accuracy(crowd)
    assert loupe_acc > mv_acc + 0.02, (loupe_acc, mv_acc)  # 0.922 vs 0.878 with this seed

    stats = {s.annotator_id: s.quality for s in QualityAnnotatorStat.objects.filter(run=run)}
    rho = spearmanr([stats[u.pk] for u in users], ACCURACIES).statistic
    assert rho >= 0.8, rho


@pytest.mark.django_db
def test_outcomes_accept_reopen_in_activelab_order_or_review():
    project, manager = crowd_project(k=4, accept_threshold=0.7)
    type(project).objects.filter(pk=project.pk).update(
        queue_order="uncertainty"
    )  # set after the items: reopen keys them
    project.refresh_from_db()
    users = annotators(project, 10)
    crowd = simulate_crowd(n_items=400, accuracies=ACCURACIES, n_classes=4, per_item=3, seed=3)
    items = load_crowd(project, users, crowd)
    disputed_before = set(Item.objects.filter(project=project, status="disputed").values_list("pk", flat=True))
    Item.objects.filter(pk__in=[it.pk for it in items[:100]]).update(required_annotations=5)  # at the maximum already
    settled_before = set(Item.objects.filter(project=project, status="resolved").values_list("pk", flat=True))
    changes_before = LabelChange.objects.filter(project=project).count()

    run = run_now(project)
    assert run.status == "done", run.error
    res = results_by_item(run)
    items_now = {it.pk: it for it in Item.objects.filter(project=project)}
    requests = {r.item_id: r for r in ReopenRequest.objects.filter(project=project)}
    assert run.auto_accepted and run.reopened_for_more and run.to_review
    assert len(requests) == run.reopened_for_more

    for pk in disputed_before:
        r, it = res[pk], items_now[pk]
        if r.outcome == "accepted":
            assert r.quality >= 0.7 and it.status == "resolved"
            gt = GroundTruth.objects.get(item_id=pk)
            assert (gt.method, gt.label, gt.score) == ("consensus", r.consensus_label, pytest.approx(r.quality))
            # The history names the annotators who chose the consensus label.
            chose = Annotation.objects.filter(item_id=pk, label=r.consensus_label).values_list(
                "annotator_id", flat=True
            )
            assert sorted(LabelChange.objects.get(item_id=pk, method="consensus").annotators) == sorted(chose)
        elif r.outcome == "reopened":
            # Not rewritten: a request for one more annotation waits for the item, in ActiveLab order.
            assert r.quality < 0.7 and it.status == "disputed" and it.required_annotations == 3
            req = requests[pk]
            assert (req.rank, req.required, req.count, req.project_id) == (
                pytest.approx(r.active_learning_score),
                3,
                3,
                project.pk,
            )
        else:
            assert r.outcome == "review" and r.quality < 0.7 and it.status == "disputed"
            assert it.required_annotations == 5  # the ones already at the maximum
    for pk in settled_before:
        # Kept, unless the annotators agreed on a label the run's consensus contradicts (sent to review).
        gt = GroundTruth.objects.get(item_id=pk)
        expected = "review" if res[pk].consensus_label != gt.label else "kept"
        assert res[pk].outcome == expected
    new = LabelChange.objects.filter(project=project).count() - changes_before
    assert new == run.auto_accepted
    assert set(LabelChange.objects.filter(project=project, method="consensus").values_list("source", flat=True)) == {
        f"quality-run:{run.pk}"
    }
    # Reopened items are served lowest ActiveLab score first; ActiveLab follows consensus quality.
    reopened = [res[pk] for pk in disputed_before if res[pk].outcome == "reopened"]
    by_rank = sorted(reopened, key=lambda r: requests[r.item_id].rank)
    assert by_rank[0].quality <= by_rank[-1].quality

    # Everywhere but in storage, a requested item is the open item it becomes.
    assert review_queue_size(project=project) == run.to_review
    listed = {it.pk: it for it in item_list(project=project, status="open")}
    assert set(listed) == set(requests)
    assert {ItemOutput(listed[pk]).data["status"] for pk in requests} == {"open"}
    assert {ItemOutput(listed[pk]).data["required_annotations"] for pk in requests} == {4}
    assert not set(requests) & {it.pk for it in item_list(project=project, status="disputed")}
    counts = project_list_with_counts(user=manager).get(pk=project.pk)
    assert (counts.n_open, counts.n_disputed) == (len(requests), run.to_review)

    # An annotator who has not labelled the best-ranked item gets it, and that opens it for a 4th.
    best = by_rank[0].item_id
    labelled = set(Annotation.objects.filter(item_id=best).values_list("annotator_id", flat=True))
    fresh = next(u for u in users if u.pk not in labelled)
    claim = assignment_claim_next(project=project, annotator=fresh)
    assert claim.item_id == best
    it = Item.objects.get(pk=best)
    assert (it.status, it.required_annotations, it.queue_order) == ("open", 4, "uncertainty")
    assert it.reopen_rank == pytest.approx(requests[best].rank)
    assert not ReopenRequest.objects.filter(item_id=best).exists()


@pytest.mark.django_db
def test_doubtful_items_go_to_review_when_no_annotator_is_left_to_ask():
    project, _ = crowd_project(k=3, accept_threshold=0.99)
    users = annotators(project, 3)  # all three annotators labeled every item: nobody left to ask
    a, b, c = users
    items = [Item.objects.create(project=project, external_id=f"x{i}", required_annotations=3) for i in range(6)]
    for it in items:
        annotate(it, [(a, "c0"), (b, "c1"), (c, "c0")])
    run = run_now(project)
    assert run.status == "done"
    assert (run.reopened_for_more, run.to_review) == (0, 6)
    assert set(Item.objects.filter(project=project).values_list("status", flat=True)) == {"disputed"}


@pytest.mark.django_db
def test_an_annotator_with_one_annotation():
    project, _ = crowd_project(k=3)
    users = annotators(project, 4)
    crowd = simulate_crowd(n_items=120, accuracies=[0.9, 0.8, 0.7], n_classes=3, per_item=2, seed=5)
    items = load_crowd(project, users[:3], crowd, settle_items=False)
    newcomer, loner = users[3], add_member(project, UserFactory(), Role.ANNOTATOR)
    annotate(items[0], [(newcomer, "c1")], settle_item=False)  # one annotation, on a shared item
    solo = Item.objects.create(project=project, external_id="solo", required_annotations=3)
    annotate(solo, [(loner, "c2")], settle_item=False)  # one annotation, overlapping nobody
    run = run_now(project)
    assert run.status == "done", run.error
    stats = {s.annotator_id: s for s in QualityAnnotatorStat.objects.filter(run=run)}
    assert stats[newcomer.pk].num_labeled == 1 and stats[newcomer.pk].quality is not None
    assert stats[loner.pk].num_labeled == 1 and stats[loner.pk].quality is None  # cleanlab: NaN, stored as unknown
    assert results_by_item(run)[solo.pk].outcome == "pending"


@pytest.mark.django_db
def test_two_classes():
    project, _ = crowd_project(k=2)
    users = annotators(project, 6)
    crowd = simulate_crowd(n_items=200, accuracies=np.linspace(0.6, 0.95, 6), n_classes=2, per_item=3, seed=9)
    load_crowd(project, users, crowd)
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.scored == 200 and set(
        QualityItemResult.objects.filter(run=run).values_list("consensus_label", flat=True)
    ) <= {"c0", "c1"}


@pytest.mark.django_db
def test_all_annotators_agreeing_changes_nothing():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    for i in range(30):
        annotate(
            Item.objects.create(project=project, external_id=f"u{i}", required_annotations=3),
            [(u, f"c{i % 3}") for u in users],
        )
    history = list(LabelChange.objects.filter(project=project).values_list("seq", "label", "method"))
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.scored == 30 and run.auto_accepted == run.to_review == run.reopened_for_more == 0
    assert set(QualityItemResult.objects.filter(run=run).values_list("outcome", flat=True)) == {"kept"}
    assert list(LabelChange.objects.filter(project=project).values_list("seq", "label", "method")) == history
    assert all(s.quality is not None and s.quality > 0.9 for s in QualityAnnotatorStat.objects.filter(run=run))


@pytest.mark.django_db
def test_items_with_one_annotation_mixed_with_items_with_three():
    project, _ = crowd_project(k=3)
    users = annotators(project, 6)
    crowd = simulate_crowd(n_items=150, accuracies=np.linspace(0.6, 0.95, 6), n_classes=3, per_item=3, seed=11)
    crowd.labels[:50, :] = np.where(np.arange(6) == 0, crowd.true[:50, None], np.nan)  # 50 items with 1 label (open)
    items = load_crowd(project, users, crowd)
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.method == "crowdlab" and run.scored == 150
    res = results_by_item(run)
    assert {res[it.pk].outcome for it in items[:50]} == {"pending"}  # still collecting annotations
    assert all(res[it.pk].num_annotations == 1 for it in items[:50])
    assert Item.objects.filter(pk__in=[it.pk for it in items[:50]], status="open", required_annotations=3).count() == 50


@pytest.mark.django_db
def test_single_annotated_projects_flag_label_issues():
    project, _ = crowd_project(k=3, annotations_per_item=1, max_annotations_per_item=2, accept_threshold=0.5)
    users = annotators(project, 4)
    crowd = simulate_crowd(
        n_items=300, accuracies=[0.95, 0.9, 0.6, 0.5], n_classes=3, per_item=1, seed=2, model_accuracy=0.9
    )
    items = load_crowd(project, users, crowd)
    assert GroundTruth.objects.filter(item__project=project, method="unanimous").count() == 300  # one label each
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.method == "single_label" and run.label_issues > 0
    res = results_by_item(run)
    flagged = [it for it in items if res[it.pk].outcome == "reopened"]
    assert flagged and run.reopened_for_more == len(flagged)
    wrong = {it.pk for i, it in enumerate(items) if np.nanmax(crowd.labels[i]) != crowd.true[i]}
    precision = np.mean([it.pk in wrong for it in flagged])
    assert precision > 0.5  # most of what it flags are real label errors
    it = Item.objects.get(pk=flagged[0].pk)
    assert (it.status, it.required_annotations) == ("open", 2)
