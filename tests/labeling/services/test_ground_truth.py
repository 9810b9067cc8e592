import threading

import pytest
from django.db import close_old_connections

from labeling.models import GroundTruth, Item, ItemStatus, LabelChange
from labeling.services.ground_truth import Decision, ground_truth_set, ground_truth_set_many
from labeling.signals import ground_truth_changed
from tests.factories import ItemFactory, ProjectFactory


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
def test_sequences_are_per_project(user):
    p1, p2 = ProjectFactory(creator=user), ProjectFactory(creator=user)
    a, b = ItemFactory(project=p1), ItemFactory(project=p2)
    assert ground_truth_set(item=a, label="pos", method="imported").seq == 1
    assert ground_truth_set(item=b, label="pos", method="imported").seq == 1
    changes = ground_truth_set_many(project_id=p1.pk, decisions=[Decision(ItemFactory(project=p1).pk, "neg", "imported") for _ in range(3)])
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
            close_old_connections()

    threads = [threading.Thread(target=worker, args=(items[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    seqs = sorted(LabelChange.objects.filter(project=project).values_list("seq", flat=True))
    assert seqs == list(range(1, 41))
