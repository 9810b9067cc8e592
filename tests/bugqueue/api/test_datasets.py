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
    assert again.status_code == 200 and again.json() == {
        "changed": False,
        "version": None,
        "refused": {"without_ground_truth": [], "conflicts": []},
    }

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


# --- editing and curating a dataset ---------------------------------------------------------------
def test_create_with_gate_and_patch_changes_only_what_is_sent(user, project):
    c = client_for(user)
    ds = new_dataset(c, project, gate=True, min_accuracy=0.9)
    assert ds["gate"] is True
    new_dataset(c, project, name="other")
    res = c.patch(
        f"/api/datasets/{ds['id']}",
        {"name": "core v2", "description": "edited", "gate": False, "min_accuracy": None, "tags": ["label_flip"]},
        format="json",
    )
    assert res.status_code == 200, res.json()
    body = res.json()
    assert (body["name"], body["description"], body["gate"], body["min_accuracy"], body["tags"]) == (
        "core v2",
        "edited",
        False,
        None,
        ["label_flip"],
    )
    only_gate = c.patch(f"/api/datasets/{ds['id']}", {"gate": True}, format="json").json()
    assert only_gate["gate"] is True and only_gate["name"] == "core v2" and only_gate["tags"] == ["label_flip"]

    def unchanged():
        d = Dataset.objects.get(pk=ds["id"])
        return (d.name, d.description, d.gate, d.min_accuracy, sorted(d.tags.values_list("slug", flat=True)))

    before = unchanged()
    for bad in (
        {"name": ""},
        {"min_accuracy": 1.5},
        {"gate": "yes"},
        {"tags": ["no-such-tag"], "name": "renamed"},
        {"description": "x", "colour": "red"},
    ):
        res = c.patch(f"/api/datasets/{ds['id']}", bad, format="json")
        assert res.status_code == 400, (bad, res.json())
        assert set(res.json()) == {"error"} and {"code", "message"} <= set(res.json()["error"])
        assert unchanged() == before, bad
    clash = c.patch(f"/api/datasets/{ds['id']}", {"name": "other", "description": "lost?"}, format="json")
    assert clash.status_code == 409 and clash.json()["error"]["fields"] == {"name": ["Already used in this project."]}
    assert unchanged() == before

    annotator = client_for(add_member(project, role=Role.ANNOTATOR))
    reviewer = client_for(add_member(project, role=Role.REVIEWER))
    assert annotator.patch(f"/api/datasets/{ds['id']}", {"gate": False}, format="json").status_code == 403
    assert reviewer.patch(f"/api/datasets/{ds['id']}", {"gate": False}, format="json").status_code == 403
    assert client_for(UserFactory()).patch(f"/api/datasets/{ds['id']}", {}, format="json").status_code == 404
    assert unchanged() == before


def test_add_bug_labels_failures_like_the_bug_flow_and_refuses_conflicts(user, project):
    c = client_for(user)
    ds = new_dataset(c, project)
    agree, flipped, expected_only, unknown, conflict = make_items(project, 5, prefix="f")
    label([agree], "pos")
    label([flipped], "neg")  # ground truth wins when the failure expects nothing
    label([conflict], "neg")  # the failure expects pos: a reviewer must decide
    bug = failing_bug(
        project,
        failures=[(agree, "pos"), (flipped, None), (expected_only, "pos"), (unknown, None), (conflict, "pos")],
    )
    res = c.post(f"/api/datasets/{ds['id']}/versions", {"add_bug": bug.pk}, format="json")
    assert res.status_code == 400 and res.json()["error"]["code"] == "invalid_items"
    fields = res.json()["error"]["fields"]
    assert fields["without_ground_truth"] == [unknown.external_id]
    assert fields["conflicts"] == [f"{conflict.external_id}: expected pos, ground truth neg"]
    assert DatasetVersion.objects.count() == 0 and DatasetMember.objects.count() == 0

    res = c.post(f"/api/datasets/{ds['id']}/versions", {"add_bug": bug.pk, "skip_refused": True}, format="json")
    assert res.status_code == 201, res.json()
    body = res.json()
    assert body["version"]["bug"] == bug.pk and body["version"]["added"] == 3
    assert body["refused"] == {
        "without_ground_truth": [unknown.external_id],
        "conflicts": [{"external_id": conflict.external_id, "expected": "pos", "ground_truth": "neg"}],
    }
    rows = c.get(f"/api/datasets/{ds['id']}/versions/1/items").json()["results"]
    assert {r["external_id"]: (r["label"], r["bug"]) for r in rows} == {
        agree.external_id: ("pos", bug.pk),
        flipped.external_id: ("neg", bug.pk),
        expected_only.external_id: ("pos", bug.pk),
    }
    # remove_bug takes the bug's items out again
    res = c.post(f"/api/datasets/{ds['id']}/versions", {"remove_bug": bug.pk}, format="json")
    assert res.status_code == 201 and res.json()["version"]["removed"] == 3 and res.json()["version"]["size"] == 0
    # a bug of another project is not found here
    foreign = failing_bug(ProjectFactory(creator=user), title="elsewhere", failures=[(agree, "pos")])
    res = c.post(f"/api/datasets/{ds['id']}/versions", {"add_bug": foreign.pk}, format="json")
    assert res.status_code == 400 and "add_bug" in res.json()["error"]["fields"]


def test_search_lists_items_and_add_search_adds_the_matches(user, project):
    c = client_for(user)
    ds = new_dataset(c, project)
    refunds = make_items(project, 4, prefix="r", text='Refund "please"')
    others = make_items(project, 3, prefix="o", text="login broken")
    label(refunds[:3] + others, "pos")
    c.post(f"/api/datasets/{ds['id']}/versions", {"add": [refunds[0].external_id]}, format="json")

    found = c.get(f"/api/datasets/{ds['id']}/item-search", {"q": 'd "PLEASE"', "limit": 3}).json()
    assert found["more"] is True and len(found["results"]) == 3
    rows = c.get(f"/api/datasets/{ds['id']}/item-search?q=REFUND").json()["results"]
    assert [r["external_id"] for r in rows] == [i.external_id for i in reversed(refunds)]  # newest first
    assert {r["external_id"]: r["in_dataset"] for r in rows}[refunds[0].external_id] is True
    assert rows[0] == {
        "external_id": refunds[3].external_id,
        "text": 'Refund "please" 3',
        "status": "open",
        "ground_truth": None,
        "in_dataset": False,
    }
    resolved = c.get(f"/api/datasets/{ds['id']}/item-search?q=refund&status=resolved").json()["results"]
    assert {r["external_id"] for r in resolved} == {i.external_id for i in refunds[:3]}
    assert c.get(f"/api/datasets/{ds['id']}/item-search?status=nope").status_code == 400
    assert c.get(f"/api/datasets/{ds['id']}/item-search?limit=0").status_code == 400
    annotator = client_for(add_member(project, role=Role.ANNOTATOR))
    assert annotator.get(f"/api/datasets/{ds['id']}/item-search?q=refund").status_code == 403

    # the unlabeled match refuses the whole request; only resolved ones are added with skip or a status
    res = c.post(f"/api/datasets/{ds['id']}/versions", {"add_search": {"q": "refund", "limit": 10}}, format="json")
    assert res.status_code == 400 and res.json()["error"]["fields"]["without_ground_truth"] == [refunds[3].external_id]
    assert Dataset.objects.get(pk=ds["id"]).latest_version == 1
    res = c.post(
        f"/api/datasets/{ds['id']}/versions",
        {"add_search": {"q": "refund", "status": "resolved", "limit": 10}},
        format="json",
    )
    assert res.status_code == 201, res.json()
    version = res.json()["version"]
    assert (version["number"], version["added"], version["size"]) == (2, 2, 3)
    assert 'Search "refund" status resolved' in version["note"]
    members = set(
        DatasetMember.objects.filter(dataset_id=ds["id"], removed_in__isnull=True).values_list(
            "item__external_id", flat=True
        )
    )
    assert members == {i.external_id for i in refunds[:3]}
    for bad in ({"limit": 5}, {"q": "x", "limit": 0}, {"q": "x"}, {"q": "x", "limit": 3, "status": "gone"}):
        res = c.post(f"/api/datasets/{ds['id']}/versions", {"add_search": bad}, format="json")
        assert res.status_code == 400, bad
    assert Dataset.objects.get(pk=ds["id"]).latest_version == 2


def test_version_downloads_as_csv(user, project):
    import csv
    import io

    c = client_for(user)
    ds = new_dataset(c, project)
    items = make_items(project, 3, text='comma, "quote"\nnewline')
    label(items, "pos")
    bug = failing_bug(project, failures=[(items[2], "pos")])
    c.post(f"/api/datasets/{ds['id']}/versions", {"add": [i.external_id for i in items[:2]]}, format="json")
    c.post(f"/api/datasets/{ds['id']}/versions", {"add_bug": bug.pk}, format="json")
    res = c.get(f"/api/datasets/{ds['id']}/versions/2/items?format=csv")
    assert res.status_code == 200 and res["Content-Type"].startswith("text/csv")
    assert 'filename="dataset-' in res["Content-Disposition"] and res["Content-Disposition"].endswith('-v2.csv"')
    rows = list(csv.reader(io.StringIO(b"".join(res.streaming_content).decode())))
    assert rows == [
        ["external_id", "label", "bug", "added_in", "text"],
        [items[0].external_id, "pos", "", "1", 'comma, "quote"\nnewline 0'],
        [items[1].external_id, "pos", "", "1", 'comma, "quote"\nnewline 1'],
        [items[2].external_id, "pos", str(bug.pk), "2", 'comma, "quote"\nnewline 2'],
    ]
    v1 = list(
        csv.reader(
            io.StringIO(
                b"".join(c.get(f"/api/datasets/{ds['id']}/versions/1/items?format=csv").streaming_content).decode()
            )
        )
    )
    assert len(v1) == 3
    assert c.get(f"/api/datasets/{ds['id']}/versions/2/items?format=xml").status_code == 400
