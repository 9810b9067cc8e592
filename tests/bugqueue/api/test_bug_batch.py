"""POST /api/bugs with a JSON array: batched reports, each checked as one report is, filed together
(all or nothing)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bugqueue.models import Bug, BugEvent, BugOccurrence, FailureExample
from bugqueue.services.report_batch import MAX_REPORTS_PER_BATCH
from labeling.models import Item, Role
from tests.bugqueue.factories import ingest_items, make_bug, resolve, spelled
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def rep(project, title="Refund tickets routed to shipping", **kw):
    return {"project": project.pk, "title": title, "kind": "failed_prediction", **kw}


def post(client, rows):
    return client.post("/api/bugs", rows, format="json")


def test_batch_files_creates_and_groups_in_order(user, project):
    items = ingest_items(project, 3)
    rows = [
        rep(project, tags=["label_flip"], priority="p1"),
        rep(project, title="Another failure", failures=[{"external_id": items[0].external_id}]),
        rep(project, title="refund tickets ROUTED to shipping"),  # same default fingerprint as the first
        rep(
            project,
            title="Another failure",
            failures=[{"external_id": items[1].external_id}, {"external_id": items[2].external_id}],
        ),
    ]
    res = post(client_for(user), rows)
    assert res.status_code == 200, res.json()
    body = res.json()
    assert body["counts"] == {"created": 2, "grouped": 2}
    r = body["results"]
    assert [x["index"] for x in r] == [0, 1, 2, 3]
    assert r[0]["created"] and not r[2]["created"] and r[0]["id"] == r[2]["id"]
    assert r[1]["created"] and not r[3]["created"] and r[1]["id"] == r[3]["id"]
    assert r[0]["occurrences"] == 2 and r[1]["occurrences"] == 3 and r[0]["status"] == "new"
    refund, other = Bug.objects.get(pk=r[0]["id"]), Bug.objects.get(pk=r[1]["id"])
    assert refund.occurrences == 2 and refund.priority == "p1" and [t.slug for t in refund.tags.all()] == ["label_flip"]
    assert other.occurrences == 3 and other.failures.count() == 3 and refund.reporter == user
    # one occurrence row and one "created" history row per bug, whatever the number of reports
    assert BugOccurrence.objects.filter(bug=refund).get().count == 2
    assert BugOccurrence.objects.filter(bug=other).get().count == 3
    assert BugEvent.objects.filter(field="created").count() == 2


def test_batch_sent_twice_groups_onto_the_same_bugs(user, project):
    c = client_for(user)
    rows = [rep(project, title=f"failure {spelled(i % 3)}") for i in range(9)]
    first = post(c, rows).json()
    again = post(c, rows).json()
    assert first["counts"] == {"created": 3, "grouped": 6}
    assert again["counts"] == {"created": 0, "grouped": 9}
    assert [x["id"] for x in first["results"]] == [x["id"] for x in again["results"]]
    assert Bug.objects.filter(project=project).count() == 3
    assert sorted(Bug.objects.values_list("occurrences", flat=True)) == [6, 6, 6]


def test_one_bad_report_refuses_the_batch_with_every_error_and_writes_nothing(user, project):
    other_project = ProjectFactory()  # not visible to user
    items = ingest_items(project, 1)
    rows = [
        rep(project, title="good one", failures=[{"external_id": items[0].external_id}]),
        rep(project, title=""),
        rep(project, tags=["no_such_tag"]),
        rep(project, failures=[{"external_id": "unknown-item"}]),
        rep(project, surprise=1),
        "not an object",
        rep(other_project),
        rep(project, failures=[{"payload": {"text": "x"}, "predicted_label": "no-such-label"}]),
        rep(project, title="good two", failures=[{"payload": {"text": "would be a new item"}}]),
    ]
    res = post(client_for(user), rows)
    assert res.status_code == 400, res.json()
    err = res.json()["error"]
    assert err["code"] == "invalid" and err["message"].startswith(
        "7 of 9 reports cannot be filed; nothing was written."
    )
    errors = err["fields"]["reports"]
    assert sorted(errors, key=int) == ["1", "2", "3", "4", "5", "6", "7"]
    assert "title" in errors["1"]["fields"] and errors["1"]["code"] == "invalid"
    assert "tags" in errors["2"]["fields"] and "no_such_tag" in errors["2"]["message"]
    assert "unknown-item" in errors["3"]["message"]
    assert "surprise" in errors["4"]["fields"]
    assert errors["6"]["code"] == "not_found"
    assert "no-such-label" in errors["7"]["message"]
    assert Bug.objects.count() == 0 and FailureExample.objects.count() == 0 and BugEvent.objects.count() == 0
    assert Item.objects.count() == 1  # only the item made before; the good report's payload made none


def test_a_reporter_who_may_not_add_items_is_refused_for_that_report(project):
    reviewer = UserFactory()
    add_member(project, reviewer, Role.REVIEWER)
    rows = [rep(project, title="plain"), rep(project, title="payload", failures=[{"payload": {"text": "new"}}])]
    res = post(client_for(reviewer), rows)
    assert res.status_code == 400 and res.json()["error"]["fields"]["reports"]["1"]["code"] == "forbidden"
    assert "0" not in res.json()["error"]["fields"]["reports"]
    assert Item.objects.count() == 0 and Bug.objects.count() == 0
    rows = [rep(project, title="plain")]
    assert post(client_for(reviewer), rows).json()["results"][0]["created"]


def test_too_many_reports_is_413_and_writes_nothing(user, project):
    res = post(client_for(user), [rep(project, title=f"t{i}") for i in range(MAX_REPORTS_PER_BATCH + 1)])
    assert res.status_code == 413 and res.json()["error"]["code"] == "too_large"
    assert Bug.objects.count() == 0


def test_empty_batch_is_400(user, project):
    res = post(client_for(user), [])
    assert res.status_code == 400 and res.json()["error"]["message"]


def test_batch_follows_the_regression_rule_and_duplicates(user, project):
    resolved = make_bug(project, user, title="resolved one")
    resolve(resolved, user)
    target = make_bug(project, user, title="target")
    dup = make_bug(project, user, title="dup")
    resolve(dup, user, resolution="duplicate", duplicate_of=target.pk)
    rows = [
        rep(project, title="resolved one", kind="user_report"),
        rep(project, title="dup", kind="user_report"),
        rep(project, title="target", kind="user_report"),
    ]
    r = post(client_for(user), rows).json()["results"]
    resolved.refresh_from_db()
    target.refresh_from_db()
    assert r[0]["id"] == resolved.pk and r[0]["regressed"] and resolved.status == "new" and resolved.regressed
    assert r[1]["id"] == r[2]["id"] == target.pk and not r[1]["created"]
    assert target.occurrences == 3 and r[1]["occurrences"] == 3
    assert BugOccurrence.objects.filter(bug=target).count() == 2  # its own report, then this batch


def test_query_count_is_constant_in_reports_per_fingerprint(user, project):
    c = client_for(user)
    items = ingest_items(project, 60)
    post(c, [rep(project)])  # the bug exists

    def count(n):
        rows = [rep(project, failures=[{"external_id": items[i].external_id}]) for i in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            res = post(c, rows)
        assert res.status_code == 200 and res.json()["counts"]["grouped"] == n
        return len(ctx.captured_queries)

    few, many = count(3), count(50)
    assert few == many, (few, many)
    assert many <= 20


def test_query_count_grows_a_little_per_distinct_fingerprint(user, project):
    c = client_for(user)

    def count(k, prefix):
        rows = [rep(project, title=f"{prefix} {spelled(i % k)}") for i in range(2 * k)]
        with CaptureQueriesContext(connection) as ctx:
            res = post(c, rows)
        assert res.status_code == 200
        return len(ctx.captured_queries)

    new_1, new_10 = count(1, "a"), count(10, "b")  # new bugs: the upsert loop per fingerprint
    assert new_10 - new_1 <= 9 * 10, (new_1, new_10)
    old_1, old_10 = count(1, "a"), count(10, "b")  # existing bugs: one counter update each
    assert old_10 - old_1 <= 9 * 1, (old_1, old_10)


def test_a_batch_may_span_projects(user, project):
    second = ProjectFactory(creator=user)
    body = post(client_for(user), [rep(project, title="x"), rep(second, title="x")]).json()
    a, b = body["results"]
    assert a["created"] and b["created"] and a["id"] != b["id"]
    assert Bug.objects.get(pk=b["id"]).project == second


def test_single_report_answers_as_before(user, project):
    res = client_for(user).post("/api/bugs", rep(project), format="json")
    assert res.status_code == 201 and set(res.json()) == {"id", "created", "occurrences", "regressed", "status"}


def test_batch_dates_failures_by_their_predictions_and_wakes_a_snoozed_bug(user, project):
    from datetime import timedelta

    from django.utils import timezone

    from bugqueue.services.snooze import bugs_snooze, snooze_spec

    now = timezone.now()
    items = ingest_items(project, 3, predicted_at=now - timedelta(days=20))
    bug = make_bug(project, title="Refund tickets routed to shipping", kind="failed_prediction")
    bugs_snooze(bugs=[Bug.objects.get(pk=bug.pk)], actor=user, spec=snooze_spec(occurrences=2))
    early, late = now - timedelta(days=20), now - timedelta(days=3)
    rows = [
        rep(project, failures=[{"external_id": items[0].external_id, "predicted_at": early.isoformat()}]),
        rep(project, failures=[{"external_id": items[1].external_id, "predicted_at": late.isoformat()}]),
    ]
    res = post(client_for(user), rows)
    assert res.status_code == 200, res.json()
    bug.refresh_from_db()
    assert abs((bug.first_seen - early).total_seconds()) < 1
    assert not bug.snoozed  # two more occurrences: its snooze condition is met
    days = sorted(
        o.seen_at.date() for o in BugOccurrence.objects.filter(bug=bug) if o.seen_at < now - timedelta(days=1)
    )
    assert days == [early.date(), late.date()]
    assert sorted(FailureExample.objects.filter(bug=bug).values_list("occurred_at", flat=True))[0] == bug.first_seen
