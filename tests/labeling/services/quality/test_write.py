"""Quality runs: writing the plan, leaving alone what people changed since the snapshot, on one connection or three."""

from unittest import mock

import pytest
from django.db import transaction
from django.db.models import F

from common.db import parallel
from labeling.models import (
    Annotation,
    GroundTruth,
    Item,
    QualityItemResult,
    ReopenRequest,
    Role,
)
from labeling.services.quality import snapshot as quality_snapshot
from labeling.services.quality import write as quality_write
from labeling.services.resolution import item_resolve
from labeling.stats import consensus
from tests.labeling.factories import (
    UserFactory,
    add_member,
    annotate,
    annotators,
    crowd_project,
    load_crowd,
    simulate_crowd,
)
from tests.labeling.services.quality.helpers import ACCURACIES, results_by_item, run_now


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
    load_crowd(
        project,
        users,
        simulate_crowd(
            n_items=300, accuracies=[0.95, 0.9, 0.6, 0.5], n_classes=3, per_item=1, seed=2, model_accuracy=0.9
        ),
    )
    real, attempts = quality_write._set_status_once, []

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

    monkeypatch.setattr(quality_write, "_set_status_once", deadlocks_once)
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

    monkeypatch.setattr(quality_write, "_set_status_once", fails)
    Item.objects.filter(project=project, status="open", annotation_count=1).update(
        status="resolved", required_annotations=1
    )
    run = run_now(project)
    assert run.status == "failed" and "server closed the connection" in run.error


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
        Annotation.objects.create(
            project_id=annotated_again.project_id, item=annotated_again, annotator=users[3], label="c1"
        )
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
    unchanged = quality_write._unchanged
    unlocked_compares = []

    def spy(snap, idx, *, lock):
        if not lock:
            unlocked_compares.append(len(idx))
        return unchanged(snap, idx, lock=lock)

    with mock.patch.object(quality_write, "_unchanged", spy):
        run, items = run_while_people_work(
            accept_threshold=0.0 if plan == "accept" else 1.0, max_annotations=3 if plan == "review" else None
        )
    assert unlocked_compares == []
    assert (run.auto_accepted, run.reopened_for_more, run.to_review) == {
        "accept": (4, 0, 0),
        "request": (0, 4, 0),
        "review": (0, 0, 4),
    }[plan]
    assert set(ReopenRequest.objects.values_list("item_id", flat=True)) == (
        {it.pk for it in items[2:]} if plan == "request" else set()
    )


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
    real_thread = quality_snapshot.DbThread

    def counting(*args, **kwargs):
        threads.append(kwargs.get("snapshot_id"))
        return real_thread(*args, **kwargs)

    with (
        mock.patch.object(quality_write, "WRITE_CHUNK", 7),
        mock.patch.object(quality_write, "REQUEST_CHUNK", 7),
        mock.patch.object(quality_snapshot, "DbThread", counting),
        mock.patch.object(parallel, "DbThread", counting),
    ):
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
        results = {
            r.item.external_id: (r.outcome, r.consensus_label, round(r.quality, 9), r.active_learning_score)
            for r in QualityItemResult.objects.filter(run=run).select_related("item")
        }
        items = {
            it.external_id: (it.status, it.required_annotations, it.reopen_rank)
            for it in Item.objects.filter(project=project)
        }
        truth = dict(GroundTruth.objects.filter(item__project=project).values_list("item__external_id", "label"))
        requests = {
            r.item.external_id: (r.rank, r.required, r.count)
            for r in ReopenRequest.objects.filter(project=project).select_related("item")
        }
        assert len(requests) == run.reopened_for_more
        return results, items, truth, requests

    assert state(projects[0], spread) == state(projects[1], single)
    for field in ("scored", "auto_accepted", "reopened_for_more", "to_review", "skipped_stale"):
        assert getattr(spread, field) == getattr(single, field)
