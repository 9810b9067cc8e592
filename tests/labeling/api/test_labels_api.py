"""The label set through the API: add, edit, retire, restore, merge; refusals in the house error shape."""

import pytest

from labeling.models import Annotation, LabelClass, LabelOperation, Role
from tests.conftest import client_for
from tests.labeling.factories import ItemFactory, ProjectFactory, UserFactory, add_member, annotate


@pytest.fixture
def world(db):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    return project, client_for(manager)


def url(project, tail=""):
    return f"/api/projects/{project.pk}/labels{tail}"


def test_add_edit_retire_restore(world):
    project, c = world
    res = c.post(url(project), {"key": "mixed", "name": "Mixed", "hotkey": "4"}, format="json")
    assert res.status_code == 201, res.json()
    assert res.json()["retired"] is False
    res = c.patch(url(project, "/mixed"), {"name": "Mixed feelings", "guideline": "Both."}, format="json")
    assert (res.status_code, res.json()["name"], res.json()["key"]) == (200, "Mixed feelings", "mixed")
    res = c.post(url(project, "/mixed/retire"))
    assert (res.status_code, res.json()["retired"]) == (200, True)
    assert c.post(url(project, "/mixed/retire")).json()["error"]["code"] == "label_retired"
    res = c.post(url(project, "/mixed/restore"))
    assert (res.status_code, res.json()["retired"]) == (200, False)
    kinds = list(LabelOperation.objects.filter(project=project).values_list("kind", flat=True))
    assert kinds == ["add", "rename", "retire", "restore"]
    # GET still answers the label history
    assert c.get(url(project)).status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [
        ({"key": "Bad Key", "name": "x"}, "key"),
        ({"key": "ok"}, "name"),
        ({"key": "ok", "name": "x", "hotkey": "?"}, "hotkey"),
    ],
)
def test_add_400_names_the_field_and_changes_nothing(world, body, field):
    project, c = world
    res = c.post(url(project), body, format="json")
    assert res.status_code == 400
    assert field in res.json()["error"]["fields"]
    assert LabelClass.objects.filter(project=project).count() == 3


def test_add_409_on_taken_key_and_hotkey(world):
    project, c = world
    assert c.post(url(project), {"key": "pos", "name": "P"}, format="json").status_code == 409
    res = c.post(url(project), {"key": "new", "name": "N", "hotkey": "1"}, format="json")
    assert (res.status_code, res.json()["error"]["code"]) == (409, "hotkey_taken")


def test_merge_moves_annotations(world):
    project, c = world
    item = ItemFactory(project=project)
    annotate(item, [(UserFactory(), "neu")], settle_item=False)
    res = c.post(url(project, "/neu/merge"), {"into": "neg"}, format="json")
    assert res.status_code == 200, res.json()
    assert res.json()["moved"]["annotations"] == 1
    assert Annotation.objects.get(item=item).label == "neg"
    assert c.post(url(project, "/neu/merge"), {"into": "neu"}, format="json").status_code == 400
    assert c.post(url(project, "/pos/merge"), {"into": "nope"}, format="json").status_code == 400
    assert c.post(url(project, "/pos/merge"), {"into": "neu"}, format="json").status_code == 409  # retired
    assert c.post(url(project, "/nope/merge"), {"into": "pos"}, format="json").status_code == 404


def test_only_managers_change_labels(world):
    project, _ = world
    annotator = UserFactory()
    add_member(project, annotator, Role.ANNOTATOR)
    c = client_for(annotator)
    assert c.post(url(project), {"key": "x", "name": "X"}, format="json").status_code == 403
    assert c.post(url(project, "/pos/retire")).status_code == 403
    assert c.post(url(project, "/pos/merge"), {"into": "neg"}, format="json").status_code == 403
    assert client_for(UserFactory()).post(url(project, "/pos/retire")).status_code == 404
    assert LabelClass.objects.get(project=project, key="pos").retired_at is None


def test_project_patch_points_to_the_label_endpoints(world):
    project, c = world
    res = c.patch(f"/api/projects/{project.pk}", {"labels": [{"key": "x", "name": "X"}]}, format="json")
    assert res.status_code == 400
    assert "/labels/{key}/retire" in res.json()["error"]["fields"]["labels"][0]
    assert LabelClass.objects.filter(project=project).count() == 3
