"""POST /api/bugs/merge and POST /api/bugs/{id}/unmerge: the contract the stream's bulk merge
calls, roles, and the error answers (nothing changes on an error)."""

import pytest

from bugqueue.models import Bug, BugMerge
from labeling.models import Role
from tests.bugqueue.factories import make_bug
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def merge(client, body):
    return client.post("/api/bugs/merge", body, format="json")


def test_manager_merges_and_unmerges(user, project):
    c = client_for(user)
    target, a, b = (make_bug(project, title=t) for t in ("Target", "First dup", "Second dup"))
    res = merge(c, {"into": target.pk, "bugs": [b.pk, a.pk]})
    assert res.status_code == 200, res.json()
    assert res.json() == {"into": target.pk, "merged": sorted([a.pk, b.pk])}
    assert Bug.objects.get(pk=target.pk).occurrences == 3
    assert set(Bug.objects.filter(pk__in=[a.pk, b.pk]).values_list("status", "duplicate_of_id")) == {
        ("duplicate", target.pk)
    }
    detail = c.get(f"/api/bugs/{a.pk}").json()
    assert detail["status"] == "duplicate"

    res = c.post(f"/api/bugs/{a.pk}/unmerge", format="json")
    assert res.status_code == 200, res.json()
    assert res.json()["status"] == "new" and Bug.objects.get(pk=target.pk).occurrences == 2
    again = c.post(f"/api/bugs/{a.pk}/unmerge", format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_merged"


@pytest.mark.parametrize(
    "case, status, code",
    [
        ("self", 409, "merge_into_self"),
        ("closed", 409, "merge_into_closed"),
        ("other_project", 400, "invalid"),
        ("empty", 400, "invalid"),
        ("unknown_field", 400, "invalid"),
        ("missing_into", 404, "not_found"),
    ],
)
def test_merge_errors(user, project, case, status, code):
    c = client_for(user)
    target, source = make_bug(project, title="Target"), make_bug(project, title="Source")
    body = {"into": target.pk, "bugs": [source.pk]}
    if case == "self":
        body["bugs"] = [target.pk]
    elif case == "closed":
        c.post(f"/api/bugs/{target.pk}/resolve", {"resolution": "wont_fix"}, format="json")
    elif case == "other_project":
        other = ProjectFactory(creator=user)
        body["bugs"] = [source.pk, make_bug(other, title="Elsewhere").pk]
    elif case == "empty":
        body["bugs"] = []
    elif case == "unknown_field":
        body["comments"] = True
    elif case == "missing_into":
        body["into"] = 99999999
    res = merge(c, body)
    assert res.status_code == status, res.json()
    assert res.json()["error"]["code"] == code
    assert Bug.objects.get(pk=source.pk).status == "new" and not BugMerge.objects.exists()


def test_only_managers_merge(user, project):
    reviewer = add_member(project, UserFactory(), role=Role.REVIEWER)
    target, source = make_bug(project, title="Target"), make_bug(project, title="Source")
    res = merge(client_for(reviewer), {"into": target.pk, "bugs": [source.pk]})
    assert res.status_code == 403
    assert client_for(reviewer).post(f"/api/bugs/{source.pk}/unmerge").status_code == 403
    assert not BugMerge.objects.exists()
