"""Quality runs: what the read phase sees (one consistent snapshot) and the pred_probs it starts from."""

import threading
from unittest import mock

import numpy as np
import pytest
from django.db import connection
from django.db.models import F
from scipy.stats import spearmanr

from labeling.models import (
    Annotation,
    GroundTruth,
    Item,
    Prediction,
    QualityAnnotatorStat,
    QualityItemResult,
)
from labeling.services.quality import snapshot as quality_snapshot
from tests.labeling.factories import (
    annotate,
    annotators,
    crowd_project,
    load_crowd,
    simulate_crowd,
)
from tests.labeling.services.quality.helpers import ACCURACIES, majority_vote_accuracy, results_by_item, run_now


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
        item = Item.objects.create(
            project=project,
            external_id=f"t{i}",
            payload={"text": f"{words[true]} {rng.integers(1000)}"},
            required_annotations=3,
        )
        chosen = [true, true, (true + 1) % 3] if i % 4 == 0 else [true, true, true]
        annotate(item, list(zip(users[:3], [f"c{c}" for c in chosen])))
        items.append(item)
    run = run_now(project)
    assert run.status == "done", run.error
    assert run.pred_probs_source == "crossval_text"
    assert run.scored == 60
    assert not GroundTruth.objects.filter(item__project=project, label="c3").exists()
    assert not QualityItemResult.objects.filter(run=run, consensus_label="c3", outcome="accepted").exists()


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
    real = getattr(quality_snapshot, reader)
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

    with mock.patch.object(quality_snapshot, reader, meanwhile):
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
    from_vectors = quality_snapshot.quality_snapshot_read(project_id=project.pk)
    Prediction.objects.filter(item__in=items[::2]).update(vector=None)
    mixed = quality_snapshot.quality_snapshot_read(project_id=project.pk)
    Prediction.objects.filter(item__in=items).update(vector=None)
    from_jsonb = quality_snapshot.quality_snapshot_read(project_id=project.pk)
    order = np.argsort([it.pk for it in items])
    expected = crowd.pred_probs[order]
    for snap in (from_vectors, mixed, from_jsonb):
        assert snap.prod_probs is not None and snap.model_versions == ["sim-v1"]
        np.testing.assert_allclose(snap.prod_probs, expected, rtol=0, atol=1e-12)


@pytest.mark.django_db
def test_items_are_scored_even_when_their_annotation_counter_has_drifted():
    project, _ = crowd_project(k=3)
    users = annotators(project, 3)
    items = []
    for i in range(4):
        it = Item.objects.create(project=project, external_id=f"drift{i}", required_annotations=3, status="disputed")
        Annotation.objects.bulk_create(
            [
                Annotation(project_id=it.project_id, item=it, annotator=u, label=f"c{(i + j) % 2}")
                for j, u in enumerate(users)
            ]
        )
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
