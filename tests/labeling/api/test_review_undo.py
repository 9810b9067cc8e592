"""API: undoing a review decision (POST /api/items/{id}/resolve/undo)."""

import pytest

from labeling.models import GroundTruth, GuidelineRevision, Item, LabelChange
from tests.conftest import client_for
from tests.labeling.services.test_resolution import disputed_project, reviewer_of

pytestmark = pytest.mark.django_db


def test_undo_answers_the_retraction_and_the_guideline_revert():
    project, _, items = disputed_project(run=False)
    reviewer = reviewer_of(project)
    c = client_for(reviewer)
    item = items[0]
    res = c.post(
        f"/api/items/{item.pk}/resolve",
        {"label": "c1", "note": "Parcels.", "append_to_guideline": True},
        format="json",
    )
    assert res.status_code == 200, res.content
    decided_seq = res.json()["seq"]

    res = c.post(f"/api/items/{item.pk}/resolve/undo")
    assert res.status_code == 200, res.content
    body = res.json()
    revert = GuidelineRevision.objects.filter(label__project=project, label__key="c1").latest("id")
    assert body == {
        "item_id": item.pk,
        "undone_label": "c1",
        "label": None,
        "method": "retracted",
        "seq": decided_seq + 1,
        "status": "disputed",
        "guideline_revision_id": revert.pk,
        "guideline_kept": "",
    }
    assert not GroundTruth.objects.filter(item=item).exists()
    assert Item.objects.get(pk=item.pk).status == "disputed"
    assert LabelChange.objects.filter(item=item).count() == 2

    res = c.post(f"/api/items/{item.pk}/resolve/undo")
    assert res.status_code == 409
    assert res.json()["error"]["code"] == "already_undone"


def test_undo_by_another_reviewer_is_403_and_changes_nothing(settings):
    project, manager, items = disputed_project(run=False)
    reviewer, other = reviewer_of(project), reviewer_of(project)
    res = client_for(reviewer).post(f"/api/items/{items[0].pk}/resolve", {"label": "c2"}, format="json")
    assert res.status_code == 200
    res = client_for(other).post(f"/api/items/{items[0].pk}/resolve/undo")
    assert res.status_code == 403 and res.json()["error"]["code"] == "forbidden"
    assert GroundTruth.objects.get(item=items[0]).label == "c2"

    settings.LOUPE_REVIEW_UNDO_SECONDS = 0
    res = client_for(manager).post(f"/api/items/{items[0].pk}/resolve/undo")
    assert res.status_code == 409
    assert res.json()["error"]["code"] == "undo_expired"
    assert res.json()["error"]["message"].startswith("Too late to undo")
    assert GroundTruth.objects.get(item=items[0]).label == "c2"


def test_nothing_to_undo_is_409():
    project, _, items = disputed_project(run=False)
    res = client_for(reviewer_of(project)).post(f"/api/items/{items[0].pk}/resolve/undo")
    assert res.status_code == 409 and res.json()["error"]["code"] == "nothing_to_undo"
