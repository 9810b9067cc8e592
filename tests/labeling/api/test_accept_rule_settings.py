"""The accept rule's settings through the API: defaults, changes, and refusals that change nothing."""

import pytest

from labeling.models import Project
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory

LABELS = [{"key": "a", "name": "A"}, {"key": "b", "name": "B"}]


def staff_client():
    return client_for(UserFactory(is_staff=True))


@pytest.mark.django_db
def test_new_projects_are_calibrated_unless_a_threshold_is_given():
    c = staff_client()
    res = c.post("/api/projects", {"name": "p", "labels": LABELS}, format="json")
    assert res.status_code == 201, res.json()
    body = res.json()
    assert (body["accept_mode"], body["max_accept_error"], body["audit_rate"]) == ("calibrated", 0.02, 0.02)
    res = c.post("/api/projects", {"name": "q", "labels": LABELS, "accept_threshold": 0.8}, format="json")
    assert (res.json()["accept_mode"], res.json()["accept_threshold"]) == ("raw_score", 0.8)
    res = c.post(
        "/api/projects",
        {"name": "r", "labels": LABELS, "accept_threshold": 0.8, "accept_mode": "calibrated", "max_accept_error": 0.05},
        format="json",
    )
    assert (res.json()["accept_mode"], res.json()["max_accept_error"]) == ("calibrated", 0.05)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"accept_mode": "magic"}, "accept_mode"),
        ({"max_accept_error": 0}, "max_accept_error"),
        ({"max_accept_error": 0.9}, "max_accept_error"),
        ({"audit_rate": -0.1}, "audit_rate"),
        ({"audit_rate": 0.8}, "audit_rate"),
        ({"audit_rate": "NaN"}, "audit_rate"),
        ({"max_accept_error": True}, "max_accept_error"),
    ],
)
@pytest.mark.parametrize("url", ["/api/projects/{p}", "/api/projects/{p}/quality-settings"])
def test_bad_accept_settings_are_400_and_change_nothing(body, field, url):
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    before = Project.objects.filter(pk=project.pk).values("accept_mode", "max_accept_error", "audit_rate").get()
    res = client_for(manager).patch(
        url.format(p=project.pk), {**body, "auto_run_after_disputed": 3} if "quality" in url else body, format="json"
    )
    assert res.status_code == 400, res.json()
    assert field in res.json()["error"]["fields"]
    after = Project.objects.filter(pk=project.pk).values("accept_mode", "max_accept_error", "audit_rate").get()
    assert after == before
    if "quality" in url:
        assert client_for(manager).get(url.format(p=project.pk)).json()["auto_run_after_disputed"] == 25


@pytest.mark.django_db
def test_accept_settings_change_through_both_endpoints():
    manager = UserFactory()
    project = ProjectFactory(creator=manager)
    c = client_for(manager)
    res = c.patch(f"/api/projects/{project.pk}", {"accept_mode": "raw_score", "audit_rate": 0.05}, format="json")
    assert res.status_code == 200 and (res.json()["accept_mode"], res.json()["audit_rate"]) == ("raw_score", 0.05)
    url = f"/api/projects/{project.pk}/quality-settings"
    res = c.patch(url, {"accept_mode": "calibrated", "max_accept_error": 0.01}, format="json")
    assert res.status_code == 200, res.json()
    got = res.json()
    assert (got["accept_mode"], got["max_accept_error"], got["audit_rate"], got["auto_run_after_disputed"]) == (
        "calibrated",
        0.01,
        0.05,
        25,
    )
    assert c.get(url).json()["max_accept_error"] == 0.01
    project.refresh_from_db()
    assert (project.accept_mode, project.max_accept_error) == ("calibrated", 0.01)
