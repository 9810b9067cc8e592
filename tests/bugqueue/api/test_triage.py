from datetime import UTC, datetime, timedelta

import pytest

from bugqueue.models import Bug
from tests.bugqueue.factories import make_bug, report, resolve, update
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory

pytestmark = pytest.mark.django_db

WEEK = "2026-W47"  # Monday 2026-11-16 .. Sunday 2026-11-22
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)


def at(days, hours=0):
    return MONDAY + timedelta(days=days, hours=hours)


def test_triage_week_sections_stats_and_pareto(user, project):
    backlog = make_bug(project, title="old untriaged", now=at(-10), priority="p1", tags=["data_drift"])
    old_triaged = make_bug(project, title="old triaged", now=at(-10))
    Bug.objects.filter(pk=old_triaged.pk).update(status="triaged", triaged_at=at(-9))
    p0 = make_bug(project, title="new p0", now=at(1), priority="p0", tags=["label_flip"])
    busy = make_bug(project, title="new p2 busy", now=at(2), tags=["label_flip", "data_drift"])
    report(project, title="new p2 busy", now=at(3))
    quiet = make_bug(project, title="new p2 quiet", now=at(2), tags=["label_flip"])
    regressed = make_bug(project, title="regressed", now=at(-20), fingerprint="reg")
    Bug.objects.filter(pk=regressed.pk).update(
        status="resolved", resolution="fixed", resolved_at=at(-15), triaged_at=at(-18)
    )
    report(project, fingerprint="reg", title="regressed", now=at(4))  # reopened this week
    closed = make_bug(project, title="closed", now=at(-3))
    Bug.objects.filter(pk=closed.pk).update(status="resolved", resolution="fixed", resolved_at=at(1), triaged_at=at(0))
    make_bug(project, title="next week", now=at(8))
    make_bug(ProjectFactory(), title="other project", now=at(1))

    res = client_for(user).get(f"/api/triage?project={project.pk}&week={WEEK}")
    assert res.status_code == 200, res.json()
    data = res.json()
    assert data["week"] == WEEK and data["start"].startswith("2026-11-16")
    assert [b["title"] for b in data["new"]] == ["new p0", "new p2 busy", "new p2 quiet"]
    assert [b["title"] for b in data["reopened"]] == ["regressed"] and data["reopened"][0]["regressed"]
    assert [b["title"] for b in data["backlog"]] == ["old untriaged"]
    assert data["totals"] == {"new": 3, "reopened": 1, "backlog": 1}
    stats = data["stats"]
    assert stats["opened"] == 3 and stats["closed"] == 1 and stats["reopened"] == 1
    # the closed bug was triaged on Monday 3 days after it was opened, and resolved a day later
    assert stats["median_time_to_triage_seconds"] == 3 * 86400
    assert stats["median_time_to_resolve_seconds"] == 4 * 86400
    tags = data["tags"]
    assert [t["slug"] for t in tags] == ["label_flip", "data_drift"]
    assert [t["count"] for t in tags] == [3, 2] and tags[-1]["cumulative_share"] == 1.0
    assert tags[0]["share"] == pytest.approx(0.6)
    assert data["new"][1]["occurrences"] == 2 and sorted(data["new"][1]["tags"]) == ["data_drift", "label_flip"]
    del backlog, p0, busy, quiet


def test_triage_bad_input(user, project):
    c = client_for(user)
    for q, field in [
        (f"project={project.pk}&week=2026-47", "week"),
        (f"project={project.pk}&week=2026-W60", "week"),
        ("", "project"),
        (f"project={project.pk}&limit=0", "limit"),
    ]:
        res = c.get(f"/api/triage?{q}")
        assert res.status_code == 400 and field in res.json()["error"]["fields"], q


@pytest.mark.parametrize("n", [10, 200])
def test_triage_query_count_is_constant_in_the_number_of_bugs(user, project, n, django_assert_max_num_queries):
    tags = ["label_flip", "data_drift", "schema_change"]
    for i in range(n):
        bug = make_bug(project, title=f"bug n{i}", now=at(i % 7), tags=[tags[i % 3]])  # n{i}: a word
        if i % 4 == 0:
            update(bug, status="triaged", assignee=user.username)
        if i % 10 == 0:
            resolve(bug)
    c = client_for(user)
    with django_assert_max_num_queries(12):
        res = c.get(f"/api/triage?project={project.pk}&week={WEEK}")
    assert res.status_code == 200 and res.json()["totals"]["new"] == n
