"""Alerts over the API and the acknowledge link: list with filters, acknowledge, snooze (until a
time or N occurrences; the next events are suppressed), permissions, and the actions learned from
the bug an alert is about."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Alert, AlertAction, AlertRule, Event, Snooze
from alerts.services.alerts import alerts_actions_update
from alerts.services.routing import event_route
from labeling.models import Role
from tests.bugqueue.factories import make_bug, resolve, update
from tests.conftest import client_for
from tests.labeling.factories import PASSWORD, UserFactory, add_member

pytestmark = pytest.mark.django_db


def make_alert(project, key="bug:1", rule=None, at=None):
    rule = (
        rule or AlertRule.objects.get_or_create(project=project, name="r", defaults={"event_types": ["bug.created"]})[0]
    )
    at = at or timezone.now()
    ev = Event.objects.create(project=project, type="bug.created", subject="A bug", data={}, key=key, created_at=at)
    return Alert.objects.create(project=project, rule=rule, event=ev, key=key, created_at=at)


def test_list_with_filters(user, project):
    a = make_alert(project)
    other_rule = AlertRule.objects.create(project=project, name="other", event_types=["bug.created"])
    b = make_alert(project, rule=other_rule)
    c = client_for(user)
    url = f"/api/projects/{project.pk}/alerts"
    assert [x["id"] for x in c.get(url).json()] == [b.pk, a.pk]
    assert [x["id"] for x in c.get(url, {"rule": other_rule.pk}).json()] == [b.pk]
    c.post(f"/api/alerts/{a.pk}/acknowledge")
    assert [x["id"] for x in c.get(url, {"status": "acknowledged"}).json()] == [a.pk]
    assert [x["id"] for x in c.get(url, {"status": "open"}).json()] == [b.pk]
    assert c.get(url, {"status": "nope"}).status_code == 400
    assert c.get(url, {"rule": "x"}).status_code == 400
    assert c.get(url, {"colour": "red"}).status_code == 400


def test_acknowledge_is_an_action_and_happens_once(user, project):
    alert = make_alert(project)
    member = add_member(project, role=Role.ANNOTATOR)
    res = client_for(member).post(f"/api/alerts/{alert.pk}/acknowledge")
    assert res.status_code == 200, res.json()
    body = res.json()
    assert (body["status"], body["action"], body["acknowledged_by"]) == (
        "acknowledged",
        "acknowledged",
        member.username,
    )
    first = body["acknowledged_at"]
    assert client_for(user).post(f"/api/alerts/{alert.pk}/acknowledge").json()["acknowledged_at"] == first


def test_outsiders_cannot_see_or_touch_alerts(project):
    alert = make_alert(project)
    c = client_for(UserFactory())
    assert c.post(f"/api/alerts/{alert.pk}/acknowledge").status_code == 404
    assert c.post(f"/api/alerts/{alert.pk}/snooze", {"occurrences": 2}, format="json").status_code == 404
    assert c.get(f"/api/projects/{project.pk}/alerts").status_code == 404
    assert c.post("/api/alerts/999999/acknowledge").status_code == 404


def test_snooze_until_and_for_occurrences(user, project):
    alert = make_alert(project, key="bug:5")
    c = client_for(user)
    until = (timezone.now() + timedelta(hours=1)).isoformat()
    res = c.post(f"/api/alerts/{alert.pk}/snooze", {"until": until}, format="json")
    assert res.status_code == 200, res.json()
    assert res.json()["key"] == "bug:5" and res.json()["occurrences_left"] is None
    alert.refresh_from_db()
    assert alert.status == "snoozed"
    res = c.post(f"/api/alerts/{alert.pk}/snooze", {"occurrences": 2}, format="json")
    assert (res.json()["until"], res.json()["occurrences_left"]) == (None, 2)
    assert Snooze.objects.count() == 1  # replaced
    # the next two events about bug:5 are recorded, not sent; the third is sent
    deliveries = []
    for _ in range(3):
        ev = Event.objects.create(project=project, type="bug.created", subject="again", data={}, key="bug:5")
        deliveries.append(event_route(event_id=ev.pk)[0].delivery)
    assert deliveries == ["suppressed", "suppressed", "immediate"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"until": "2001-01-01T00:00:00Z"},
        {"occurrences": 0},
        {"occurrences": "3"},
        {"until": "2099-01-01T00:00:00Z", "occurrences": 3},
        {"forever": True},
    ],
)
def test_bad_snoozes_are_400(user, project, body):
    alert = make_alert(project)
    assert client_for(user).post(f"/api/alerts/{alert.pk}/snooze", body, format="json").status_code == 400
    assert not Snooze.objects.exists()


def test_the_link_shows_a_signed_in_member_the_button_and_the_post_acknowledges(user, project):
    alert = make_alert(project)
    c = Client(enforce_csrf_checks=True)
    c.login(username=user.username, password=PASSWORD)
    res = c.get(f"/alerts/ack/{alert.token}")
    assert res.status_code == 200 and b'id="ack-button"' in res.content
    alert.refresh_from_db()
    assert alert.status == "open"  # opening the link never acknowledges, even for a member
    assert c.post(f"/alerts/ack/{alert.token}").status_code == 403  # no CSRF token: refused
    alert.refresh_from_db()
    assert alert.status == "open"
    token = res.context["csrf_token"]
    res = c.post(f"/alerts/ack/{alert.token}", {"csrfmiddlewaretoken": str(token)})
    assert res.status_code == 200 and b'id="ack-state"' in res.content and b'id="ack-button"' not in res.content
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by) == ("acknowledged", user)
    res = c.get(f"/alerts/ack/{alert.token}")  # opened again: says who acknowledged, no button
    assert b"Acknowledged" in res.content and user.username.encode() in res.content
    assert b'id="ack-button"' not in res.content


def test_the_link_shows_a_one_click_button_to_anyone_else(project):
    alert = make_alert(project)
    c = Client()
    res = c.get(f"/alerts/ack/{alert.token}")
    assert res.status_code == 200 and b'id="ack-button"' in res.content
    alert.refresh_from_db()
    assert alert.status == "open"  # a link preview does not acknowledge
    res = c.post(f"/alerts/ack/{alert.token}")
    assert res.status_code == 200
    alert.refresh_from_db()
    assert (alert.status, alert.action, alert.acknowledged_by) == ("acknowledged", "acknowledged", None)
    assert Client().get("/alerts/ack/not-a-token").status_code == 404


@pytest.mark.parametrize(
    "change, action",
    [
        (lambda bug, u: update(bug, u, status="triaged"), AlertAction.TRIAGED),
        (lambda bug, u: update(bug, u, assignee=u.username), AlertAction.ASSIGNED),
        (lambda bug, u: resolve(bug, u), AlertAction.RESOLVED),
    ],
)
def test_actions_learned_from_the_bug(user, project, change, action):
    bug = make_bug(project)
    alert = make_alert(project, key=f"bug:{bug.pk}", at=timezone.now() - timedelta(minutes=5))
    untouched = make_alert(project, key="bug:999999")
    change(bug, user)
    assert alerts_actions_update() == 1
    alert.refresh_from_db()
    untouched.refresh_from_db()
    assert alert.action == action and alert.action_at is not None
    assert untouched.action == AlertAction.NONE
    assert alerts_actions_update() == 0  # learned once


def test_a_change_before_the_alert_or_after_the_window_is_not_its_action(user, project):
    bug = make_bug(project)
    update(bug, user, status="triaged")
    alert = make_alert(project, key=f"bug:{bug.pk}", at=timezone.now() + timedelta(seconds=1))
    assert alerts_actions_update(now=timezone.now() + timedelta(seconds=2)) == 0
    old = make_alert(project, key=f"bug:{bug.pk}", at=timezone.now() - timedelta(days=8))
    assert alerts_actions_update() == 0
    alert.refresh_from_db()
    old.refresh_from_db()
    assert (alert.action, old.action) == ("none", "none")


def test_pages_for_members_and_not_for_outsiders(user, project):
    make_alert(project)
    c = Client()
    c.login(username=user.username, password=PASSWORD)
    assert b"alert-row" in c.get(f"/projects/{project.pk}/alerts").content
    assert b"rule-row" in c.get(f"/projects/{project.pk}/alert-rules").content
    stranger = UserFactory()
    s = Client()
    s.login(username=stranger.username, password=PASSWORD)
    assert s.get(f"/projects/{project.pk}/alerts").status_code == 404
    assert s.get(f"/projects/{project.pk}/alert-rules").status_code == 404


def test_the_beat_runs_digests_and_learns_actions():
    from django.conf import settings

    import alerts.tasks  # noqa: F401  (the worker imports it by autodiscovery)
    from config.celery import app

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"alerts.digests_send", "alerts.actions_update"} <= tasks
    assert {"alerts.digests_send", "alerts.actions_update"} <= set(app.tasks)
