"""The stream's API: the search grammar of GET /api/bugs (good and bad q), POST /api/bugs/bulk,
snooze of each kind and its return (history + bug.unsnoozed), and the query-count bounds."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bugqueue.models import Bug, BugDatasetFlow, BugEvent, BugOccurrence, BugStatus
from bugqueue.selectors.search import KEYS
from bugqueue.services.snooze import bugs_unsnooze_due
from bugqueue.tasks import unsnooze_due
from common.events import event_emitted
from labeling.models import Role
from tests.bugqueue.factories import ingest_items, make_bug, report, resolve, spelled, update
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    got = []

    def receiver(sender, **kwargs):
        got.append(kwargs)

    event_emitted.connect(receiver, dispatch_uid="test.stream")
    yield got
    event_emitted.disconnect(dispatch_uid="test.stream")


def ids(res):
    assert res.status_code == 200, res.json()
    return sorted(r["id"] for r in res.json()["results"])


# --- search ---------------------------------------------------------------------------------
def test_search_grammar_in_the_api(user, project):
    add_member(project, UserFactory(username="rita"), role=Role.REVIEWER)
    c = client_for(user)
    flip = make_bug(project, title="Refunds routed to shipping", kind="failed_prediction", tags=["label_flip"])
    drift = make_bug(project, title="Drift in the fraud scores", model_version="v3", tags=["data_drift"])
    mine = make_bug(project, title="Accents dropped", priority="p0")
    update(mine, assignee=user.username)
    theirs = make_bug(project, title="Seed not set", priority="p1")
    update(theirs, assignee="rita")
    closed = make_bug(project, title="Old refund bug")
    resolve(closed)
    snoozed = make_bug(project, title="Noisy refund alert")
    c.post(f"/api/bugs/{snoozed.pk}/snooze", {}, format="json")
    regressed = make_bug(project, title="Regressed one")
    Bug.objects.filter(pk=regressed.pk).update(regressed=True)

    every = sorted(b.pk for b in (flip, drift, mine, theirs, closed, snoozed, regressed))
    assert ids(c.get("/api/bugs")) == every  # no q: every bug, as before
    unresolved = sorted(set(every) - {closed.pk, snoozed.pk})
    assert ids(c.get("/api/bugs", {"q": "is:unresolved"})) == unresolved
    assert ids(c.get("/api/bugs", {"q": "is:open"})) == sorted(set(every) - {closed.pk})
    assert ids(c.get("/api/bugs", {"q": "is:snoozed"})) == [snoozed.pk]
    assert ids(c.get("/api/bugs", {"q": "is:resolved"})) == [closed.pk]
    assert ids(c.get("/api/bugs", {"q": "is:regressed"})) == [regressed.pk]
    assert ids(c.get("/api/bugs", {"q": "assigned:me"})) == [mine.pk]
    assert ids(c.get("/api/bugs", {"q": "assigned:rita"})) == [theirs.pk]
    assert ids(c.get("/api/bugs", {"q": "is:unresolved assigned:none"})) == sorted({flip.pk, drift.pk, regressed.pk})
    assert ids(c.get("/api/bugs", {"q": "-assigned:rita is:unresolved"})) == sorted(set(unresolved) - {theirs.pk})
    assert ids(c.get("/api/bugs", {"q": "tag:label_flip"})) == [flip.pk]
    assert ids(c.get("/api/bugs", {"q": "-tag:label_flip is:unresolved"})) == sorted(set(unresolved) - {flip.pk})
    assert ids(c.get("/api/bugs", {"q": "tag:label_flip,data_drift"})) == sorted([flip.pk, drift.pk])
    assert ids(c.get("/api/bugs", {"q": "kind:failed_prediction"})) == [flip.pk]
    assert ids(c.get("/api/bugs", {"q": "model:v3"})) == [drift.pk]
    assert ids(c.get("/api/bugs", {"q": "priority:p0..p1"})) == sorted([mine.pk, theirs.pk])
    assert ids(c.get("/api/bugs", {"q": "priority:p1"})) == [theirs.pk]
    assert ids(c.get("/api/bugs", {"q": 'refund "routed to"'})) == [flip.pk]
    assert ids(c.get("/api/bugs", {"q": "refund"})) == sorted([flip.pk, closed.pk, snoozed.pk])
    assert ids(c.get("/api/bugs", {"q": "refund is:unresolved"})) == [flip.pk]
    assert ids(c.get("/api/bugs", {"q": flip.fingerprint})) == [flip.pk]
    # the separate parameters still work, alone and with q
    assert ids(c.get("/api/bugs", {"status": "closed"})) == [closed.pk]
    assert ids(c.get("/api/bugs", {"tag": "label_flip", "q": "is:unresolved"})) == [flip.pk]
    assert ids(c.get("/api/bugs", {"assignee": "none", "q": "refund"})) == sorted([flip.pk, closed.pk, snoozed.pk])
    # the facets follow the search
    facets = c.get("/api/bugs", {"q": "is:unresolved tag:label_flip"}).json()["facets"]
    assert facets["status"]["new"] == 1 and facets["tag"]["label_flip"] == 1


@pytest.mark.parametrize(
    "q, says",
    [
        ("color:red", "the known keys are " + ", ".join(KEYS)),
        ("is:sleeping", "is:sleeping is not known"),
        ("priority:p5", "priority:p5"),
        ("tag:no_such_tag", "Unknown tag 'no_such_tag'"),
        ('"open quote', "A quote is not closed"),
    ],
)
def test_bad_searches_answer_400_in_the_one_error_shape(user, project, q, says):
    make_bug(project)
    res = client_for(user).get("/api/bugs", {"q": q})
    assert res.status_code == 400
    error = res.json()["error"]
    assert error["code"] == "invalid" and says in error["message"] and error["fields"]["q"]


def test_the_page_says_what_is_wrong_with_a_search(user, project, client):
    make_bug(project, title="Visible bug")
    client.force_login(user)
    html = client.get(f"/bugs?project={project.pk}&q=color:red").content.decode()
    assert "The search is not valid" in html and "Unknown search key &#x27;color&#x27;" in html
    assert "Visible bug" not in html


def test_the_page_is_unresolved_by_default_with_saved_views(user, project, client):
    open_bug = make_bug(project, title="Open bug")
    closed = make_bug(project, title="Closed bug")
    resolve(closed)
    snoozed = make_bug(project, title="Snoozed bug")
    client_for(user).post(f"/api/bugs/{snoozed.pk}/snooze", {}, format="json")
    client.force_login(user)
    html = client.get(f"/bugs?project={project.pk}").content.decode()
    assert f'data-bug-id="{open_bug.pk}"' in html
    assert f'data-bug-id="{closed.pk}"' not in html and f'data-bug-id="{snoozed.pk}"' not in html
    assert 'value="is:unresolved"' in html
    for view in ("unresolved", "mine", "unassigned", "regressed", "review", "snoozed", "all"):
        assert f'data-view="{view}"' in html
    html = client.get(f"/bugs?project={project.pk}&q=is:snoozed").content.decode()
    assert f'data-bug-id="{snoozed.pk}"' in html and f'data-bug-id="{open_bug.pk}"' not in html
    html = client.get(f"/bugs?project={project.pk}&q=").content.decode()  # the "All" view
    assert all(f'data-bug-id="{b.pk}"' in html for b in (open_bug, closed, snoozed))


def test_page_and_api_list_query_counts_do_not_grow_with_rows(user, project, client, django_assert_max_num_queries):
    now = timezone.now()
    bugs = [make_bug(project, title=f"bug {spelled(i)}", tags=["label_flip"]) for i in range(30)]
    BugOccurrence.objects.bulk_create(
        [BugOccurrence(bug=b, count=d + 1, seen_at=now - timedelta(days=d)) for b in bugs for d in range(0, 20, 3)]
    )
    client.force_login(user)
    with django_assert_max_num_queries(17):
        res = client.get(f"/bugs?project={project.pk}&q=is:unresolved tag:label_flip")
    html = res.content.decode()
    assert res.status_code == 200 and html.count("<polyline") == 30
    c = client_for(user)
    with django_assert_max_num_queries(12):
        res = c.get("/api/bugs", {"project": project.pk, "q": "is:unresolved tag:label_flip priority:p0..p2"})
    assert res.status_code == 200 and res.json()["count"] == 30


def test_trend_counts_the_last_14_days_per_day(project):
    from bugqueue.selectors.stream import bug_trends

    bug = make_bug(project)
    BugOccurrence.objects.filter(bug=bug).delete()
    now = timezone.now()
    BugOccurrence.objects.bulk_create(
        [
            BugOccurrence(bug=bug, count=5, seen_at=now),
            BugOccurrence(bug=bug, count=2, seen_at=now),
            BugOccurrence(bug=bug, count=3, seen_at=now - timedelta(days=13)),
            BugOccurrence(bug=bug, count=9, seen_at=now - timedelta(days=20)),  # too old
        ]
    )
    trend = bug_trends(bug_ids=[bug.pk], now=now)[bug.pk]
    assert len(trend) == 14 and trend[-1] == 7 and trend[0] == 3 and sum(trend) == 10


# --- bulk -----------------------------------------------------------------------------------
def test_bulk_actions(user, project):
    rita = add_member(project, UserFactory(username="rita"), role=Role.REVIEWER)
    c = client_for(user)
    bugs = [make_bug(project, title=f"bulk {spelled(i)}", tags=["data_drift"]) for i in range(4)]
    pks = [b.pk for b in bugs]

    res = c.post("/api/bugs/bulk", {"bugs": pks[:3], "action": "assign", "value": "rita"}, format="json")
    assert res.status_code == 200, res.json()
    assert res.json() == {
        "action": "assign",
        "matched": 3,
        "changed": 3,
        "unchanged": 0,
        "skipped": [],
        "bugs": pks[:3],
    }
    assert set(Bug.objects.filter(assignee=rita).values_list("pk", flat=True)) == set(pks[:3])
    assert BugEvent.objects.filter(field="assignee", to_value="rita", bug_id__in=pks).count() == 3
    again = c.post("/api/bugs/bulk", {"bugs": pks, "action": "assign", "value": "rita"}, format="json").json()
    assert (again["changed"], again["unchanged"]) == (1, 3)

    res = c.post("/api/bugs/bulk", {"bugs": pks, "action": "priority", "value": "p0"}, format="json")
    assert res.json()["changed"] == 4 and set(Bug.objects.filter(pk__in=pks).values_list("priority", flat=True)) == {
        "p0"
    }

    # tags: added and removed, the others kept
    res = c.post(
        "/api/bugs/bulk",
        {"bugs": pks[:2], "action": "tag", "value": {"add": ["label_flip", "schema_change"]}},
        format="json",
    )
    assert res.json()["changed"] == 2
    assert sorted(bugs[0].tags.values_list("slug", flat=True)) == ["data_drift", "label_flip", "schema_change"]
    res = c.post("/api/bugs/bulk", {"bugs": pks, "action": "tag", "value": {"remove": ["data_drift"]}}, format="json")
    assert res.json()["changed"] == 4
    assert sorted(bugs[0].tags.values_list("slug", flat=True)) == ["label_flip", "schema_change"]
    assert list(bugs[3].tags.values_list("slug", flat=True)) == []
    assert BugEvent.objects.filter(bug=bugs[0], field="tags").last().to_value == "label_flip,schema_change"

    # resolve: like the resolve service (status, resolution, history, a dataset hand-off for fixed)
    resolve(bugs[3], resolution="wont_fix")
    res = c.post(
        "/api/bugs/bulk",
        {"bugs": pks, "action": "resolve", "value": {"resolution": "fixed", "note": "shipped"}},
        format="json",
    )
    body = res.json()
    assert body["changed"] == 3 and body["skipped"] == [{"id": pks[3], "reason": "wont_fix: reopen it first"}]
    for b in Bug.objects.filter(pk__in=pks[:3]):
        assert (b.status, b.resolution, b.resolution_note) == ("resolved", "fixed", "shipped")
        assert b.resolved_at is not None and b.triaged_at is not None
    assert BugDatasetFlow.objects.filter(bug_id__in=pks[:3]).count() == 3
    assert BugEvent.objects.filter(bug_id__in=pks[:3], field="status", to_value="resolved").count() == 3
    res = c.post("/api/bugs/bulk", {"bugs": pks[:3], "action": "resolve", "value": "fixed"}, format="json")
    assert (res.json()["changed"], res.json()["unchanged"]) == (0, 3)


def test_bulk_by_query_and_snooze(user, project, events, django_capture_on_commit_callbacks):
    c = client_for(user)
    flips = [make_bug(project, title=f"flip {spelled(i)}", tags=["label_flip"]) for i in range(3)]
    other = make_bug(project, title="other")
    res = c.post(
        "/api/bugs/bulk",
        {"query": "is:unresolved tag:label_flip", "project": project.pk, "action": "snooze", "value": {"items": 5}},
        format="json",
    )
    assert res.status_code == 200 and res.json()["changed"] == 3
    assert set(Bug.objects.filter(snoozed=True).values_list("pk", flat=True)) == {b.pk for b in flips}
    assert ids(c.get("/api/bugs", {"q": "is:unresolved"})) == [other.pk]
    with django_capture_on_commit_callbacks(execute=True):
        res = c.post("/api/bugs/bulk", {"query": "is:snoozed", "action": "unsnooze"}, format="json")
    assert res.json()["changed"] == 3 and not Bug.objects.filter(snoozed=True).exists()
    assert sorted(e["data"]["bug_id"] for e in events if e["type"] == "bug.unsnoozed") == sorted(b.pk for b in flips)
    assert {e["data"]["reason"] for e in events if e["type"] == "bug.unsnoozed"} == {"manual"}


def test_bulk_refusals_change_nothing(user, project):
    annotator = add_member(project, UserFactory(), role=Role.ANNOTATOR)
    other_project = ProjectFactory(creator=UserFactory())
    hidden = make_bug(other_project)
    bug = make_bug(project)
    c = client_for(user)

    def post(body, client=c):
        return client.post("/api/bugs/bulk", body, format="json")

    assert post({"bugs": [bug.pk], "action": "assign", "value": "ann"}, client_for(annotator)).status_code == 403
    res = post({"bugs": [bug.pk, hidden.pk, 999999], "action": "priority", "value": "p0"})
    assert res.status_code == 404 and f"#{hidden.pk}" in res.json()["error"]["message"]
    for body in (
        {"action": "priority", "value": "p0"},  # neither bugs nor query
        {"bugs": [bug.pk], "query": "is:open", "action": "priority", "value": "p0"},
        {"bugs": [bug.pk], "action": "explode"},
        {"bugs": [bug.pk], "action": "priority", "value": "p9"},
        {"bugs": [bug.pk], "action": "assign", "value": "nobody-here"},
        {"bugs": [bug.pk], "action": "tag", "value": {"add": ["no_such_tag"]}},
        {"bugs": [bug.pk], "action": "tag", "value": {"add": ["label_flip"], "remove": ["label_flip"]}},
        {"bugs": [bug.pk], "action": "resolve", "value": "duplicate"},
        {"bugs": [bug.pk], "action": "snooze", "value": {"until": "2001-01-01T00:00:00Z"}},
        {"bugs": [bug.pk], "action": "snooze", "value": {"occurrences": 0}},
        {"query": "color:red", "action": "priority", "value": "p0"},
        {"bugs": [], "action": "priority", "value": "p0"},
        {"bugs": [bug.pk], "action": "priority", "value": "p0", "extra": 1},
    ):
        res = post(body)
        assert res.status_code == 400, (body, res.json())
        assert res.json()["error"]["message"]
    bug.refresh_from_db()
    assert bug.priority == "p2" and bug.assignee_id is None and not bug.snoozed and bug.status == "new"
    assert list(bug.tags.all()) == [] and not BugEvent.objects.exclude(field="created").filter(bug=bug).exists()


def test_bulk_runs_a_constant_number_of_queries(user, project):
    c = client_for(user)
    small = [make_bug(project, title=f"s{spelled(i)}", tags=["label_flip"]).pk for i in range(3)]
    big = [make_bug(project, title=f"b{spelled(i)}", tags=["label_flip"]).pk for i in range(30)]
    for action, value in (
        ("assign", user.username),
        ("priority", "p1"),
        ("tag", {"add": ["data_drift"], "remove": ["label_flip"]}),
        ("snooze", {"occurrences": 3, "items": 2}),
        ("unsnooze", None),
        ("resolve", "fixed"),
    ):
        counts = []
        for pks in (small, big):
            with CaptureQueriesContext(connection) as ctx:
                res = c.post("/api/bugs/bulk", {"bugs": pks, "action": action, "value": value}, format="json")
            assert res.status_code == 200 and res.json()["changed"] == len(pks), res.json()
            counts.append(len(ctx.captured_queries))
        assert counts[0] == counts[1] and counts[1] <= 16, (action, counts)


def test_bulk_on_1000_bugs_by_query(user, project, django_assert_max_num_queries):
    """A bulk action over a whole query applies to every bug in a bounded number of queries (its time
    on 1,000 bugs is measured in benchmarks/bugs.py)."""
    now = timezone.now()
    Bug.objects.bulk_create(
        [
            Bug(project=project, title=f"b{i}", kind="other", fingerprint=f"fp{i}", first_seen=now, last_seen=now)
            for i in range(1000)
        ]
    )
    c = client_for(user)
    for action, value in (("assign", user.username), ("tag", {"add": ["label_flip"]}), ("resolve", "wont_fix")):
        with django_assert_max_num_queries(30):
            res = c.post(
                "/api/bugs/bulk", {"query": "", "project": project.pk, "action": action, "value": value}, format="json"
            )
        assert res.status_code == 200 and res.json()["changed"] == 1000, res.json()
    assert Bug.objects.filter(project=project, status=BugStatus.WONT_FIX).count() == 1000
    assert Bug.objects.filter(project=project, assignee=user, tags__slug="label_flip").count() == 1000


# --- snooze ---------------------------------------------------------------------------------
def test_snooze_until_a_date_returns_by_the_periodic_task(user, project, events, django_capture_on_commit_callbacks):
    bug = make_bug(project)
    until = timezone.now() + timedelta(hours=1)
    res = client_for(user).post(f"/api/bugs/{bug.pk}/snooze", {"until": until.isoformat()}, format="json")
    assert res.status_code == 200 and res.json()["snoozed"] is True
    assert bugs_unsnooze_due() == 0  # not yet
    with django_capture_on_commit_callbacks(execute=True):
        assert bugs_unsnooze_due(now=until + timedelta(seconds=1)) == 1
    bug.refresh_from_db()
    assert not bug.snoozed and bug.snooze_until is None
    assert BugEvent.objects.filter(bug=bug, field="snoozed").values_list("from_value", "to_value")[1] == (
        "true",
        "false",
    )
    (event,) = [e for e in events if e["type"] == "bug.unsnoozed"]
    assert event["data"]["reason"] == "date" and event["data"]["bug_id"] == bug.pk and event["key"] == f"bug:{bug.pk}"
    Bug.objects.filter(pk=bug.pk).update(snoozed=True, snooze_until=timezone.now() - timedelta(minutes=1))
    assert unsnooze_due() == 1  # the beat task


def test_snooze_until_n_more_occurrences_returns_as_reports_are_filed(
    user, project, events, django_capture_on_commit_callbacks
):
    bug = make_bug(project, title="Flaky")
    res = client_for(user).post(f"/api/bugs/{bug.pk}/snooze", {"occurrences": 2, "note": "noisy"}, format="json")
    assert res.json()["snooze_until_occurrences"] == 3
    report(project, title="Flaky")
    bug.refresh_from_db()
    assert bug.snoozed and bug.occurrences == 2
    with django_capture_on_commit_callbacks(execute=True):
        report(project, title="Flaky")
    bug.refresh_from_db()
    assert not bug.snoozed and bug.occurrences == 3
    assert [e["data"]["reason"] for e in events if e["type"] == "bug.unsnoozed"] == ["occurrences"]
    assert BugEvent.objects.filter(bug=bug, field="snoozed").count() == 2


def test_snooze_until_n_more_items(user, project, events, django_capture_on_commit_callbacks):
    items = ingest_items(project, 4)

    def fail(*its):
        return report(
            project,
            title="Refund flips",
            kind="failed_prediction",
            failures=[{"external_id": i.external_id, "predicted_label": "pos", "expected_label": "neg"} for i in its],
        ).bug

    bug = fail(items[0])
    client_for(user).post(f"/api/bugs/{bug.pk}/snooze", {"items": 2}, format="json")
    fail(items[0], items[0])  # the same item again: one item, two occurrences
    bug.refresh_from_db()
    assert bug.snoozed and bug.occurrences == 3
    with django_capture_on_commit_callbacks(execute=True):
        fail(items[1])
    bug.refresh_from_db()
    assert not bug.snoozed
    assert [e["data"]["reason"] for e in events if e["type"] == "bug.unsnoozed"] == ["items"]


def test_filing_a_report_on_a_snoozed_bug_stays_cheap(user, project, django_assert_max_num_queries):
    bug = make_bug(project, title="Cheap")
    plain = make_bug(project, title="Plain")
    client_for(user).post(f"/api/bugs/{bug.pk}/snooze", {"items": 50, "occurrences": 50}, format="json")
    with CaptureQueriesContext(connection) as unsnoozed:
        report(project, title="Plain")
    with CaptureQueriesContext(connection) as snoozed:
        report(project, title="Cheap")
    assert len(snoozed.captured_queries) <= len(unsnoozed.captured_queries) + 1  # one count of items
    assert plain.pk != bug.pk


def test_snooze_refusals_and_closing_clears_it(user, project):
    c = client_for(user)
    bug = make_bug(project)
    assert c.post(f"/api/bugs/{bug.pk}/snooze", {"occurrences": 0}, format="json").status_code == 400
    past = (timezone.now() - timedelta(days=1)).isoformat()
    assert c.post(f"/api/bugs/{bug.pk}/snooze", {"until": past}, format="json").status_code == 400
    assert c.post(f"/api/bugs/{bug.pk}/snooze", {"forever": True}, format="json").status_code == 400
    assert c.post(f"/api/bugs/{bug.pk}/snooze", {}, format="json").json()["snoozed"] is True
    resolve(bug)
    bug.refresh_from_db()
    assert bug.status == "resolved" and not bug.snoozed
    res = c.post(f"/api/bugs/{bug.pk}/snooze", {}, format="json")
    assert res.status_code == 409 and res.json()["error"]["code"] == "invalid_transition"
    annotator = add_member(project, UserFactory(), role=Role.ANNOTATOR)
    assert client_for(annotator).post(f"/api/bugs/{bug.pk}/snooze", {}, format="json").status_code == 403
    unsnooze = c.post(f"/api/bugs/{bug.pk}/unsnooze", {}, format="json")
    assert unsnooze.status_code == 200 and unsnooze.json()["snoozed"] is False
