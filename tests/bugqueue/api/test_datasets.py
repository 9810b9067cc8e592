import json

import pytest

from bugqueue.models import BugDatasetFlow, Dataset, DatasetMember, DatasetVersion
from bugqueue.selectors import datasets as selectors_datasets
from labeling.models import Role
from labeling.services.ground_truth import ground_truth_set
from tests.bugqueue.factories import failing_bug, label, make_items, new_dataset
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def test_create_list_and_permissions(user, project):
    c = client_for(user)
    ds = new_dataset(c, project, min_accuracy=0.9, description="the core slice")
    assert ds["latest_version"] == 0 and ds["min_accuracy"] == 0.9
    assert c.post("/api/datasets", {"project": project.id, "name": "core"}, format="json").status_code == 409
    assert (
        c.post("/api/datasets", {"project": project.id, "name": "x", "tags": ["nope"]}, format="json").status_code
        == 400
    )
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
    assert c.post(f"/api/datasets/{ds['id']}/versions", {"add": ["ghost"]}, format="json").json()["error"]["fields"][
        "unknown"
    ] == ["ghost"]
    assert DatasetVersion.objects.count() == 0 and DatasetMember.objects.count() == 0

    v1 = c.post(f"/api/datasets/{ds['id']}/versions", {"add": ext[:3], "note": "seed"}, format="json")
    assert v1.status_code == 201 and v1.json()["version"]["number"] == 1 and v1.json()["version"]["size"] == 3
    again = c.post(f"/api/datasets/{ds['id']}/versions", {"add": ext[:3]}, format="json")
    assert again.status_code == 200 and again.json() == {"changed": False, "version": None}

    ground_truth_set(item=items[0], label="neg", method="adjudicated")  # a later change of ground truth
    v2 = c.post(
        f"/api/datasets/{ds['id']}/versions", {"add": [ext[3], ext[4]], "remove": [ext[1]]}, format="json"
    ).json()["version"]
    assert (v2["number"], v2["added"], v2["removed"], v2["relabeled"], v2["size"]) == (2, 2, 1, 1, 4)

    def items_of(n):
        return {
            r["external_id"]: r["label"]
            for r in c.get(f"/api/datasets/{ds['id']}/versions/{n}/items").json()["results"]
        }

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
    items = make_items(project, 30, text='unicodé, "quoted"')
    label(items)
    c.post(f"/api/datasets/{ds['id']}/versions", {"add": [i.external_id for i in items]}, format="json")
    res = c.get(f"/api/datasets/{ds['id']}/versions/1/items?format=jsonl")
    assert res.status_code == 200 and res.streaming
    rows = [json.loads(line) for line in b"".join(res.streaming_content).decode().splitlines()]
    assert [r["external_id"] for r in rows] == [i.external_id for i in items]
    assert rows[0]["payload"]["text"].startswith("unicodé") and all(r["label"] == "pos" for r in rows)


def test_resolve_api_hands_failures_to_datasets_idempotently(
    user, project, eager_celery, django_capture_on_commit_callbacks
):
    c = client_for(user)
    ds = new_dataset(c, project)
    (known,) = make_items(project, 1, prefix="k")
    bug = failing_bug(project, failures=[(known, "pos")])
    with django_capture_on_commit_callbacks(execute=True):
        res = c.post(
            f"/api/bugs/{bug.pk}/resolve",
            {"resolution": "fixed", "note": "retrained", "datasets": [ds["id"]]},
            format="json",
        )
    assert res.status_code == 200, res.json()
    assert res.json()["dataset_flow"] is not None
    flows = c.get(f"/api/bugs/{bug.pk}/dataset-flows").json()
    assert (
        flows[0]["status"] == "done"
        and flows[0]["added"] == 1
        and flows[0]["versions"] == [{"dataset": ds["id"], "number": 1}]
    )
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
    bug = failing_bug(project)
    res = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "fixed", "datasets": [foreign.pk]}, format="json")
    assert res.status_code == 400 and "datasets" in res.json()["error"]["fields"]
    res = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "wont_fix", "datasets": [foreign.pk]}, format="json")
    assert res.status_code == 400
    bug.refresh_from_db()
    assert bug.status == "new" and BugDatasetFlow.objects.count() == 0
