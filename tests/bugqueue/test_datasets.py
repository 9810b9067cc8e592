import json
import threading

import pytest
from django.db import connection
from django.utils import timezone

from bugqueue.models import (
    Bug,
    BugDatasetFlow,
    Dataset,
    DatasetMember,
    DatasetPending,
    DatasetVersion,
    FailureExample,
    Tag,
)
from bugqueue.selectors import datasets as selectors_datasets
from bugqueue.services.datasets import bug_datasets_flow_run, bug_datasets_flow_start, datasets_absorb_labeled
from labeling.models import Item, Role
from labeling.services.ground_truth import ground_truth_set
from labeling.services.ingestion import items_ingest
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def make_items(project, n, prefix="it", text="sample"):
    items_ingest(project=project, rows=[{"external_id": f"{prefix}{i}", "payload": {"text": f"{text} {i}"}} for i in range(n)])
    return list(Item.objects.filter(project=project, external_id__startswith=prefix).order_by("id"))


def label(items, value="pos"):
    for it in items:
        ground_truth_set(item=it, label=value, method="imported")


def make_bug(project, title="flip", tags=(), failures=()):
    now = timezone.now()
    bug = Bug.objects.create(project=project, title=title, kind="failed_prediction", fingerprint=f"fp-{title}",
                             first_seen=now, last_seen=now, occurrences=len(failures))
    bug.tags.set(Tag.objects.filter(slug__in=tags))
    for item, expected in failures:
        FailureExample.objects.create(bug=bug, project=project, item=item, external_id=item.external_id,
                                      model_version="m1", predicted_label="neg", expected_label=expected)
    return bug


def new_dataset(client, project, **kw):
    res = client.post("/api/datasets", {"project": project.id, "name": kw.pop("name", "core"), **kw}, format="json")
    assert res.status_code == 201, res.json()
    return res.json()


def test_create_list_and_permissions(user, project):
    c = client_for(user)
    ds = new_dataset(c, project, min_accuracy=0.9, description="the core slice")
    assert ds["latest_version"] == 0 and ds["min_accuracy"] == 0.9
    assert c.post("/api/datasets", {"project": project.id, "name": "core"}, format="json").status_code == 409
    assert c.post("/api/datasets", {"project": project.id, "name": "x", "tags": ["nope"]}, format="json").status_code == 400
    assert [d["name"] for d in c.get(f"/api/datasets?project={project.id}").json()] == ["core"]
    outsider = client_for(UserFactory())
    assert outsider.get(f"/api/datasets/{ds['id']}").status_code == 404
    assert outsider.get(f"/api/datasets?project={project.id}").status_code == 404
    annotator = client_for(add_member(project, role=Role.ANNOTATOR))
    assert annotator.get(f"/api/datasets/{ds['id']}").status_code == 200
    assert annotator.post("/api/datasets", {"project": project.id, "name": "y"}, format="json").status_code == 403
    assert annotator.post(f"/api/datasets/{ds['id']}/versions", {"add": ["a"]}, format="json").status_code == 403


def test_manual_versions_are_immutable_and_deltas_are_exact(user, project):
    c = client_for(user)
    ds = new_dataset(c, project)
    items = make_items(project, 6)
    label(items[:5], "pos")
    ext = [i.external_id for i in items]

    res = c.post(f"/api/datasets/{ds['id']}/versions", {"add": ext[:6]}, format="json")
    assert res.status_code == 400 and res.json()["error"]["fields"]["without_ground_truth"] == [ext[5]]
    assert c.post(f"/api/datasets/{ds['id']}/versions", {"add": ["ghost"]}, format="json").json()["error"]["fields"]["unknown"] == ["ghost"]
    assert DatasetVersion.objects.count() == 0 and DatasetMember.objects.count() == 0

    v1 = c.post(f"/api/datasets/{ds['id']}/versions", {"add": ext[:3], "note": "seed"}, format="json")
    assert v1.status_code == 201 and v1.json()["version"]["number"] == 1 and v1.json()["version"]["size"] == 3
    again = c.post(f"/api/datasets/{ds['id']}/versions", {"add": ext[:3]}, format="json")
    assert again.status_code == 200 and again.json() == {"changed": False, "version": None}

    ground_truth_set(item=items[0], label="neg", method="adjudicated")  # a later change of ground truth
    v2 = c.post(f"/api/datasets/{ds['id']}/versions", {"add": [ext[3], ext[4]], "remove": [ext[1]]}, format="json").json()["version"]
    assert (v2["number"], v2["added"], v2["removed"], v2["relabeled"], v2["size"]) == (2, 2, 1, 1, 4)

    def items_of(n):
        return {r["external_id"]: r["label"] for r in c.get(f"/api/datasets/{ds['id']}/versions/{n}/items").json()["results"]}

    assert items_of(1) == {ext[0]: "pos", ext[1]: "pos", ext[2]: "pos"}  # old version unchanged
    assert items_of(2) == {ext[0]: "neg", ext[2]: "pos", ext[3]: "pos", ext[4]: "pos"}
    delta = c.get(f"/api/datasets/{ds['id']}/versions/2/delta").json()
    assert sorted(r["external_id"] for r in delta["added"]) == sorted([ext[0], ext[3], ext[4]])
    assert sorted(r["external_id"] for r in delta["removed"]) == sorted([ext[0], ext[1]])
    versions = c.get(f"/api/datasets/{ds['id']}/versions").json()
    assert [v["number"] for v in versions] == [1, 2] and versions[0]["note"] == "seed"
    assert c.get(f"/api/datasets/{ds['id']}/versions/3/items").status_code == 404


def test_version_streams_as_jsonl_in_chunks(user, project, monkeypatch):
    monkeypatch.setattr(selectors_datasets, "CHUNK", 7)
    c = client_for(user)
    ds = new_dataset(c, project)
    items = make_items(project, 30, text="unicodé, \"quoted\"")
    label(items)
    c.post(f"/api/datasets/{ds['id']}/versions", {"add": [i.external_id for i in items]}, format="json")
    res = c.get(f"/api/datasets/{ds['id']}/versions/1/items?format=jsonl")
    assert res.status_code == 200 and res.streaming
    rows = [json.loads(line) for line in b"".join(res.streaming_content).decode().splitlines()]
    assert [r["external_id"] for r in rows] == [i.external_id for i in items]
    assert rows[0]["payload"]["text"].startswith("unicodé") and all(r["label"] == "pos" for r in rows)


def test_resolved_bug_flows_into_datasets_and_late_labels_follow(user, project, django_capture_on_commit_callbacks):
    c = client_for(user)
    chosen = Dataset.objects.get(pk=new_dataset(c, project, name="chosen")["id"])
    Tag.objects.get_or_create(slug="label-flip", defaults={"name": "Label flip", "description": "x"})
    following = Dataset.objects.get(pk=new_dataset(c, project, name="flips", tags=["label-flip"])["id"])
    new_dataset(c, project, name="unrelated")
    known, labeled, unknown = make_items(project, 3, prefix="f")
    label([labeled], "neu")
    bug = make_bug(project, tags=["label-flip"], failures=[(known, "pos"), (labeled, None), (unknown, None)])

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
    datasets_absorb_labeled(item_ids=[unknown.pk])
    datasets_absorb_labeled(item_ids=[unknown.pk])  # idempotent
    for ds in (chosen, following):
        v2 = DatasetVersion.objects.get(dataset=ds, number=2)
        assert (v2.reason, v2.bug_id, v2.added, v2.size) == ("bug_followup", bug.pk, 1, 3)
    assert DatasetMember.objects.filter(dataset=chosen, item=unknown, label="neg").exists()


def test_ground_truth_signal_enqueues_absorption_for_pending_items(user, project, monkeypatch, django_capture_on_commit_callbacks):
    from bugqueue import tasks

    ds = Dataset.objects.get(pk=new_dataset(client_for(user), project)["id"])
    (item,) = make_items(project, 1, prefix="p")
    bug = make_bug(project, failures=[(item, None)])
    DatasetPending.objects.create(dataset=ds, item=item, bug=bug, reason="failure")
    sent = []
    monkeypatch.setattr(tasks.datasets_absorb_labeled_task, "delay", lambda ids: sent.append(ids))
    with django_capture_on_commit_callbacks(execute=True):
        ground_truth_set(item=item, label="pos", method="imported")
    assert sent == [[item.pk]]


def test_mine_similar_pulls_in_lookalikes(user, project, settings, tmp_path):
    from labeling.services import similarity

    settings.MEDIA_ROOT = tmp_path
    similarity._load_segment.cache_clear()
    ds = Dataset.objects.get(pk=new_dataset(client_for(user), project)["id"])
    refunds = make_items(project, 12, prefix="r", text="refund my double charge invoice")
    make_items(project, 12, prefix="s", text="parcel lost tracking courier")
    label(refunds[6:9], "neg")
    similarity.similarity_index_update(project_id=project.id)
    bug = make_bug(project, failures=[(refunds[0], "pos")])
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
    bugs = [make_bug(project, title=f"b{k}", failures=[(it, "pos") for it in items[k::4]]) for k in range(4)]
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
    assert list(DatasetVersion.objects.filter(dataset=ds).order_by("number").values_list("number", flat=True)) == [1, 2, 3, 4]
    assert DatasetMember.objects.filter(dataset=ds, removed_in__isnull=True).count() == 40
    assert sorted(DatasetVersion.objects.filter(dataset=ds).values_list("size", flat=True)) == [10, 20, 30, 40]


def test_resolve_api_hands_failures_to_datasets_idempotently(user, project, eager_celery,
                                                              django_capture_on_commit_callbacks):
    c = client_for(user)
    ds = new_dataset(c, project)
    (known,) = make_items(project, 1, prefix="k")
    bug = make_bug(project, failures=[(known, "pos")])
    with django_capture_on_commit_callbacks(execute=True):
        res = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "fixed", "note": "retrained", "datasets": [ds["id"]]},
                     format="json")
    assert res.status_code == 200, res.json()
    assert res.json()["dataset_flow"] is not None
    flows = c.get(f"/api/bugs/{bug.pk}/dataset-flows").json()
    assert flows[0]["status"] == "done" and flows[0]["added"] == 1 and flows[0]["versions"] == [{"dataset": ds["id"], "number": 1}]
    with django_capture_on_commit_callbacks(execute=True):
        again = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "fixed", "datasets": [ds["id"]]}, format="json")
    assert again.status_code == 200 and again.json()["changed"] is False
    assert DatasetMember.objects.filter(dataset_id=ds["id"]).count() == 1
    assert DatasetVersion.objects.filter(dataset_id=ds["id"]).count() == 1
    c.force_login(user)
    page = c.get(f"/bugs/{bug.pk}")
    assert b"dataset-flows" in page.content and b"v1" in page.content


def test_resolve_api_rejects_bad_dataset_hand_offs(user, project):
    c = client_for(user)
    other = ProjectFactory(creator=user)
    foreign = Dataset.objects.create(project=other, name="elsewhere")
    bug = make_bug(project)
    res = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "fixed", "datasets": [foreign.pk]}, format="json")
    assert res.status_code == 400 and "datasets" in res.json()["error"]["fields"]
    res = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "wont_fix", "datasets": [foreign.pk]}, format="json")
    assert res.status_code == 400
    bug.refresh_from_db()
    assert bug.status == "new" and BugDatasetFlow.objects.count() == 0
