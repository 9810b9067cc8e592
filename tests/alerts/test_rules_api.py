"""The alert-rules API: managers write, members read, every input checked (400 naming the field),
mute and unmute."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import AlertRule, Channel
from labeling.models import Role
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def url(project, rid=None, tail=""):
    base = f"/api/projects/{project.pk}/alert-rules"
    return base + (f"/{rid}" if rid else "") + tail


@pytest.fixture
def channel(project):
    return Channel.objects.create(project=project, name="hook", kind="webhook", url="http://127.0.0.1:9/h")


def test_manager_creates_reads_updates_deletes_a_rule(user, project, channel):
    c = client_for(user)
    body = {
        "name": "Regressions",
        "event_types": ["bug.regressed", "bug.created"],
        "conditions": {"kind": "failed_prediction", "priority_max": "p1", "min_occurrences": 3, "window_minutes": 30},
        "channels": [channel.pk],
        "to_on_call": True,
        "digest_minutes": 0,
        "adaptive": True,
        "action_floor": 0.25,
    }
    res = c.post(url(project), body, format="json")
    assert res.status_code == 201, res.json()
    rule = res.json()
    assert rule["event_types"] == ["bug.created", "bug.regressed"]
    assert rule["conditions"] == body["conditions"]
    assert rule["channels"] == [channel.pk]
    assert (rule["alerts"], rule["acted"], rule["action_rate"], rule["flagged"], rule["suggestion"]) == (
        0,
        0,
        None,
        False,
        None,
    )
    rid = rule["id"]
    assert c.get(url(project, rid)).json()["name"] == "Regressions"
    assert [r["id"] for r in c.get(url(project)).json()] == [rid]
    res = c.patch(url(project, rid), {"enabled": False, "conditions": {"tag": "ocr"}}, format="json")
    assert res.status_code == 200, res.json()
    assert (res.json()["enabled"], res.json()["conditions"]) == (False, {"tag": "ocr"})
    assert c.delete(url(project, rid)).status_code == 204
    assert not AlertRule.objects.exists()


def test_members_read_others_do_not_write_and_outsiders_see_nothing(user, project):
    rule = AlertRule.objects.create(project=project, name="r", event_types=["bug.created"])
    annotator = add_member(project, role=Role.ANNOTATOR)
    c = client_for(annotator)
    assert c.get(url(project)).status_code == 200
    assert c.get(url(project, rule.pk)).status_code == 200
    assert c.post(url(project), {"name": "x", "event_types": ["bug.created"]}, format="json").status_code == 403
    assert c.patch(url(project, rule.pk), {"enabled": False}, format="json").status_code == 403
    assert c.delete(url(project, rule.pk)).status_code == 403
    assert c.post(url(project, rule.pk, "/mute"), {"until": "2099-01-01T00:00:00Z"}, format="json").status_code == 403
    outsider = client_for(UserFactory())
    assert outsider.get(url(project)).status_code == 404
    assert outsider.get(url(project, rule.pk)).status_code == 404
    other = ProjectFactory(creator=user)
    assert client_for(user).get(url(other, rule.pk)).status_code == 404  # a rule of another project


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "event_types": ["bug.exploded"]}, "event_types"),
        ({"name": "x", "event_types": []}, "event_types"),
        ({"name": "x"}, "event_types"),
        ({"event_types": ["bug.created"]}, "name"),
        ({"name": "x", "event_types": ["bug.created"], "conditions": {"colour": "red"}}, "conditions"),
        ({"name": "x", "event_types": ["bug.created"], "conditions": {"priority_max": "p9"}}, "conditions"),
        ({"name": "x", "event_types": ["bug.created"], "conditions": {"min_occurrences": 0}}, "conditions"),
        ({"name": "x", "event_types": ["bug.created"], "conditions": {"min_occurrences": "3"}}, "conditions"),
        ({"name": "x", "event_types": ["bug.created"], "conditions": {"window_minutes": 10}}, "conditions"),
        ({"name": "x", "event_types": ["bug.created"], "conditions": []}, "conditions"),
        ({"name": "x", "event_types": ["bug.created"], "action_floor": 1.5}, "action_floor"),
        ({"name": "x", "event_types": ["bug.created"], "digest_minutes": -1}, "digest_minutes"),
        ({"name": "x", "event_types": ["bug.created"], "adaptive": "yes"}, "adaptive"),
        ({"name": "x", "event_types": ["bug.created"], "surprise": 1}, "surprise"),
    ],
)
def test_bad_rules_are_400_naming_the_field(user, project, body, field):
    res = client_for(user).post(url(project), body, format="json")
    assert res.status_code == 400, res.json()
    assert field in str(res.json()["error"]), res.json()
    assert not AlertRule.objects.exists()


def test_channels_must_be_the_projects_own(user, project):
    other = ProjectFactory(creator=user)
    foreign = Channel.objects.create(project=other, name="theirs", kind="webhook", url="http://127.0.0.1:9/h")
    res = client_for(user).post(
        url(project), {"name": "x", "event_types": ["bug.created"], "channels": [foreign.pk]}, format="json"
    )
    assert res.status_code == 400
    assert "channels" in res.json()["error"]["fields"]


def test_duplicate_name_is_409(user, project):
    c = client_for(user)
    assert c.post(url(project), {"name": "x", "event_types": ["bug.created"]}, format="json").status_code == 201
    assert c.post(url(project), {"name": "x", "event_types": ["bug.created"]}, format="json").status_code == 409


def test_mute_and_unmute(user, project):
    rule = AlertRule.objects.create(project=project, name="r", event_types=["bug.created"])
    c = client_for(user)
    until = (timezone.now() + timedelta(hours=2)).isoformat()
    res = c.post(url(project, rule.pk, "/mute"), {"until": until}, format="json")
    assert res.status_code == 200, res.json()
    rule.refresh_from_db()
    assert rule.muted_until is not None
    past = (timezone.now() - timedelta(hours=2)).isoformat()
    assert c.post(url(project, rule.pk, "/mute"), {"until": past}, format="json").status_code == 400
    assert c.post(url(project, rule.pk, "/mute"), {}, format="json").status_code == 400
    assert c.post(url(project, rule.pk, "/unmute")).json()["muted_until"] is None
