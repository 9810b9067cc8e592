"""The queue API contract: /queue/next, /assignments/{id}/submit|skip, annotations feed, /me/stats.

Contract tests run on any database (SQLite uses the portable claim); query counts and concurrency
need PostgreSQL."""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from labeling.models import Annotation, Assignment, AssignmentStatus, Item, ItemStatus, Role
from tests.conftest import client_for
from tests.labeling.factories import UserFactory, annotators, bulk_items, queue_project


def next_(client, project, **body):
    return client.post(f"/api/projects/{project.id}/queue/next", body, format="json")


def submit(client, assignment_id, **body):
    return client.post(f"/api/assignments/{assignment_id}/submit", body, format="json")


def skip(client, assignment_id, **body):
    return client.post(f"/api/assignments/{assignment_id}/skip", body, format="json")


@pytest.mark.django_db
def test_next_returns_the_contract_shape_and_the_same_lease_again(db):
    project, items = queue_project(items=2)
    (a,) = annotators(project, 1)
    c = client_for(a)
    res = next_(c, project)
    assert res.status_code == 200, res.content
    body = res.json()
    assert set(body) == {"assignment", "item", "progress", "remaining"}
    assert set(body["assignment"]) == {"id", "expires_at"}
    assert body["item"] == {"id": items[0].pk, "external_id": items[0].external_id, "payload": items[0].payload}
    assert body["progress"] == {"done_by_me": 0, "done_today": 0, "remaining": 2, "remaining_capped": False}
    assert body["remaining"] == {"remaining": 2, "exact": True, "text": "2 left"}  # the item in hand counts
    again = next_(c, project).json()
    assert again["assignment"] == body["assignment"]
    ahead = next_(c, project, exclude=[body["assignment"]["id"]]).json()
    assert ahead["item"]["id"] == items[1].pk


@pytest.mark.django_db
def test_next_answers_204_when_nothing_is_left(db):
    project, _ = queue_project(items=1, overlap=1)
    a, b = annotators(project, 2)
    assert next_(client_for(a), project).status_code == 200
    res = next_(client_for(b), project)
    assert res.status_code == 204 and res.content == b""


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER, Role.MANAGER])
def test_any_member_role_may_label(db, role):
    project, _ = queue_project(items=1)
    (u,) = annotators(project, 1, role=role)
    assert next_(client_for(u), project).status_code == 200


@pytest.mark.django_db
def test_non_members_get_404_and_bad_input_400(db):
    project, _ = queue_project(items=1)
    outsider = UserFactory()
    res = next_(client_for(outsider), project)
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"
    (a,) = annotators(project, 1)
    res = next_(client_for(a), project, exclude=["x"])
    assert res.status_code == 400 and "exclude" in res.json()["error"]["fields"]
    assert not Assignment.objects.exists()


@pytest.mark.django_db
def test_submit_contract_and_errors(db):
    project, _ = queue_project(items=2, overlap=3)
    a, b = annotators(project, 2)
    ca, cb = client_for(a), client_for(b)
    lease = next_(ca, project).json()["assignment"]

    res = submit(ca, lease["id"], label="nope")
    assert res.status_code == 400 and res.json()["error"]["fields"] == {"label": ["Unknown label."]}
    res = submit(ca, lease["id"], label="pos", seconds_spent=-3)
    assert res.status_code == 400
    res = submit(cb, lease["id"], label="pos")
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"
    assert not Annotation.objects.exists()

    res = submit(ca, lease["id"], label="pos", seconds_spent=4.5)
    assert res.status_code == 201, res.content
    ann = res.json()["annotation"]
    assert ann["label"] == "pos" and ann["seconds_spent"] == 4.5 and ann["is_surplus"] is False
    assert ann["assignment"] == lease["id"] and res.json()["item_status"] == "open"
    assert res.json()["done_today"] == 1  # the server's count, which the label page shows

    res = submit(ca, lease["id"], label="neg")
    assert res.status_code == 409 and res.json()["error"]["code"] == "already_submitted"
    assert Annotation.objects.get().label == "pos"


@pytest.mark.django_db
def test_expired_lease_is_still_accepted_over_the_api(db):
    project, (item,) = queue_project(items=1, overlap=1)
    a, b = annotators(project, 2)
    la = next_(client_for(a), project).json()["assignment"]
    Assignment.objects.filter(pk=la["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    lb = next_(client_for(b), project).json()["assignment"]
    assert submit(client_for(b), lb["id"], label="neg").status_code == 201
    res = submit(client_for(a), la["id"], label="pos")
    assert res.status_code == 201 and res.json()["annotation"]["is_surplus"] is True
    assert Annotation.objects.filter(item=item).count() == 2


@pytest.mark.django_db
def test_skip_contract(db):
    project, items = queue_project(items=2, overlap=1)
    a, b = annotators(project, 2)
    lease = next_(client_for(a), project).json()["assignment"]
    assert skip(client_for(b), lease["id"]).status_code == 404
    res = skip(client_for(a), lease["id"], reason="not English")
    assert res.status_code == 200 and res.json() == {
        "assignment": {"id": lease["id"], "status": "skipped"},
        "remaining": {"remaining": 1, "exact": True, "text": "1 left"},  # a skipped item is not left for a
    }
    assert skip(client_for(a), lease["id"]).status_code == 409
    assert next_(client_for(b), project).json()["item"]["id"] == items[0].pk  # free for others at once
    assert next_(client_for(a), project).json()["item"]["id"] == items[1].pk  # never again for a


@pytest.mark.django_db
def test_query_counts_of_next_and_submit_are_pinned(postgres, django_assert_max_num_queries):
    project, _ = queue_project(items=0, overlap=2)
    bulk_items(project, 5_000)
    a, b = annotators(project, 2)
    ca, cb = client_for(a), client_for(b)
    next_(ca, project)  # warm up the connection and the progress row
    with django_assert_max_num_queries(100):  # a held lease
        assert next_(ca, project).status_code == 200
    with django_assert_max_num_queries(100):  # a new claim
        lease_b = next_(cb, project).json()["assignment"]
    with django_assert_max_num_queries(100):  # a plain submission
        assert submit(cb, lease_b["id"], label="pos").status_code == 201
    lease_a = Assignment.objects.get(annotator=a, item_id=Assignment.objects.get(pk=lease_b["id"]).item_id)
    with django_assert_max_num_queries(100):  # the one that completes the item and sets ground truth
        res = submit(ca, lease_a.pk, label="pos")
    assert res.status_code == 201 and res.json()["item_status"] == "resolved"


@pytest.mark.django_db
def test_annotations_feed_for_managers(db):
    project, items = queue_project(items=3, overlap=2)
    a, b = annotators(project, 2)
    for u in (a, b):
        for _ in range(2):
            lease = next_(client_for(u), project).json()["assignment"]
            assert submit(client_for(u), lease["id"], label="pos").status_code == 201
    manager = project.created_by
    res = client_for(manager).get(f"/api/projects/{project.id}/annotations")
    assert res.status_code == 200
    rows = res.json()["results"]
    assert len(rows) == 4 and {r["annotator"] for r in rows} == {a.username, b.username}
    assert set(rows[0]) >= {
        "id",
        "item",
        "item_external_id",
        "annotator",
        "label",
        "seconds_spent",
        "is_surplus",
        "created_at",
    }
    only_a = (
        client_for(manager).get(f"/api/projects/{project.id}/annotations", {"annotator": a.username}).json()["results"]
    )
    assert {r["annotator"] for r in only_a} == {a.username} and len(only_a) == 2
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert client_for(manager).get(f"/api/projects/{project.id}/annotations", {"since": later}).json()["results"] == []
    page = client_for(manager).get(f"/api/projects/{project.id}/annotations", {"page_size": 3}).json()
    assert len(page["results"]) == 3 and page["next"]
    rest = client_for(manager).get(page["next"]).json()["results"]
    assert len(rest) == 1 and rest[0]["id"] not in {r["id"] for r in page["results"]}
    bad = client_for(manager).get(f"/api/projects/{project.id}/annotations", {"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["since"]
    assert client_for(a).get(f"/api/projects/{project.id}/annotations").status_code == 403
    assert client_for(UserFactory()).get(f"/api/projects/{project.id}/annotations").status_code == 404


@pytest.mark.django_db
def test_my_stats(db):
    project, _ = queue_project(items=4, overlap=1)
    (a,) = annotators(project, 1)
    c = client_for(a)
    for seconds in (2.0, 4.0, 9.0):
        lease = next_(c, project).json()["assignment"]
        submit(c, lease["id"], label="pos", seconds_spent=seconds)
    lease = next_(c, project).json()["assignment"]
    skip(c, lease["id"])
    res = c.get("/api/me/stats", {"project": project.id})
    assert res.status_code == 200
    assert res.json() == {
        "project": project.id,
        "submitted": 3,
        "today": 3,
        "skipped": 1,
        "median_seconds": 4.0,
        "active_leases": 0,
        "remaining": 0,  # for this annotator: the fourth item was skipped, so it is not left for them
        "remaining_capped": False,
    }
    assert c.get("/api/me/stats").status_code == 400
    assert client_for(UserFactory()).get("/api/me/stats", {"project": project.id}).status_code == 404


@pytest.mark.django_db
def test_submit_after_leaving_the_project_is_404(db):
    project, _ = queue_project(items=1)
    (a,) = annotators(project, 1)
    lease = next_(client_for(a), project).json()["assignment"]
    from labeling.services.projects import member_remove

    member_remove(project=project, username=a.username)
    assert submit(client_for(a), lease["id"], label="pos").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_annotators_drain_a_project_over_http_concurrently(postgres_tx):
    project, _ = queue_project(overlap=3)
    bulk_items(project, 60)
    users = annotators(project, 8)
    failures = []

    def work(user):
        client = client_for(user)
        try:
            while True:
                res = next_(client, project)
                if res.status_code == 204:
                    return
                if res.status_code != 200:
                    failures.append(("next", res.status_code, res.content))
                    return
                lease = res.json()["assignment"]
                done = submit(client, lease["id"], label="pos")
                if done.status_code != 201:
                    failures.append(("submit", done.status_code, done.content))
                    return
        finally:
            connection.close()
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert failures == []
    per_item = Counter(Annotation.objects.filter(item__project=project).values_list("item_id", flat=True))
    assert len(per_item) == 60 and set(per_item.values()) == {3}
    assert len(set(Annotation.objects.filter(item__project=project).values_list("item_id", "annotator_id"))) == 180
    assert not Item.objects.filter(project=project).exclude(status=ItemStatus.RESOLVED).exists()
    assert not Assignment.objects.filter(item__project=project, status=AssignmentStatus.ACTIVE).exists()


@pytest.mark.django_db
def test_label_page_renders_for_members_only(db):
    project, _ = queue_project(items=2)
    (a,) = annotators(project, 1)
    from django.test import Client

    from tests.labeling.factories import PASSWORD

    web = Client()
    assert web.login(username=a.username, password=PASSWORD)
    res = web.get(f"/projects/{project.id}/label")
    assert res.status_code == 200
    html = res.content.decode()
    assert "Clearly positive sentiment." in html and 'id="label-config"' in html and "loupe/label.js" in html
    outsider = Client()
    outsider.login(username=UserFactory().username, password=PASSWORD)
    assert outsider.get(f"/projects/{project.id}/label").status_code == 404


@pytest.mark.django_db
def test_one_left_count_moves_with_my_work_and_others_in_every_answer(db):
    """queue/next, submit, skip and my-remaining answer the same count for an annotator, and it
    counts down as they work and as others finish items they have not seen."""
    project, _ = queue_project(items=5, overlap=2)
    a, b, c = annotators(project, 3)
    ca = client_for(a)
    mine = lambda: ca.get(f"/api/projects/{project.id}/my-remaining").json()  # noqa: E731
    assert mine() == {"remaining": 5, "exact": True, "text": "5 left"}

    body = next_(ca, project).json()
    assert body["remaining"] == mine() == {"remaining": 5, "exact": True, "text": "5 left"}
    assert (body["progress"]["remaining"], body["progress"]["remaining_capped"]) == (5, False)  # the deprecated pair
    res = submit(ca, body["assignment"]["id"], label="pos")
    assert res.status_code == 201 and res.json()["remaining"] == mine() == {
        "remaining": 4,
        "exact": True,
        "text": "4 left",
    }

    lease = next_(ca, project).json()
    assert lease["remaining"]["remaining"] == 4
    assert skip(ca, lease["assignment"]["id"]).json()["remaining"]["remaining"] == 3

    # b and c finish one item a has not seen (overlap 2): one fewer left for a.
    untouched = set(Item.objects.filter(project=project).exclude(assignments__annotator=a).values_list("pk", flat=True))
    for other in (b, c):
        co = client_for(other)
        for _ in range(5):
            lease = next_(co, project).json()
            if lease["item"]["id"] in untouched:
                assert submit(co, lease["assignment"]["id"], label="neg").status_code == 201
                target = lease["item"]["id"]
                break
            assert skip(co, lease["assignment"]["id"]).status_code == 200
        untouched = {target}
    assert Item.objects.get(pk=target).status != ItemStatus.OPEN
    assert mine()["remaining"] == 2
    body = next_(ca, project).json()
    assert body["remaining"]["remaining"] == 2 and body["item"]["id"] != target
    res = submit(ca, body["assignment"]["id"], label="pos")
    assert res.json()["remaining"] == mine() == {"remaining": 1, "exact": True, "text": "1 left"}
    assert client_for(a).get("/api/me/stats", {"project": project.id}).json()["remaining"] == 1
