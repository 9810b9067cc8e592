"""Own recent answers (/my-answers) and changing one (/annotations/{id}/edit) while undecided."""

import pytest

from labeling.models import Annotation, AnnotationEdit, GroundTruth, Item, ItemStatus
from tests.conftest import client_for
from tests.labeling.factories import annotators, queue_project


def label_one(client, project, label):
    nxt = client.post(f"/api/projects/{project.id}/queue/next", {}, format="json").json()
    res = client.post(f"/api/assignments/{nxt['assignment']['id']}/submit", {"label": label}, format="json")
    assert res.status_code == 201, res.content
    return res.json()["annotation"]["id"]


def edit(client, annotation_id, label):
    return client.post(f"/api/annotations/{annotation_id}/edit", {"label": label}, format="json")


@pytest.mark.django_db
def test_my_answers_lists_own_latest_first_with_editable(db):
    project, items = queue_project(items=3, overlap=2)
    a, b = annotators(project, 2)
    ca = client_for(a)
    ids = [label_one(ca, project, "pos") for _ in range(3)]
    label_one(client_for(b), project, "neg")
    res = ca.get(f"/api/projects/{project.id}/my-answers")
    assert res.status_code == 200, res.content
    rows = res.json()["results"]
    assert [r["id"] for r in rows] == ids[::-1]
    assert rows[0]["external_id"] == items[2].external_id and rows[0]["label"] == "pos"
    assert all(r["editable"] for r in rows)


@pytest.mark.django_db
def test_edit_own_open_answer_changes_label_and_records_history(db):
    project, items = queue_project(items=1, overlap=2)
    (a,) = annotators(project, 1)
    c = client_for(a)
    ann = label_one(c, project, "pos")
    res = edit(c, ann, "neg")
    assert res.status_code == 200, res.content
    assert res.json()["label"] == "neg"
    assert Annotation.objects.get(pk=ann).label == "neg"
    h = AnnotationEdit.objects.get(annotation_id=ann)
    assert (h.old_label, h.new_label, h.editor_id) == ("pos", "neg", a.pk)
    item = Item.objects.get(pk=items[0].pk)
    assert item.annotation_count == 1 and item.status == ItemStatus.OPEN


@pytest.mark.django_db
def test_others_annotation_is_404_and_unchanged(db):
    project, _ = queue_project(items=1, overlap=2)
    a, b = annotators(project, 2)
    ann = label_one(client_for(a), project, "pos")
    res = edit(client_for(b), ann, "neg")
    assert res.status_code == 404
    assert res.json()["error"]["code"]
    assert Annotation.objects.get(pk=ann).label == "pos"
    assert not AnnotationEdit.objects.exists()


@pytest.mark.django_db
def test_bad_label_is_400_nothing_changed(db):
    project, _ = queue_project(items=1, overlap=2)
    (a,) = annotators(project, 1)
    c = client_for(a)
    ann = label_one(c, project, "pos")
    assert edit(c, ann, "nope").status_code == 400
    assert edit(c, ann, "").status_code == 400
    assert Annotation.objects.get(pk=ann).label == "pos"
    assert not AnnotationEdit.objects.exists()


@pytest.mark.django_db
def test_decided_item_is_409_decided(db):
    project, items = queue_project(items=1, overlap=2)
    a, b = annotators(project, 2)
    ca = client_for(a)
    ann = label_one(ca, project, "pos")
    label_one(client_for(b), project, "pos")
    assert GroundTruth.objects.filter(item_id=items[0].pk, label="pos").exists()
    res = edit(ca, ann, "neg")
    assert res.status_code == 409
    assert res.json()["error"]["code"] == "decided"
    assert "reviewer" in res.json()["error"]["message"]
    assert Annotation.objects.get(pk=ann).label == "pos"
    rows = ca.get(f"/api/projects/{project.id}/my-answers").json()["results"]
    assert rows[0]["editable"] is False


@pytest.mark.django_db
def test_edit_that_makes_a_disputed_item_unanimous_resolves_it(db):
    project, items = queue_project(items=1, overlap=2)
    a, b = annotators(project, 2)
    ca = client_for(a)
    ann = label_one(ca, project, "neg")
    label_one(client_for(b), project, "pos")
    assert Item.objects.get(pk=items[0].pk).status == ItemStatus.DISPUTED
    res = edit(ca, ann, "pos")
    assert res.status_code == 200, res.content
    item = Item.objects.get(pk=items[0].pk)
    assert item.status == ItemStatus.RESOLVED and item.annotation_count == 2
    assert GroundTruth.objects.get(item_id=item.pk).label == "pos"


@pytest.mark.django_db
def test_my_remaining_counts_down_for_me_and_for_others_work(db):
    project, _ = queue_project(items=3, overlap=1)
    a, b = annotators(project, 2)
    ca, cb = client_for(a), client_for(b)
    url = f"/api/projects/{project.id}/my-remaining"
    assert ca.get(url).json() == {"remaining": 3, "exact": True, "text": "3 left"}
    label_one(ca, project, "pos")
    assert ca.get(url).json()["remaining"] == 2
    label_one(cb, project, "neg")  # someone else's work counts too (overlap 1: that item is done)
    assert ca.get(url).json()["remaining"] == 1


@pytest.mark.django_db
def test_my_remaining_is_an_estimate_above_ten_thousand(db, monkeypatch):
    from labeling.selectors import queue

    monkeypatch.setattr(queue, "REMAINING_EXACT_UP_TO", 2)
    project, _ = queue_project(items=5, overlap=1)
    (a,) = annotators(project, 1)
    body = client_for(a).get(f"/api/projects/{project.id}/my-remaining").json()
    assert body == {"remaining": 5, "exact": False, "text": "about 5 left"}
