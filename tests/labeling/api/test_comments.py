"""Comments on items through the API: who may read and post, the blind rule for annotators, @mentions
(recorded, mailed, listed at /api/me/mentions) and deleting one's own comment."""

import pytest
from django.core import mail
from django.utils import timezone

from labeling.models import Assignment, AssignmentKind, AssignmentStatus, CommentMention, ItemComment, ItemStatus, Role
from tests.conftest import client_for
from tests.labeling.factories import ItemFactory, ProjectFactory, UserFactory, add_member


@pytest.fixture
def world(db, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    manager = UserFactory(username="maya", email="maya@example.com")
    project = ProjectFactory(creator=manager)
    reviewer = add_member(project, UserFactory(username="rex", email="rex@example.com"), Role.REVIEWER)
    annotator = add_member(project, UserFactory(username="ann", email="ann@example.com"), Role.ANNOTATOR)
    item = ItemFactory(project=project)
    return project, item, manager, reviewer, annotator


def url(item):
    return f"/api/items/{item.pk}/comments"


def close_for(item, user):
    now = timezone.now()
    Assignment.objects.create(
        item=item, annotator=user, kind=AssignmentKind.ANNOTATE, status=AssignmentStatus.SUBMITTED, expires_at=now
    )
    item.status = ItemStatus.RESOLVED
    item.save(update_fields=["status"])


def test_post_and_list_with_mention_mailed(world, django_capture_on_commit_callbacks):
    project, item, manager, reviewer, annotator = world
    c = client_for(reviewer)
    with django_capture_on_commit_callbacks(execute=True):
        res = c.post(url(item), {"text": "Looks like billing, @maya? @nobody @rex"}, format="json")
    assert res.status_code == 201, res.json()
    body = res.json()
    assert (body["author"], body["mentions"], body["own"]) == ("rex", ["maya"], True)
    assert [m.to for m in mail.outbox] == [["maya@example.com"]]
    assert "rex mentioned you" in mail.outbox[0].subject and "billing" in mail.outbox[0].body
    listed = client_for(manager).get(url(item)).json()
    assert [(r["text"][:12], r["own"]) for r in listed] == [("Looks like b", False)]
    mentions = client_for(manager).get("/api/me/mentions").json()
    assert [(m["external_id"], m["comment"]["author"]) for m in mentions] == [(item.external_id, "rex")]
    assert client_for(reviewer).get("/api/me/mentions").json() == []


def test_annotator_on_open_item_sees_only_own_comments_and_is_not_mentioned(world, django_capture_on_commit_callbacks):
    project, item, manager, reviewer, annotator = world
    with django_capture_on_commit_callbacks(execute=True):
        client_for(reviewer).post(url(item), {"text": "It is billing. cc @ann"}, format="json")
    assert mail.outbox == [] and CommentMention.objects.count() == 0
    a = client_for(annotator)
    assert a.post(url(item), {"text": "Unsure here"}, format="json").status_code == 201
    assert [r["text"] for r in a.get(url(item)).json()] == ["Unsure here"]
    assert a.get("/api/me/mentions").json() == []
    close_for(item, annotator)
    assert [r["text"] for r in a.get(url(item)).json()] == ["It is billing. cc @ann", "Unsure here"]


def test_mention_of_annotator_on_closed_item_is_recorded(world, django_capture_on_commit_callbacks):
    project, item, manager, reviewer, annotator = world
    close_for(item, annotator)
    with django_capture_on_commit_callbacks(execute=True):
        client_for(manager).post(url(item), {"text": "@ann see the fix"}, format="json")
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]
    assert len(client_for(annotator).get("/api/me/mentions").json()) == 1


def test_outsiders_and_anonymous(world, client):
    project, item, *_ = world
    assert client.get(url(item)).status_code == 401
    outsider = client_for(UserFactory())
    assert outsider.get(url(item)).status_code == 404
    assert outsider.post(url(item), {"text": "hi"}, format="json").status_code == 404
    assert client_for(UserFactory()).get("/api/items/999999/comments").status_code == 404


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "   "}, {"text": "x" * 5001}, {"text": 3}])
def test_bad_input_is_a_400_and_changes_nothing(world, body):
    project, item, manager, *_ = world
    res = client_for(manager).post(url(item), body, format="json")
    assert res.status_code == 400, res.json()
    assert "error" in res.json()
    assert ItemComment.objects.count() == 0


def test_delete_own_only(world):
    project, item, manager, reviewer, annotator = world
    cid = client_for(reviewer).post(url(item), {"text": "mine"}, format="json").json()["id"]
    assert client_for(manager).delete(f"/api/comments/{cid}").status_code == 403
    # the annotator may not read it (item open to them): no existence leak
    assert client_for(annotator).delete(f"/api/comments/{cid}").status_code == 404
    gone = client_for(UserFactory()).delete(f"/api/comments/{cid}")
    assert (gone.status_code, gone.json()["error"]["message"]) == (404, "Comment not found.")
    assert client_for(reviewer).delete(f"/api/comments/{cid}").status_code == 204
    assert client_for(reviewer).delete(f"/api/comments/{cid}").status_code == 404
    assert ItemComment.objects.count() == 0
