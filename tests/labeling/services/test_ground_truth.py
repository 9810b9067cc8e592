import threading

import pytest
from django.db import connection

from labeling.models import GroundTruth, Item, ItemStatus, LabelChange
from labeling.services.ground_truth import Decision, ground_truth_set, ground_truth_set_many
from labeling.signals import ground_truth_changed
from tests.labeling.factories import ItemFactory, ProjectFactory


@pytest.mark.django_db
def test_setting_ground_truth_appends_history_with_sequence(project, django_capture_on_commit_callbacks):
    item = ItemFactory(project=project)
    received = []
    handler = lambda **kw: received.append(kw["changes"])  # noqa: E731
    ground_truth_changed.connect(handler)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            first = ground_truth_set(item=item, label="pos", method="unanimous", annotators=[1, 2])
        with django_capture_on_commit_callbacks(execute=True):
            again = ground_truth_set(item=item, label="pos", method="unanimous")
        with django_capture_on_commit_callbacks(execute=True):
            second = ground_truth_set(item=item, label="neg", method="adjudicated", note="clearly negative")
    finally:
        ground_truth_changed.disconnect(handler)
    assert (first.seq, second.seq) == (1, 2) and again is None
    history = list(LabelChange.objects.filter(project=project).values_list("seq", "previous_label", "label", "method"))
    assert history == [(1, "", "pos", "unanimous"), (2, "pos", "neg", "adjudicated")]
    # The item's external_id is copied into each history row (the export reads it without a join).
    assert set(LabelChange.objects.filter(project=project).values_list("external_id", flat=True)) == {item.external_id}
    gt = GroundTruth.objects.get(item=item)
    assert gt.label == "neg" and gt.method == "adjudicated" and gt.first_arrived_at <= gt.decided_at
    assert Item.objects.get(pk=item.pk).status == ItemStatus.RESOLVED
    assert [len(c) for c in received] == [1, 1]  # the no-op sent nothing


@pytest.mark.django_db
def test_deleting_an_item_or_a_project_deletes_its_history(user):
    """LabelChange has no database foreign keys (their commit-time checks were a sixth of an
    accept-heavy quality run's write): Django's cascade removes the history with its item or project."""
    p1, p2 = ProjectFactory(creator=user), ProjectFactory(creator=user)
    a, b, c = ItemFactory(project=p1), ItemFactory(project=p1), ItemFactory(project=p2)
    for it in (a, b, c):
        ground_truth_set(item=it, label="pos", method="imported")
    ground_truth_set(item=a, label="neg", method="adjudicated")
    a.delete()
    assert list(LabelChange.objects.filter(project=p1).values_list("item_id", flat=True)) == [b.pk]
    p1.delete()
    assert list(LabelChange.objects.values_list("item_id", flat=True)) == [c.pk]


@pytest.mark.django_db
def test_sequences_are_per_project(user):
    p1, p2 = ProjectFactory(creator=user), ProjectFactory(creator=user)
    a, b = ItemFactory(project=p1), ItemFactory(project=p2)
    assert ground_truth_set(item=a, label="pos", method="imported").seq == 1
    assert ground_truth_set(item=b, label="pos", method="imported").seq == 1
    changes = ground_truth_set_many(
        project_id=p1.pk, decisions=[Decision(ItemFactory(project=p1).pk, "neg", "imported") for _ in range(3)]
    )
    assert [c.seq for c in changes] == [2, 3, 4]


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_get_gapless_unique_sequences(postgres_tx, user):
    project = ProjectFactory(creator=user)
    items = [ItemFactory(project=project) for _ in range(40)]
    errors = []

    def worker(chunk):
        try:
            for it in chunk:
                ground_truth_set(item=it, label="pos", method="imported")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(items[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    seqs = sorted(LabelChange.objects.filter(project=project).values_list("seq", flat=True))
    assert seqs == list(range(1, 41))


@pytest.mark.django_db
def test_sql_path_writes_exactly_what_the_orm_path_writes(postgres, user, monkeypatch):
    """Large batches on PostgreSQL take set-based statements fed by COPY; the same decisions must
    leave the same ground truth, history, statuses and returned changes as the ORM path."""
    from datetime import timedelta

    from django.utils import timezone

    from labeling.services import ground_truth as gt_service

    arrived = timezone.now() - timedelta(days=3)

    def run(sql_from):
        monkeypatch.setattr(gt_service, "SQL_PATH_MIN", sql_from)
        project = ProjectFactory(creator=user)
        items = [ItemFactory(project=project) for _ in range(6)]
        pos = {it.pk: n for n, it in enumerate(items)}
        ground_truth_set_many(
            project_id=project.pk,
            decisions=[
                Decision(items[0].pk, "pos", "imported"),
                Decision(items[1].pk, "neg", "consensus", score=0.9, arrived_at=arrived),
            ],
        )
        changes = ground_truth_set_many(
            project_id=project.pk,
            actor=user,
            decisions=[
                Decision(items[0].pk, "pos", "imported"),  # repeats the current truth: no history row
                Decision(items[1].pk, "pos", "adjudicated", note="clearly pos", annotators=(7, 8)),  # replaces it
                Decision(items[2].pk, "neg", "consensus", score=0.8, annotators=(3,), source="quality-run:1"),
                Decision(items[3].pk, "pos", "imported", arrived_at=arrived, model_version="v2"),
                Decision(items[3].pk, "neg", "imported", note="second thoughts"),  # same item twice: both in history
                Decision(items[4].pk, "pos", "consensus", status=ItemStatus.CONFLICT),
            ],
        )
        truth = {
            pos[g.item_id]: (
                g.label,
                g.method,
                g.score,
                g.decided_by_id,
                g.source,
                g.note,
                g.first_arrived_at == arrived,
            )
            for g in GroundTruth.objects.filter(item__project=project)
        }
        history = [
            (
                c.seq,
                pos[c.item_id],
                c.external_id == items[pos[c.item_id]].external_id,
                c.label,
                c.previous_label,
                c.method,
                c.score,
                c.actor_id,
                c.annotators,
                c.model_version,
                c.source,
                c.note,
            )
            for c in LabelChange.objects.filter(project=project).order_by("seq")
        ]
        statuses = [Item.objects.get(pk=it.pk).status for it in items]
        returned = [(pos[c.item_id], c.label, c.previous_label, c.method, c.seq) for c in changes]
        return truth, history, statuses, returned

    orm, sql = run(10**9), run(1)
    assert sql == orm
    truth, history, statuses, returned = sql
    assert truth[1] == ("pos", "adjudicated", None, user.pk, "", "clearly pos", True)  # first arrival kept
    assert truth[3][:2] == ("neg", "imported") and truth[3][6] is True  # the first decision's arrival
    assert [h[1] for h in history[2:]] == [1, 2, 3, 3, 4] and history[2][8] == [7, 8]
    assert statuses == [ItemStatus.RESOLVED] * 4 + [ItemStatus.CONFLICT, ItemStatus.OPEN]
    assert [r[4] for r in returned] == [3, 4, 5, 6, 7]
