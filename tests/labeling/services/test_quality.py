"""Quality runs: correctness on a simulated crowd, outcomes, edge cases, snapshots and concurrency."""

import threading
import warnings
from datetime import timedelta
from unittest import mock

import numpy as np
import pytest
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from scipy.stats import spearmanr

from labeling.stats import consensus
from common.db import parallel
from common.errors import Conflict
from labeling.models import (
    Annotation,
    GroundTruth,
    Item,
    ItemStatus,
    LabelChange,
    Prediction,
    QualityAnnotatorStat,
    QualityItemResult,
    QualityRun,
    QualitySettings,
    ReopenRequest,
    Role,
)
from labeling.services import quality as quality_service
from labeling.services.quality import (
    quality_on_item_disputed,
    quality_run_execute,
    quality_run_request,
    quality_results_prune,
    quality_runs_recover,
)
from labeling.api.serializers import ItemOutput
from labeling.selectors.projects import item_list, project_list_with_counts
from labeling.selectors.quality import review_queue_size
from labeling.services.queue.claim import assignment_claim_next
from labeling.services.resolution import item_resolve
from labeling.tasks import quality_run_task
from tests.labeling.factories import UserFactory, add_member
from tests.labeling.factories import annotate, annotators, crowd_project, load_crowd, simulate_crowd

ACCURACIES = np.linspace(0.55, 0.95, 10)


def run_now(project, **kw):
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk, **kw)
    return quality_run_execute(run_id=run.pk)


def results_by_item(run):
    return {r.item_id: r for r in QualityItemResult.objects.filter(run=run)}


def majority_vote_accuracy(crowd, seed=0):
    mv = consensus.majority_vote(crowd.labels, crowd.pred_probs.shape[1], rng=np.random.default_rng(seed))
    return (mv == crowd.true).mean()


# --- correctness on a simulated crowd -----------------------------------------------------------

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
            crowd.labels, pp, consensus_method="best_quality", quality_method="crowdlab", verbose=False)
    keys = ["c0", "c1", "c2", "c3", "c4"]
    got = results_by_item(run)
    ours = np.array([keys.index(got[it.pk].consensus_label) for it in items])
    theirs = expected["label_quality"]["consensus_label"].to_numpy()
    assert (ours == theirs).all()
    assert np.allclose([got[it.pk].quality for it in items], expected["label_quality"]["consensus_quality_score"], atol=1e-9)

    loupe_acc = (ours == crowd.true).mean()
    mv_acc = majority_vote_accuracy(crowd)
    assert loupe_acc > mv_acc + 0.02, (loupe_acc, mv_acc)  # 0.922 vs 0.878 with this seed

    stats = {s.annotator_id: s.quality for s in QualityAnnotatorStat.objects.filter(run=run)}
    rho = spearmanr([stats[u.pk] for u in users], ACCURACIES).statistic
    assert rho >= 0.8, rho


@pytest.mark.django_db
def test_without_predictions_an_out_of_sample_model_on_numeric_fields_is_used():
    project, _ = crowd_project(k=3)
    users = annotators(project, 10)
    crowd = simulate_crowd(n_items=600, accuracies=ACCURACIES, n_classes=3, per_item=3, seed=7)
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 2.0, (3, 4))
    feats = centers[crowd.true] + rng.normal(0, 1.0, (600, 4))
    payloads = [{f"f{j}": float(feats[i, j]) for j in range(4)} for i in range(600)]
    items = load_crowd(project, users, crowd, with_predictions=False, payloads=payloads)
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.pred_probs_source == "crossval_numeric"
    got = results_by_item(run)
    ours = np.array([int(got[it.pk].consensus_label[1:]) for it in items])
    assert (ours == crowd.true).mean() > majority_vote_accuracy(crowd)
    stats = {s.annotator_id: s.quality for s in QualityAnnotatorStat.objects.filter(run=run)}
    assert spearmanr([stats[u.pk] for u in users], ACCURACIES).statistic >= 0.8


@pytest.mark.django_db
def test_text_payloads_use_tfidf_and_a_class_nobody_chose_is_never_accepted():
    project, _ = crowd_project(k=4)
    users = annotators(project, 4)
    words = {0: "refund invoice charge", 1: "crash error broken", 2: "dark mode please"}
    rng = np.random.default_rng(0)
    items = []
    for i in range(60):
        true = i % 3
        item = Item.objects.create(project=project, external_id=f"t{i}", payload={"text": f"{words[true]} {rng.integers(1000)}"},
                                   required_annotations=3)
        chosen = [true, true, (true + 1) % 3] if i % 4 == 0 else [true, true, true]
        annotate(item, list(zip(users[:3], [f"c{c}" for c in chosen])))
        items.append(item)
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.pred_probs_source == "crossval_text"
    assert run.scored == 60
    assert not GroundTruth.objects.filter(item__project=project, label="c3").exists()
    assert not QualityItemResult.objects.filter(run=run, consensus_label="c3", outcome="accepted").exists()


# --- outcomes -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_outcomes_accept_reopen_in_activelab_order_or_review():
    project, manager = crowd_project(k=4, accept_threshold=0.7)
    type(project).objects.filter(pk=project.pk).update(queue_order="uncertainty")  # set after the items: reopen keys them
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
            chose = Annotation.objects.filter(item_id=pk, label=r.consensus_label).values_list("annotator_id", flat=True)
            assert sorted(LabelChange.objects.get(item_id=pk, method="consensus").annotators) == sorted(chose)
        elif r.outcome == "reopened":
            # Not rewritten: a request for one more annotation waits for the item, in ActiveLab order.
            assert r.quality < 0.7 and it.status == "disputed" and it.required_annotations == 3
            req = requests[pk]
            assert (req.rank, req.required, req.count, req.project_id) == (
                pytest.approx(r.active_learning_score), 3, 3, project.pk)
        else:
            assert r.outcome == "review" and r.quality < 0.7 and it.status == "disputed"
            assert it.required_annotations == 5  # the ones already at the maximum
    for pk in settled_before:
        assert res[pk].outcome == "kept"
    new = LabelChange.objects.filter(project=project).count() - changes_before
    assert new == run.auto_accepted
    assert set(LabelChange.objects.filter(project=project, method="consensus").values_list("source", flat=True)) == {f"quality-run:{run.pk}"}
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


class _Deadlock(Exception):
    sqlstate = "40P01"  # what psycopg's DeadlockDetected carries


@pytest.mark.django_db
def test_a_reopen_chunk_that_deadlocks_is_done_again_with_its_locks_taken_first(monkeypatch):
    """The UPDATE that moves items (a doubted single label back to the queue) takes its row locks as
    its plan walks the items in primary-key order; should it still deadlock, the chunk is rolled back
    and redone after an explicit locking pass."""
    from django.db import OperationalError

    project, _ = crowd_project(k=3, annotations_per_item=1, max_annotations_per_item=2, accept_threshold=0.5)
    users = annotators(project, 4)
    load_crowd(project, users, simulate_crowd(n_items=300, accuracies=[0.95, 0.9, 0.6, 0.5], n_classes=3, per_item=1,
                                              seed=2, model_accuracy=0.9))
    real, attempts = quality_service._set_status_once, []

    def deadlocks_once(snap, idx, **kw):  # noqa: ANN001
        attempts.append(kw["lock_first"])
        if not kw["lock_first"]:
            with transaction.atomic():  # as the real attempt: its transaction is rolled back
                Item.objects.filter(pk__in=snap.item_ids[idx].tolist()).update(status="open")
                try:
                    raise _Deadlock("deadlock detected")
                except _Deadlock as cause:
                    raise OperationalError("deadlock detected") from cause
        return real(snap, idx, **kw)

    monkeypatch.setattr(quality_service, "_set_status_once", deadlocks_once)
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.reopened_for_more and attempts[:2] == [False, True] and attempts.count(True) == attempts.count(False)
    res = results_by_item(run)
    for it in Item.objects.filter(project=project):
        if res[it.pk].outcome == "reopened":
            assert it.status == "open" and it.required_annotations == 2
            assert it.reopen_rank == pytest.approx(res[it.pk].active_learning_score)

    # Any other database error is not retried: the run fails with it.
    def fails(snap, idx, **kw):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(quality_service, "_set_status_once", fails)
    Item.objects.filter(project=project, status="open", annotation_count=1).update(status="resolved", required_annotations=1)
    run = run_now(project)
    assert run.status == "failed" and "server closed the connection" in run.error


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


# --- edge cases ---------------------------------------------------------------------------------

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
    assert run.scored == 200 and set(QualityItemResult.objects.filter(run=run).values_list("consensus_label", flat=True)) <= {"c0", "c1"}


@pytest.mark.django_db
def test_all_annotators_agreeing_changes_nothing():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    for i in range(30):
        annotate(Item.objects.create(project=project, external_id=f"u{i}", required_annotations=3),
                 [(u, f"c{i % 3}") for u in users])
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
    crowd = simulate_crowd(n_items=300, accuracies=[0.95, 0.9, 0.6, 0.5], n_classes=3, per_item=1, seed=2, model_accuracy=0.9)
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


@pytest.mark.django_db
def test_labels_no_longer_in_the_project_are_ignored_and_counted():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    item = Item.objects.create(project=project, external_id="x", required_annotations=3)
    annotate(item, [(users[0], "c0"), (users[1], "c1"), (users[2], "gone")])
    other = Item.objects.create(project=project, external_id="y", required_annotations=3)
    annotate(other, [(users[0], "c0"), (users[1], "c0"), (users[2], "c1")])
    run = run_now(project)
    assert run.status == "done", run.error
    assert (run.n_annotations, run.n_ignored_annotations) == (6, 1)


@pytest.mark.django_db
def test_a_project_without_annotations_scores_nothing():
    project, _ = crowd_project(k=3)
    run = run_now(project)
    assert (run.status, run.method, run.scored) == ("done", "none", 0)


# --- snapshot: annotators and reviewers keep working during a run --------------------------------

def run_while_people_work(*, accept_threshold: float, max_annotations: int | None = None):
    """Six disputed items; between the run's snapshot and its writes a reviewer decides one item and
    an annotator labels another. Returns (run, items, reviewer)."""
    project, _ = crowd_project(k=3, accept_threshold=accept_threshold)
    if max_annotations is not None:
        project.max_annotations_per_item = max_annotations
        project.save(update_fields=["max_annotations_per_item"])
    users = annotators(project, 5)
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    items = []
    for i in range(6):
        it = Item.objects.create(project=project, external_id=f"d{i}", required_annotations=3)
        annotate(it, [(users[0], "c0"), (users[1], "c1"), (users[2], "c0" if i % 2 else "c2")])
        items.append(it)
    adjudicated, annotated_again = items[0], items[1]
    real_score = consensus.score_crowd

    def score_while_people_work(*args, **kwargs):
        item_resolve(item=adjudicated, reviewer=reviewer, label="c2", note="clearly c2")
        Annotation.objects.create(project_id=annotated_again.project_id, item=annotated_again, annotator=users[3], label="c1")
        Item.objects.filter(pk=annotated_again.pk).update(annotation_count=F("annotation_count") + 1)
        return real_score(*args, **kwargs)

    with mock.patch.object(consensus, "score_crowd", score_while_people_work):
        run = run_now(project)
    assert run.status == "done", run.error
    res = results_by_item(run)
    assert res[adjudicated.pk].outcome == res[annotated_again.pk].outcome == "stale"
    assert run.skipped_stale == 2
    gt = GroundTruth.objects.get(item=adjudicated)
    assert (gt.label, gt.method, gt.decided_by_id) == ("c2", "adjudicated", reviewer.pk)
    assert not GroundTruth.objects.filter(item=annotated_again).exists()
    assert Item.objects.get(pk=annotated_again.pk).status == "disputed"
    assert run.snapshot_max_annotation_id < Annotation.objects.filter(item=annotated_again).order_by("-id").first().pk
    return run, items


@pytest.mark.django_db
def test_run_does_not_overwrite_decisions_made_after_its_snapshot():
    run, items = run_while_people_work(accept_threshold=0.0)  # would accept every disputed item
    assert run.auto_accepted == 4


@pytest.mark.django_db
def test_a_run_asks_for_no_more_annotations_of_items_people_changed_after_its_snapshot():
    run, items = run_while_people_work(accept_threshold=1.0)  # would ask a 4th annotation of every disputed item
    assert run.reopened_for_more == 4
    assert set(ReopenRequest.objects.values_list("item_id", flat=True)) == {it.pk for it in items[2:]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("plan", ["accept", "request", "review"])
def test_outside_a_transaction_items_people_changed_during_the_run_are_left_alone(postgres_tx, plan):
    """As a worker runs it (PostgreSQL, no transaction around the run): the people's changes commit
    while the run scores. Accepts lock and compare their items; the items a run leaves without a row
    lock (requests for one more annotation, review as it is) are found changed by one scan from the
    snapshot's xmin horizon (_changed), never by a per-item compare."""
    unchanged = quality_service._unchanged
    unlocked_compares = []

    def spy(snap, idx, *, lock):
        if not lock:
            unlocked_compares.append(len(idx))
        return unchanged(snap, idx, lock=lock)

    with mock.patch.object(quality_service, "_unchanged", spy):
        run, items = run_while_people_work(accept_threshold=0.0 if plan == "accept" else 1.0,
                                           max_annotations=3 if plan == "review" else None)
    assert unlocked_compares == []
    assert (run.auto_accepted, run.reopened_for_more, run.to_review) == {
        "accept": (4, 0, 0), "request": (0, 4, 0), "review": (0, 0, 4)}[plan]
    assert set(ReopenRequest.objects.values_list("item_id", flat=True)) == (
        {it.pk for it in items[2:]} if plan == "request" else set())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("reader", ["_read_latest_predictions", "_read_item_state"])
def test_the_read_phase_sees_one_consistent_snapshot(postgres_tx, reader):
    """The run reads on three connections at once (annotations here; predictions, then the items'
    state while scoring, on connections that import this one's snapshot). A commit landing while
    one of them reads is invisible to the run, and the item it touched is then left alone as stale."""
    project, _ = crowd_project(k=3, accept_threshold=0.0)
    users = annotators(project, 4)
    crowd = simulate_crowd(n_items=40, accuracies=[0.6, 0.7, 0.8], n_classes=3, per_item=3, seed=4)
    items = load_crowd(project, users[:3], crowd)
    target = Item.objects.filter(project=project, status="disputed").order_by("id").first()
    real = getattr(quality_service, reader)
    threads = []

    def meanwhile(*args, **kwargs):
        threads.append(threading.current_thread())
        def annotate_elsewhere():
            try:
                Annotation.objects.create(project_id=target.project_id, item=target, annotator=users[3], label="c0")
                Item.objects.filter(pk=target.pk).update(annotation_count=F("annotation_count") + 1)
            finally:
                connection.close()
        t = threading.Thread(target=annotate_elsewhere)
        t.start()
        t.join()
        return real(*args, **kwargs)

    with mock.patch.object(quality_service, reader, meanwhile):
        run = run_now(project)
    assert run.status == "done", run.error
    assert threads and all(t is not threading.main_thread() for t in threads)  # read on a second connection
    assert run.n_annotations == 120  # the 121st committed during the read: not in the snapshot
    assert results_by_item(run)[target.pk].outcome == "stale"
    assert len(items) == 40


@pytest.mark.django_db
def test_stored_vectors_and_the_jsonb_give_the_same_pred_probs():
    """Prediction.vector (written by ingestion) is what a run reads; a row without one is converted
    from its jsonb probabilities, to the same numbers."""
    project, _ = crowd_project(k=4)
    users = annotators(project, 5)
    crowd = simulate_crowd(n_items=60, accuracies=[0.6, 0.7, 0.8, 0.9, 0.95], n_classes=4, per_item=3, seed=5)
    items = load_crowd(project, users, crowd)
    from_vectors = quality_service.quality_snapshot_read(project_id=project.pk)
    Prediction.objects.filter(item__in=items[::2]).update(vector=None)
    mixed = quality_service.quality_snapshot_read(project_id=project.pk)
    Prediction.objects.filter(item__in=items).update(vector=None)
    from_jsonb = quality_service.quality_snapshot_read(project_id=project.pk)
    order = np.argsort([it.pk for it in items])
    expected = crowd.pred_probs[order]
    for snap in (from_vectors, mixed, from_jsonb):
        assert snap.prod_probs is not None and snap.model_versions == ["sim-v1"]
        np.testing.assert_allclose(snap.prod_probs, expected, rtol=0, atol=1e-12)


@pytest.mark.django_db(transaction=True)
def test_writes_spread_over_two_connections_match_a_run_on_one(postgres_tx):
    """Outside a transaction a run reads on three connections and writes on two more (accept chunks,
    per-item results and requests for one more annotation, each taking the next statement left);
    inside one, everything happens on this connection. Both give the same outcomes, item states,
    requests and ground truth."""
    crowd = simulate_crowd(n_items=240, accuracies=ACCURACIES, n_classes=4, per_item=3, seed=21)
    projects = []
    for _ in range(2):
        project, _ = crowd_project(k=4, accept_threshold=0.7)
        users = annotators(project, 10)
        load_crowd(project, users, crowd)
        projects.append(project)
    threads = []
    real_thread = quality_service.DbThread

    def counting(*args, **kwargs):
        threads.append(kwargs.get("snapshot_id"))
        return real_thread(*args, **kwargs)

    with mock.patch.object(quality_service, "WRITE_CHUNK", 7), mock.patch.object(quality_service, "REQUEST_CHUNK", 7), \
            mock.patch.object(quality_service, "DbThread", counting), \
            mock.patch.object(parallel, "DbThread", counting):
        spread = run_now(projects[0])
        assert len(threads) == 4  # 2 readers on the snapshot, 2 writers
        assert sum(1 for sid in threads if sid) == 2
        threads.clear()
        with transaction.atomic():
            single = run_now(projects[1])
        assert threads == []
    assert spread.status == single.status == "done", (spread.error, single.error)
    assert spread.reopened_for_more > 2 * 2 * 7 and spread.auto_accepted > 2 * 7  # several chunks of each kind

    def state(project, run):
        results = {r.item.external_id: (r.outcome, r.consensus_label, round(r.quality, 9), r.active_learning_score)
                   for r in QualityItemResult.objects.filter(run=run).select_related("item")}
        items = {it.external_id: (it.status, it.required_annotations, it.reopen_rank)
                 for it in Item.objects.filter(project=project)}
        truth = dict(GroundTruth.objects.filter(item__project=project).values_list("item__external_id", "label"))
        requests = {r.item.external_id: (r.rank, r.required, r.count)
                    for r in ReopenRequest.objects.filter(project=project).select_related("item")}
        assert len(requests) == run.reopened_for_more
        return results, items, truth, requests

    assert state(projects[0], spread) == state(projects[1], single)
    for field in ("scored", "auto_accepted", "reopened_for_more", "to_review", "skipped_stale"):
        assert getattr(spread, field) == getattr(single, field)


# --- requesting runs ----------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_second_request_while_one_is_queued_is_a_conflict(django_capture_on_commit_callbacks):
    project, manager = crowd_project()
    with mock.patch.object(quality_run_task, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            first = quality_run_request(project_id=project.pk, requested_by=manager)
        with pytest.raises(Conflict) as exc:
            quality_run_request(project_id=project.pk, requested_by=manager)
    assert exc.value.fields == {"run_id": first.pk} and exc.value.code == "run_in_progress"
    delay.assert_called_once_with(first.pk)  # enqueued after commit, once
    quality_run_execute(run_id=first.pk)
    with mock.patch.object(quality_service, "_enqueue"):
        assert quality_run_request(project_id=project.pk).pk != first.pk  # done: a new one may start


@pytest.mark.django_db(transaction=True)
def test_two_runs_requested_at_once_start_one(postgres_tx):
    project, manager = crowd_project()
    barrier = threading.Barrier(4)
    outcomes = []

    def request():
        try:
            barrier.wait()
            outcomes.append(("run", quality_run_request(project_id=project.pk, requested_by=manager).pk))
        except Conflict as exc:
            outcomes.append(("conflict", exc.fields and exc.fields.get("run_id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(4)]
    # Patched once, here: patching in each thread let one thread "restore" another's mock for good.
    with mock.patch.object(quality_service, "_enqueue"):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    runs = [v for kind, v in outcomes if kind == "run"]
    assert len(runs) == 1 and len(outcomes) == 4
    assert QualityRun.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_task_is_idempotent_and_failures_are_recorded():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    it = Item.objects.create(project=project, external_id="a", required_annotations=3)
    annotate(it, [(users[0], "c0"), (users[1], "c1"), (users[2], "c0")])
    with mock.patch.object(quality_service, "_enqueue"):
        run = quality_run_request(project_id=project.pk)
    quality_run_task(run.pk)
    quality_run_task(run.pk)  # a redelivered message: nothing to do
    run.refresh_from_db()
    assert (run.status, run.attempts, QualityItemResult.objects.filter(run=run).count()) == ("done", 1, 1)

    with mock.patch.object(quality_service, "_enqueue"):
        failing = quality_run_request(project_id=project.pk)
    with mock.patch.object(consensus, "score_crowd", side_effect=consensus.ScoringError("boom")):
        quality_run_task(failing.pk)
    failing.refresh_from_db()
    assert failing.status == "failed" and "ScoringError: boom" in failing.error and failing.finished_at


@pytest.mark.django_db
def test_recover_fails_runs_whose_worker_died_and_resends_lost_messages(settings):
    project, _ = crowd_project()
    other, _ = crowd_project()
    long_ago = timezone.now() - timedelta(hours=3)
    stuck = QualityRun.objects.create(project=project, status="running", started_at=long_ago)
    lost = QualityRun.objects.create(project=other, status="queued")
    QualityRun.objects.filter(pk=lost.pk).update(created_at=long_ago)
    with mock.patch.object(quality_run_task, "delay") as delay:
        assert quality_runs_recover() == {"requeued": 0, "failed": 1, "resent": 1}
    delay.assert_called_once_with(lost.pk)
    stuck.refresh_from_db()
    assert stuck.status == "failed" and "TIMEOUT" in stuck.error


@pytest.mark.django_db
def test_a_run_starts_after_the_configured_number_of_disputed_items(django_capture_on_commit_callbacks):
    project, _ = crowd_project()
    QualitySettings.objects.create(project=project, auto_run_after_disputed=3)
    with mock.patch.object(quality_run_task, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            assert quality_on_item_disputed(project_id=project.pk) is None
            assert quality_on_item_disputed(project_id=project.pk) is None
            run = quality_on_item_disputed(project_id=project.pk)
        assert run is not None and run.trigger == "auto"
        assert len(callbacks) == 1
        delay.assert_called_once_with(run.pk)
        assert QualitySettings.objects.get(project=project).disputed_since_run == 0
        # While it is queued, more disputes are counted but start nothing.
        for _ in range(4):
            assert quality_on_item_disputed(project_id=project.pk) is None
        assert QualityRun.objects.filter(project=project).count() == 1
        assert QualitySettings.objects.get(project=project).disputed_since_run == 4


@pytest.mark.django_db
def test_runs_are_not_started_automatically_when_the_setting_is_zero():
    project, _ = crowd_project()
    QualitySettings.objects.create(project=project, auto_run_after_disputed=0)
    with mock.patch.object(quality_run_task, "delay"):
        for _ in range(50):
            assert quality_on_item_disputed(project_id=project.pk) is None
    assert not QualityRun.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_demo_loader_is_idempotent_and_leaves_items_to_review():
    from django.core.management import call_command

    with mock.patch.object(quality_run_task, "delay"):
        call_command("loupe_demo", items=80, stdout=open("/dev/null", "w"))
        call_command("loupe_demo", items=80, stdout=open("/dev/null", "w"))
    runs = QualityRun.objects.all()
    assert runs.count() == 1 and runs[0].status == "done" and runs[0].scored == 40
    assert Annotation.objects.count() == 120
    assert Item.objects.filter(status=ItemStatus.DISPUTED).count() >= 3
    assert connection.vendor in ("postgresql", "sqlite")


@pytest.mark.django_db
def test_old_runs_keep_their_summary_but_not_their_per_item_results():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    it = Item.objects.create(project=project, external_id="a", required_annotations=3)
    annotate(it, [(users[0], "c0"), (users[1], "c1"), (users[2], "c0")])
    runs = [run_now(project) for _ in range(4)]
    assert quality_results_prune(keep_runs=2) == 2
    assert list(QualityItemResult.objects.values_list("run_id", flat=True).order_by("run_id")) == [r.pk for r in runs[2:]]
    assert QualityRun.objects.filter(project=project).count() == 4
    assert quality_results_prune(keep_runs=2) == 0


@pytest.mark.django_db
def test_items_are_scored_even_when_their_annotation_counter_has_drifted():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    items = []
    for i in range(4):
        it = Item.objects.create(project=project, external_id=f"drift{i}", required_annotations=3, status="disputed")
        Annotation.objects.bulk_create([Annotation(project_id=it.project_id, item=it, annotator=u, label=f"c{(i + j) % 2}") for j, u in enumerate(users)])
        items.append(it)
    Item.objects.filter(pk=items[0].pk).update(annotation_count=3)  # only one counter is right
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.scored == 4 and run.n_annotations == 12


@pytest.mark.django_db
def test_production_predictions_are_used_only_when_every_scored_item_has_one():
    from labeling.models import Prediction

    project, _ = crowd_project(k=3)
    users = annotators(project, 5)
    crowd = simulate_crowd(n_items=60, accuracies=np.linspace(0.6, 0.9, 5), n_classes=3, per_item=3, seed=12)
    items = load_crowd(project, users, crowd)
    first = run_now(project)
    assert (first.pred_probs_source, first.model_versions) == ("production", "sim-v1")
    Prediction.objects.filter(item=items[0]).update(probabilities=None)  # one item has no probabilities any more
    second = run_now(project)
    assert second.status == "done" and second.pred_probs_source != "production" and second.model_versions == ""
