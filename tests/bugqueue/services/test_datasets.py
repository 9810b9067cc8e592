import threading

import pytest
from django.db import connection

from bugqueue.models import BugDatasetFlow, Dataset, DatasetMember, DatasetPending, DatasetVersion, Tag
from bugqueue.services.absorb import datasets_absorb_pass
from bugqueue.services.datasets import bug_datasets_flow_run, bug_datasets_flow_start
from labeling.services.ground_truth import ground_truth_set
from tests.bugqueue.factories import failing_bug, label, make_items, new_dataset
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_resolved_bug_flows_into_datasets_and_late_labels_follow(user, project, django_capture_on_commit_callbacks):
    c = client_for(user)
    chosen = Dataset.objects.get(pk=new_dataset(c, project, name="chosen")["id"])
    Tag.objects.get_or_create(slug="label-flip", defaults={"name": "Label flip", "description": "x"})
    following = Dataset.objects.get(pk=new_dataset(c, project, name="flips", tags=["label-flip"])["id"])
    new_dataset(c, project, name="unrelated")
    known, labeled, unknown = make_items(project, 3, prefix="f")
    label([labeled], "neu")
    bug = failing_bug(project, tags=["label-flip"], failures=[(known, "pos"), (labeled, None), (unknown, None)])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        flow = bug_datasets_flow_start(bug=bug, actor=user, dataset_ids=[chosen.pk])
    assert len(callbacks) == 1 and BugDatasetFlow.objects.get(pk=flow.pk).status == "queued"
    bug_datasets_flow_run(flow_id=flow.pk)
    bug_datasets_flow_run(flow_id=flow.pk)  # a retried task changes nothing
    for ds in (chosen, following):
        ds.refresh_from_db()
        assert ds.latest_version == 1
        members = dict(DatasetMember.objects.filter(dataset=ds).values_list("item__external_id", "label"))
        assert members == {known.external_id: "pos", labeled.external_id: "neu"}
        assert DatasetVersion.objects.get(dataset=ds, number=1).bug_id == bug.pk
        assert list(DatasetPending.objects.filter(dataset=ds).values_list("item_id", flat=True)) == [unknown.pk]
    assert Dataset.objects.get(name="unrelated").latest_version == 0
    unknown.refresh_from_db()
    assert unknown.reopen_rank is not None  # at the front of the labeling queue

    flow2 = bug_datasets_flow_start(bug=bug, actor=user, dataset_ids=[chosen.pk])  # resolved twice
    bug_datasets_flow_run(flow_id=flow2.pk)
    assert DatasetMember.objects.filter(dataset=chosen).count() == 2 and chosen.versions.count() == 1

    ground_truth_set(item=unknown, label="neg", method="adjudicated")
    datasets_absorb_pass(project_id=project.pk)
    assert datasets_absorb_pass(project_id=project.pk) == []  # idempotent
    for ds in (chosen, following):
        v2 = DatasetVersion.objects.get(dataset=ds, number=2)
        assert (v2.reason, v2.bug_id, v2.added, v2.size) == ("bug_followup", bug.pk, 1, 3)
    assert DatasetMember.objects.filter(dataset=chosen, item=unknown, label="neg").exists()


def test_ground_truth_signal_schedules_one_absorb_pass(user, project, monkeypatch, django_capture_on_commit_callbacks):
    from bugqueue import receivers
    from bugqueue.models import BugProjectSettings

    ds = Dataset.objects.get(pk=new_dataset(client_for(user), project)["id"])
    item, other = make_items(project, 2, prefix="p")
    bug = failing_bug(project, failures=[(item, None), (other, None)])
    DatasetPending.objects.create(dataset=ds, item=item, bug=bug, reason="failure")
    DatasetPending.objects.create(dataset=ds, item=other, bug=bug, reason="failure")
    sent = []
    monkeypatch.setattr(
        receivers,
        "_send",
        lambda task, *args, **options: task.name == "bugqueue.datasets_absorb_pass" and sent.append((args, options)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        ground_truth_set(item=item, label="pos", method="imported")
    assert sent == [((project.pk,), {"countdown": 600})]
    due = BugProjectSettings.objects.get(pk=project.pk).absorb_due_at
    assert due is not None
    with django_capture_on_commit_callbacks(execute=True):
        ground_truth_set(item=other, label="neg", method="imported")
    assert len(sent) == 1  # the pass already due absorbs this one too
    assert BugProjectSettings.objects.get(pk=project.pk).absorb_due_at == due
    assert not DatasetMember.objects.filter(dataset=ds).exists()  # nothing joins before the pass


def test_mine_similar_pulls_in_lookalikes(user, project, settings, tmp_path):
    from labeling.services import similarity

    settings.MEDIA_ROOT = tmp_path
    similarity._load_segment.cache_clear()
    ds = Dataset.objects.get(pk=new_dataset(client_for(user), project)["id"])
    refunds = make_items(project, 12, prefix="r", text="refund my double charge invoice")
    make_items(project, 12, prefix="s", text="parcel lost tracking courier")
    label(refunds[6:9], "neg")
    similarity.similarity_index_update(project_id=project.id)
    bug = failing_bug(project, failures=[(refunds[0], "pos")])
    flow = bug_datasets_flow_start(bug=bug, actor=user, dataset_ids=[ds.pk], mine_similar=8)
    flow = bug_datasets_flow_run(flow_id=flow.pk)
    assert flow.status == "done" and flow.mined == 8
    mined = set(DatasetPending.objects.filter(dataset=ds, reason="similar").values_list("item__external_id", flat=True))
    added = set(DatasetMember.objects.filter(dataset=ds).values_list("item__external_id", flat=True))
    assert all(e.startswith("r") for e in mined | added)
    assert {r.external_id for r in refunds[6:9]} <= added and refunds[0].external_id in added
    assert len(mined) + len(added) == 9


@pytest.mark.django_db(transaction=True)
def test_concurrent_resolutions_into_one_dataset_make_consecutive_versions(postgres_tx):
    user = UserFactory()
    project = ProjectFactory(creator=user)
    ds = Dataset.objects.create(project=project, name="shared")
    items = make_items(project, 40, prefix="c")
    bugs = [failing_bug(project, title=f"b{k}", failures=[(it, "pos") for it in items[k::4]]) for k in range(4)]
    flows = [bug_datasets_flow_start(bug=b, actor=user, dataset_ids=[ds.pk]) for b in bugs]
    errors = []

    def run(flow_id):
        try:
            bug_datasets_flow_run(flow_id=flow_id)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(f.pk,)) for f in flows]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert list(DatasetVersion.objects.filter(dataset=ds).order_by("number").values_list("number", flat=True)) == [
        1,
        2,
        3,
        4,
    ]
    assert DatasetMember.objects.filter(dataset=ds, removed_in__isnull=True).count() == 40
    assert sorted(DatasetVersion.objects.filter(dataset=ds).values_list("size", flat=True)) == [10, 20, 30, 40]
