"""The on-call rotation: hand-over math, the API (members must be project members), and the line on
the triage page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from alerts.models import OnCallRotation
from alerts.services.oncall import handovers_next
from labeling.models import Role
from tests.conftest import client_for
from tests.labeling.factories import PASSWORD, UserFactory, add_member

pytestmark = pytest.mark.django_db

UTC = UTC


def test_hand_over_math():
    # starts Wednesday 2026-12-02 15:00 UTC; hand-over Mondays 09:00: the first turn began Monday 30 Nov 09:00
    r = OnCallRotation(
        members=[1, 2, 3], handover_weekday=0, handover_hour=9, starts_at=datetime(2026, 12, 2, 15, tzinfo=UTC)
    )
    assert r.on_call_at(datetime(2026, 12, 2, 16, tzinfo=UTC)) == 1
    assert r.on_call_at(datetime(2026, 12, 7, 8, 59, tzinfo=UTC)) == 1
    assert r.on_call_at(datetime(2026, 12, 7, 9, 0, tzinfo=UTC)) == 2
    assert r.on_call_at(datetime(2026, 12, 14, 9, tzinfo=UTC)) == 3
    assert r.on_call_at(datetime(2026, 12, 21, 9, tzinfo=UTC)) == 1  # round again
    nxt = handovers_next(r, now=datetime(2026, 12, 8, 12, tzinfo=UTC), count=3)
    assert nxt == [
        (datetime(2026, 12, 14, 9, tzinfo=UTC), 3),
        (datetime(2026, 12, 21, 9, tzinfo=UTC), 1),
        (datetime(2026, 12, 28, 9, tzinfo=UTC), 2),
    ]
    # a hand-over later in the week than the start: the first turn began the week before
    r2 = OnCallRotation(
        members=[1, 2], handover_weekday=4, handover_hour=17, starts_at=datetime(2026, 12, 2, 15, tzinfo=UTC)
    )
    assert r2.on_call_at(datetime(2026, 12, 4, 16, 59, tzinfo=UTC)) == 1
    assert r2.on_call_at(datetime(2026, 12, 4, 17, tzinfo=UTC)) == 2
    assert handovers_next(r2, now=datetime(2026, 12, 2, 15, tzinfo=UTC), count=1) == [
        (datetime(2026, 12, 4, 17, tzinfo=UTC), 2)
    ]
    assert handovers_next(OnCallRotation(members=[]), count=2) == []


def test_set_and_read_the_rotation(user, project):
    ann = add_member(project, role=Role.ANNOTATOR)
    c = client_for(user)
    url = f"/api/projects/{project.pk}/on-call"
    assert c.get(url).json()["current"] is None
    res = c.put(url, {"members": [ann.username, user.pk], "handover_weekday": 2, "handover_hour": 10}, format="json")
    assert res.status_code == 200, res.json()
    body = res.json()
    assert [m["username"] for m in body["members"]] == [ann.username, user.username]
    assert body["current"] == {"id": ann.pk, "username": ann.username}
    assert [h["user"]["id"] for h in body["handovers"]] == [user.pk, ann.pk, user.pk, ann.pk]
    first = datetime.fromisoformat(body["handovers"][0]["at"].replace("Z", "+00:00"))
    assert (first.weekday(), first.hour) == (2, 10)
    assert [datetime.fromisoformat(h["at"].replace("Z", "+00:00")) - first for h in body["handovers"]] == [
        timedelta(days=7 * i) for i in range(4)
    ]
    assert client_for(ann).get(url).json()["current"]["id"] == ann.pk  # members read


@pytest.mark.parametrize(
    "body",
    [
        {"members": ["nobody-at-all"]},
        {"members": "alice"},
        {"members": [], "handover_weekday": 7},
        {"members": [], "handover_hour": 24},
        {"members": [True]},
    ],
)
def test_bad_rotations_are_400(user, project, body):
    assert client_for(user).put(f"/api/projects/{project.pk}/on-call", body, format="json").status_code == 400


def test_only_members_and_only_managers(user, project):
    stranger = UserFactory()
    c = client_for(user)
    url = f"/api/projects/{project.pk}/on-call"
    assert c.put(url, {"members": [stranger.username]}, format="json").status_code == 400
    ann = add_member(project, role=Role.ANNOTATOR)
    assert client_for(ann).put(url, {"members": [ann.username]}, format="json").status_code == 403
    assert client_for(stranger).get(url).status_code == 404


def test_the_triage_page_names_who_is_on_call(user, project):
    OnCallRotation.objects.create(project=project, members=[user.pk])
    c = Client()
    c.login(username=user.username, password=PASSWORD)
    html = c.get(f"/triage?project={project.pk}").content.decode()
    assert 'id="on-call-line"' in html and f"<strong>{user.username}</strong>" in html
