import pytest

from labeling.models import LabelSequence, Membership, Project, Role
from labeling.services.export import export_grant_add
from labeling.services.projects import user_allow_project_create
from tests.conftest import client_for
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db

LABELS = [{"key": "cat", "name": "Cat", "guideline": "A feline.", "hotkey": "c"}, {"key": "dog", "name": "Dog"}]


@pytest.fixture
def user(db):
    """Most tests here create projects: their user is one staff allowed to (labeling.add_project)."""
    u = UserFactory()
    user_allow_project_create(user=u)
    return u


def create(client, **overrides):
    body = {"name": "Pets", "labels": LABELS, **overrides}
    return client.post("/api/projects", body, format="json")


def test_create_project_with_defaults_creator_is_manager(user):
    res = create(client_for(user))
    assert res.status_code == 201, res.json()
    data = res.json()
    assert data["annotations_per_item"] == 3 and data["lease_seconds"] == 600 and data["queue_order"] == "fifo"
    assert [lab["key"] for lab in data["labels"]] == ["cat", "dog"]
    assert data["labels"][0]["guideline"] == "A feline." and data["role"] == "manager"
    assert Membership.objects.get(project_id=data["id"], user=user).role == Role.MANAGER
    assert LabelSequence.objects.filter(project_id=data["id"], last_seq=0).exists()


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"labels": [{"key": "only", "name": "One"}]}, "labels"),
        ({"labels": [{"key": "Bad Key", "name": "x"}, {"key": "b", "name": "y"}]}, "labels"),
        ({"labels": [{"key": "a", "name": "x"}, {"key": "a", "name": "y"}]}, "labels"),
        ({"labels": [{"key": "a", "name": "x", "hotkey": "1"}, {"key": "b", "name": "y", "hotkey": "1"}]}, "labels"),
        ({"labels": [{"key": "k" * 65, "name": "x"}, {"key": "b", "name": "y"}]}, "labels"),
        ({"annotations_per_item": 0}, "annotations_per_item"),
        ({"annotations_per_item": 11}, "annotations_per_item"),
        ({"lease_seconds": 29}, "lease_seconds"),
        ({"lease_seconds": 86401}, "lease_seconds"),
        ({"queue_order": "random"}, "queue_order"),
        ({"accept_threshold": 1.5}, "accept_threshold"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_project_is_400_and_writes_nothing(user, overrides, field):
    res = create(client_for(user), **overrides)
    assert res.status_code == 400, res.json()
    assert field in res.json()["error"]["fields"]
    assert Project.objects.count() == 0


def test_101_labels_rejected_100_accepted(user):
    many = [{"key": f"l{i}", "name": f"L{i}"} for i in range(101)]
    assert create(client_for(user), labels=many).status_code == 400
    assert create(client_for(user), labels=many[:100]).status_code == 201


def test_project_creation_needs_staff_or_the_permission_staff_give(user, staff, project):
    plain = UserFactory()
    service_account = UserFactory()  # an export grant allows exports only
    export_grant_add(project=project, username=service_account.username, actor=user)
    manager_elsewhere = add_member(project, UserFactory(), Role.MANAGER)  # a role in a project is no licence
    before = Project.objects.count()
    for who in (plain, service_account, manager_elsewhere):
        res = create(client_for(who))
        assert res.status_code == 403, res.json()
        assert res.json()["error"]["code"] == "forbidden" and "Creating projects" in res.json()["error"]["message"]
        assert create(client_for(who), labels=[]).status_code == 403  # refused before any validation
    assert Project.objects.count() == before
    assert create(client_for(staff)).status_code == 201
    assert create(client_for(user), name="Allowed").status_code == 201


def test_staff_create_users_allowed_to_create_projects(staff):
    res = client_for(staff).post(
        "/api/users", {"username": "eng", "password": "s3cret-enough-pw", "can_create_projects": True}, format="json"
    )
    assert res.status_code == 201
    eng = UserFactory._meta.model.objects.get(username="eng")
    assert client_for(eng).get("/api/me").json()["can_create_projects"] is True
    assert create(client_for(eng)).status_code == 201
    plain = client_for(staff).post("/api/users", {"username": "ann2", "password": "s3cret-enough-pw"}, format="json")
    ann = UserFactory._meta.model.objects.get(pk=plain.json()["id"])
    assert client_for(ann).get("/api/me").json()["can_create_projects"] is False
    assert create(client_for(ann)).status_code == 403


def test_home_page_offers_project_creation_only_to_who_may(client, staff):
    plain = UserFactory()
    client.force_login(plain)
    page = client.get("/").content.decode()
    assert "POST /api/projects" not in page and "Ask a project manager to add you" in page
    user_allow_project_create(user=plain)
    client.force_login(UserFactory._meta.model.objects.get(pk=plain.pk))
    assert "POST /api/projects" in client.get("/").content.decode()


def test_list_shows_member_projects_staff_sees_all(user, staff):
    other = UserFactory()
    user_allow_project_create(user=other)
    mine = create(client_for(user)).json()["id"]
    theirs = create(client_for(other), name="Other").json()["id"]
    assert [p["id"] for p in client_for(user).get("/api/projects").json()] == [mine]
    assert {p["id"] for p in client_for(staff).get("/api/projects").json()} == {mine, theirs}


def test_non_member_gets_404_everywhere_under_the_project(user, project):
    outsider = client_for(UserFactory())
    pid = project.id
    for method, url, body in [
        ("get", f"/api/projects/{pid}", None),
        ("patch", f"/api/projects/{pid}", {"name": "x"}),
        ("get", f"/api/projects/{pid}/members", None),
        ("post", f"/api/projects/{pid}/members", {"username": user.username, "role": "annotator"}),
        ("delete", f"/api/projects/{pid}/members/{user.username}", None),
        ("get", f"/api/projects/{pid}/items", None),
        ("post", f"/api/projects/{pid}/items", [{"external_id": "a", "payload": {}}]),
    ]:
        res = getattr(outsider, method)(url, body, format="json")
        assert res.status_code == 404, (method, url, res.status_code)
        assert res.json()["error"]["code"] == "not_found"
    # and the same for a project that does not exist at all: no existence leak
    assert outsider.get("/api/projects/999999").json() == client_for(UserFactory()).get(f"/api/projects/{pid}").json()


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER])
def test_non_manager_gets_403_on_manager_operations(project, role):
    member = client_for(add_member(project, role=role))
    pid = project.id
    assert member.get(f"/api/projects/{pid}").status_code == 200
    assert member.get(f"/api/projects/{pid}/members").status_code == 200
    for method, url, body in [
        ("patch", f"/api/projects/{pid}", {"name": "x"}),
        ("post", f"/api/projects/{pid}/members", {"username": "x", "role": "annotator"}),
        ("delete", f"/api/projects/{pid}/members/x", None),
        ("post", f"/api/projects/{pid}/items", [{"external_id": "a", "payload": {}}]),
    ]:
        res = getattr(member, method)(url, body, format="json")
        assert res.status_code == 403, (method, url)
        assert res.json()["error"]["code"] == "forbidden"


def test_patch_project(user, project):
    res = client_for(user).patch(
        f"/api/projects/{project.id}", {"lease_seconds": 120, "queue_order": "priority"}, format="json"
    )
    assert res.status_code == 200
    project.refresh_from_db()
    assert project.lease_seconds == 120 and project.queue_order == "priority"


def test_patch_rejects_bad_and_unknown_fields(user, project):
    c = client_for(user)
    assert c.patch(f"/api/projects/{project.id}", {"lease_seconds": 5}, format="json").status_code == 400
    res = c.patch(f"/api/projects/{project.id}", {"id": 5}, format="json")
    assert res.status_code == 400 and "id" in res.json()["error"]["fields"]
    project.refresh_from_db()
    assert project.lease_seconds == 600


def test_members_add_list_change_remove(user, project):
    c = client_for(user)
    ann = UserFactory()
    res = c.post(f"/api/projects/{project.id}/members", {"username": ann.username, "role": "annotator"}, format="json")
    assert res.status_code == 201 and res.json()["role"] == "annotator"
    res = c.post(f"/api/projects/{project.id}/members", {"username": ann.username, "role": "reviewer"}, format="json")
    assert res.status_code == 200 and res.json()["role"] == "reviewer"
    listed = {m["username"]: m["role"] for m in c.get(f"/api/projects/{project.id}/members").json()}
    assert listed == {user.username: "manager", ann.username: "reviewer"}
    assert c.delete(f"/api/projects/{project.id}/members/{ann.username}").status_code == 204
    assert c.delete(f"/api/projects/{project.id}/members/{ann.username}").status_code == 404
    assert client_for(ann).get(f"/api/projects/{project.id}").status_code == 404


def test_member_errors(user, project):
    c = client_for(user)
    assert (
        c.post(
            f"/api/projects/{project.id}/members", {"username": "ghost", "role": "annotator"}, format="json"
        ).status_code
        == 400
    )
    assert (
        c.post(
            f"/api/projects/{project.id}/members", {"username": user.username, "role": "king"}, format="json"
        ).status_code
        == 400
    )
    res = c.delete(f"/api/projects/{project.id}/members/{user.username}")
    assert res.status_code == 409 and res.json()["error"]["code"] == "last_manager"


def test_home_page_lists_member_projects_and_staff_sees_all(client, user, staff):
    from tests.labeling.factories import ProjectFactory

    mine = ProjectFactory(creator=user, name="Mine")
    ProjectFactory(creator=UserFactory(), name="Someone else's")
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "Mine" in page and "Someone else" not in page
    client.force_login(staff)
    page = client.get("/").content.decode()
    assert "Mine" in page and "Someone else" in page
    assert client.get(f"/projects/{mine.id}/").status_code == 200
    client.force_login(UserFactory())
    assert client.get(f"/projects/{mine.id}/").status_code == 404
