import pytest

from bugqueue.models import Bug, BugEvent, BugStatus, Comment, FailureExample
from labeling.models import Item, Role
from tests.bugqueue.factories import ingest_items, make_bug, resolve, update
from tests.conftest import client_for
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def post_bug(client, project, **body):
    body = {"project": project.pk, "title": "Refund tickets routed to shipping", "kind": "failed_prediction", **body}
    return client.post("/api/bugs", body, format="json")


# --- report -----------------------------------------------------------------------------------
def test_report_creates_then_groups(user, project):
    c = client_for(user)
    items = ingest_items(project, 1)
    first = post_bug(
        c,
        project,
        tags=["label_flip"],
        priority="p1",
        description="d",
        model_version="v1",
        failures=[{"external_id": items[0].external_id, "predicted_label": "pos", "expected_label": "neg"}],
    )
    assert first.status_code == 201, first.json()
    assert first.json()["created"] is True and first.json()["occurrences"] == 1
    again = post_bug(c, project, title="refund tickets ROUTED to shipping")
    assert again.status_code == 200 and again.json() == {
        "id": first.json()["id"],
        "created": False,
        "occurrences": 2,
        "regressed": False,
        "status": "new",
    }
    bug = Bug.objects.get(pk=first.json()["id"])
    assert bug.priority == "p1" and [t.slug for t in bug.tags.all()] == ["label_flip"] and bug.reporter == user
    assert bug.failures.get().model_version == "v1"  # the report's model version is the failures' default


def test_client_fingerprint_groups_different_titles(user, project):
    c = client_for(user)
    a = post_bug(c, project, title="one", fingerprint="upstream-123")
    b = post_bug(c, project, title="two", fingerprint="upstream-123")
    assert a.status_code == 201 and b.status_code == 200 and a.json()["id"] == b.json()["id"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"title": ""}, "title"),
        ({"kind": "weird"}, "kind"),
        ({"priority": "p9"}, "priority"),
        ({"tags": ["no_such_tag"]}, "tags"),
        ({"tags": "label_flip"}, "tags"),
        ({"failures": [{"predicted_label": "pos"}]}, "failures"),  # no input
        ({"failures": [{"external_id": "unknown-item"}]}, "failures"),  # unknown item, no payload
        ({"failures": [{"payload": {"text": "x"}, "predicted_label": "no-such-label"}]}, "failures"),
        ({"failures": [{"payload": {"text": "x"}}, {"payload": "not an object"}]}, "failures"),
        ({"failures": [{"payload": {"text": "x"}, "predicted_at": "yesterday"}]}, "failures"),
        ({"failures": [{"payload": {"text": "x"}, "surprise": 1}]}, "failures"),
        ({"surprise": 1}, "surprise"),
        ({"fingerprint": "x" * 256}, "fingerprint"),
    ],
)
def test_bad_report_is_400_in_the_error_shape_and_writes_nothing(user, project, body, field):
    res = post_bug(client_for(user), project, **body)
    assert res.status_code == 400, res.json()
    err = res.json()["error"]
    assert err["code"] == "invalid" and err["message"] and field in err["fields"]
    assert Bug.objects.count() == 0 and FailureExample.objects.count() == 0
    assert Item.objects.count() == 0 and BugEvent.objects.count() == 0


def test_too_many_failures_is_413(user, project):
    res = post_bug(client_for(user), project, failures=[{"payload": {"i": i}} for i in range(1001)])
    assert res.status_code == 413 and res.json()["error"]["code"] == "too_large"
    assert Bug.objects.count() == 0


# --- members only -----------------------------------------------------------------------------
def test_non_members_get_404_everywhere(user, project):
    bug = make_bug(project)
    outsider = client_for(UserFactory())
    for method, url, body in [
        ("post", "/api/bugs", {"project": project.pk, "title": "x", "kind": "other"}),
        ("get", f"/api/bugs?project={project.pk}", None),
        ("get", f"/api/bugs/{bug.pk}", None),
        ("patch", f"/api/bugs/{bug.pk}", {"priority": "p0"}),
        ("post", f"/api/bugs/{bug.pk}/comments", {"body": "hi"}),
        ("post", f"/api/bugs/{bug.pk}/resolve", {"resolution": "fixed"}),
        ("get", f"/api/triage?project={project.pk}", None),
        ("get", f"/api/projects/{project.pk}/bug-settings", None),
        ("get", "/api/bugs/999999", None),
    ]:
        res = getattr(outsider, method)(url, body, format="json")
        assert res.status_code == 404, (method, url, res.status_code)
        assert res.json()["error"]["code"] == "not_found"
    assert outsider.get("/api/bugs").json()["count"] == 0  # no project: only the user's projects
    bug.refresh_from_db()
    assert bug.priority == "p2" and bug.status == "new" and Comment.objects.count() == 0


def test_anonymous_is_401(project):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/bugs").status_code in (401, 403)


def test_annotators_report_and_comment_but_do_not_triage(project):
    annotator = add_member(project, role=Role.ANNOTATOR)
    c = client_for(annotator)
    bug_id = post_bug(c, project).json()["id"]
    assert c.post(f"/api/bugs/{bug_id}/comments", {"body": "seen it too"}, format="json").status_code == 201
    res = c.patch(f"/api/bugs/{bug_id}", {"priority": "p0"}, format="json")
    assert res.status_code == 403 and res.json()["error"]["code"] == "forbidden"
    assert c.post(f"/api/bugs/{bug_id}/resolve", {"resolution": "fixed"}, format="json").status_code == 403


# --- update, transitions, history -------------------------------------------------------------
def test_patch_writes_history_who_when_from_to(user, project):
    reviewer = add_member(project, role=Role.REVIEWER)
    bug = make_bug(project)
    res = client_for(reviewer).patch(
        f"/api/bugs/{bug.pk}",
        {
            "status": "triaged",
            "priority": "p0",
            "assignee": reviewer.username,
            "tags": ["data_drift", "label_flip"],
            "note": "seen in the meeting",
        },
        format="json",
    )
    assert res.status_code == 200, res.json()
    data = res.json()
    assert data["status"] == "triaged" and data["priority"] == "p0" and data["assignee"] == reviewer.username
    assert sorted(data["tags"]) == ["data_drift", "label_flip"]
    rows = {e.field: e for e in BugEvent.objects.filter(bug=bug).exclude(field="created")}
    assert set(rows) == {"status", "priority", "assignee", "tags"}
    assert (rows["status"].from_value, rows["status"].to_value) == ("new", "triaged")
    assert (rows["priority"].from_value, rows["priority"].to_value) == ("p2", "p0")
    assert rows["assignee"].to_value == reviewer.username and rows["tags"].to_value == "data_drift,label_flip"
    assert all(e.actor == reviewer and e.note == "seen in the meeting" and e.created_at for e in rows.values())
    bug.refresh_from_db()
    assert bug.triaged_at is not None
    # the same values again change nothing and write no history
    again = client_for(reviewer).patch(f"/api/bugs/{bug.pk}", {"status": "triaged", "priority": "p0"}, format="json")
    assert again.status_code == 200 and BugEvent.objects.filter(bug=bug).count() == 5
    detail = client_for(user).get(f"/api/bugs/{bug.pk}").json()
    assert [e["field"] for e in detail["events"]] == ["created", "priority", "assignee", "tags", "status"]
    assert {"actor", "field", "from", "to", "note", "created_at"} <= set(detail["events"][1])


@pytest.mark.parametrize(
    "path,target,code",
    [
        (["triaged"], "new", 409),
        (["in_progress"], "new", 409),
        (["resolved"], "triaged", 409),
        (["resolved"], "in_progress", 409),
        (["wont_fix"], "resolved", 409),
        (["triaged", "in_progress"], "triaged", 200),
        (["resolved"], "new", 200),  # reopen
        (["triaged"], "in_progress", 200),
        ([], "resolved", 200),
        ([], "bogus", 400),
    ],
)
def test_transitions_allowed_and_refused(user, project, path, target, code):
    bug = make_bug(project)
    for status in path:
        update(bug, status=status)
    before = BugEvent.objects.filter(bug=bug).count()
    res = client_for(user).patch(f"/api/bugs/{bug.pk}", {"status": target}, format="json")
    assert res.status_code == code, res.json()
    if code == 409:
        assert res.json()["error"]["code"] == "invalid_transition"
        assert BugEvent.objects.filter(bug=bug).count() == before
        assert Bug.objects.get(pk=bug.pk).status == path[-1]
    elif code == 400:
        assert res.json()["error"]["code"] == "invalid" and "status" in res.json()["error"]["fields"]
    else:
        assert Bug.objects.get(pk=bug.pk).status == target


def test_patch_refuses_unknown_assignee_and_writes_nothing(user, project):
    bug = make_bug(project)
    stranger = UserFactory()
    res = client_for(user).patch(
        f"/api/bugs/{bug.pk}", {"priority": "p0", "assignee": stranger.username}, format="json"
    )
    assert res.status_code == 400 and "assignee" in res.json()["error"]["fields"]
    bug.refresh_from_db()
    assert bug.priority == "p2" and bug.assignee is None and BugEvent.objects.filter(bug=bug).count() == 1


def test_reopen_refused_when_another_open_bug_has_the_fingerprint(user, project):
    old = make_bug(project, fingerprint="fp")
    resolve(old, resolution="wont_fix")
    Bug.objects.create(
        project=project,
        title="newer",
        kind="other",
        fingerprint="fp",
        first_seen=old.first_seen,
        last_seen=old.last_seen,
    )  # e.g. made before the close
    res = client_for(user).patch(f"/api/bugs/{old.pk}", {"status": "new"}, format="json")
    assert res.status_code == 409 and res.json()["error"]["code"] == "fingerprint_open"
    assert Bug.objects.get(pk=old.pk).status == "wont_fix"


# --- resolve, comments ------------------------------------------------------------------------
def test_resolve_fixed_then_again_is_a_no_op(user, project):
    bug = make_bug(project)
    c = client_for(user)
    res = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "fixed", "note": "retrained"}, format="json")
    assert res.status_code == 200, res.json()
    assert res.json()["status"] == "resolved" and res.json()["changed"] is True
    bug.refresh_from_db()
    assert bug.resolution == "fixed" and bug.resolution_note == "retrained" and bug.resolved_at and bug.triaged_at
    again = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "fixed"}, format="json")
    assert again.status_code == 200 and again.json()["changed"] is False
    other = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "wont_fix"}, format="json")
    assert other.status_code == 409 and other.json()["error"]["code"] == "invalid_transition"
    assert BugEvent.objects.filter(bug=bug, field="status").count() == 1


def test_resolve_duplicate_needs_a_bug_of_the_same_project(user, project):
    bug, target = make_bug(project), make_bug(project)
    elsewhere = make_bug(ProjectFactory(creator=user))
    c = client_for(user)
    for body, field in [
        ({"resolution": "duplicate"}, "duplicate_of"),
        ({"resolution": "duplicate", "duplicate_of": bug.pk}, "duplicate_of"),
        ({"resolution": "duplicate", "duplicate_of": elsewhere.pk}, "duplicate_of"),
        ({"resolution": "nope"}, "resolution"),
    ]:
        res = c.post(f"/api/bugs/{bug.pk}/resolve", body, format="json")
        assert res.status_code == 400 and field in res.json()["error"]["fields"], (body, res.json())
    assert Bug.objects.get(pk=bug.pk).status == "new"
    res = c.post(f"/api/bugs/{bug.pk}/resolve", {"resolution": "duplicate", "duplicate_of": target.pk}, format="json")
    assert res.status_code == 200 and res.json()["duplicate_of"] == target.pk and res.json()["status"] == "duplicate"
    # a duplicate of a duplicate points at the root
    third = make_bug(project)
    c.post(f"/api/bugs/{third.pk}/resolve", {"resolution": "duplicate", "duplicate_of": bug.pk}, format="json")
    assert Bug.objects.get(pk=third.pk).duplicate_of_id == target.pk


def test_comments(user, project):
    bug = make_bug(project)
    c = client_for(user)
    assert c.post(f"/api/bugs/{bug.pk}/comments", {"body": "  "}, format="json").status_code == 400
    res = c.post(f"/api/bugs/{bug.pk}/comments", {"body": "Looks like the tokenizer."}, format="json")
    assert res.status_code == 201 and res.json()["author"] == user.username
    detail = c.get(f"/api/bugs/{bug.pk}").json()
    assert [cm["body"] for cm in detail["comments"]] == ["Looks like the tokenizer."]


def test_detail_shows_failures_series_and_is_query_bounded(user, project, django_assert_max_num_queries):
    items = ingest_items(project, 30)
    bug = make_bug(
        project,
        fingerprint="fp",
        kind="failed_prediction",
        failures=[
            {"external_id": it.external_id, "predicted_label": "pos", "expected_label": "neg", "model_version": "v1"}
            for it in items
        ],
    )
    c = client_for(user)
    with django_assert_max_num_queries(14):
        data = c.get(f"/api/bugs/{bug.pk}").json()
    assert data["id"] == bug.pk and data["status"] == "new" and data["kind"] == "failed_prediction"
    assert data["failure_count"] == 30 and len(data["failures"]) == 30
    assert data["failures"][0]["input"] == {"text": "text 29"}
    assert data["confusion"] == [{"model_version": "v1", "predicted_label": "pos", "expected_label": "neg", "n": 30}]
    assert sum(p["count"] for p in data["occurrences_by_day"]) == 30


# --- list, facets -----------------------------------------------------------------------------
def test_list_filters_and_facets(user, project, django_assert_max_num_queries):
    c = client_for(user)
    a = make_bug(project, title="alpha", tags=["label_flip"], priority="p0")
    b = make_bug(project, title="beta", tags=["label_flip", "data_drift"], priority="p1")
    make_bug(project, title="gamma", tags=["data_drift"], priority="p1", kind="data_quality")
    resolve(b)
    update(a, assignee=user.username)
    make_bug(ProjectFactory(), title="not mine")

    with django_assert_max_num_queries(9):
        res = c.get(f"/api/bugs?project={project.pk}")
    data = res.json()
    assert data["count"] == 3 and [r["title"] for r in data["results"]] == ["alpha", "gamma", "beta"]
    assert data["facets"]["status"]["new"] == 2 and data["facets"]["status"]["resolved"] == 1
    assert data["facets"]["priority"] == {"p0": 1, "p1": 2, "p2": 0, "p3": 0}
    assert data["facets"]["tag"]["label_flip"] == 2 and data["facets"]["tag"]["data_drift"] == 2
    assert data["facets"]["tag"]["schema_change"] == 0

    data = c.get(f"/api/bugs?project={project.pk}&tag=label_flip").json()
    assert {r["title"] for r in data["results"]} == {"alpha", "beta"}
    # a facet ignores its own filter (choose another tag) but applies the others
    assert data["facets"]["tag"]["data_drift"] == 2 and data["facets"]["priority"] == {
        "p0": 1,
        "p1": 1,
        "p2": 0,
        "p3": 0,
    }
    data = c.get(f"/api/bugs?project={project.pk}&status=open&priority=p1").json()
    assert [r["title"] for r in data["results"]] == ["gamma"]
    assert data["facets"]["status"] == {
        "new": 1,
        "triaged": 0,
        "in_progress": 0,
        "resolved": 1,
        "wont_fix": 0,
        "duplicate": 0,
    }
    assert data["facets"]["priority"] == {"p0": 1, "p1": 1, "p2": 0, "p3": 0}  # the open bugs, by priority
    assert [r["title"] for r in c.get(f"/api/bugs?assignee={user.username}").json()["results"]] == ["alpha"]
    assert [r["title"] for r in c.get("/api/bugs?q=GAMM").json()["results"]] == ["gamma"]
    assert [r["title"] for r in c.get("/api/bugs?kind=data_quality").json()["results"]] == ["gamma"]
    assert c.get("/api/bugs?page_size=2").json()["next"] is not None
    for bad in ("status=nope", "priority=p7", "tag=nope", "kind=x", "regressed=maybe", "ordering=title"):
        res = c.get(f"/api/bugs?{bad}")
        assert res.status_code == 400 and res.json()["error"]["fields"], bad


def test_list_query_count_is_constant_in_page_size(user, project, django_assert_max_num_queries):
    for i in range(60):
        make_bug(project, title=f"bug n{i}", tags=["label_flip"])  # n{i}: a word, not a number
    with django_assert_max_num_queries(10):
        res = client_for(user).get(f"/api/bugs?project={project.pk}&page_size=60")
    assert len(res.json()["results"]) == 60


def test_tags_and_settings(user, project):
    c = client_for(user)
    tags = c.get("/api/tags").json()
    assert len(tags) == 10 and tags[0]["slug"] == "data_leakage" and all(t["description"] for t in tags)
    assert {t["slug"] for t in tags} >= {
        "label_flip",
        "dropped_special_characters",
        "feedback_delay",
        "unset_random_seed",
        "copy_paste_anomaly",
        "corrupted_imputation",
    }
    assert c.get(f"/api/projects/{project.pk}/bug-settings").json()["auto_file_failed_predictions"] is True
    res = c.patch(f"/api/projects/{project.pk}/bug-settings", {"auto_file_failed_predictions": False}, format="json")
    assert res.status_code == 200 and res.json()["auto_file_failed_predictions"] is False
    annotator = add_member(project, role=Role.ANNOTATOR)
    assert (
        client_for(annotator)
        .patch(f"/api/projects/{project.pk}/bug-settings", {"auto_file_failed_predictions": True}, format="json")
        .status_code
        == 403
    )
    assert (
        c.patch(
            f"/api/projects/{project.pk}/bug-settings", {"auto_file_failed_predictions": "maybe"}, format="json"
        ).status_code
        == 400
    )


def test_status_filter_accepts_several(user, project):
    a, b = make_bug(project), make_bug(project)
    resolve(b)
    c = client_for(user)
    assert c.get("/api/bugs?status=new,resolved").json()["count"] == 2
    assert c.get("/api/bugs?status=new&status=resolved").json()["count"] == 2
    assert c.get("/api/bugs?status=closed").json()["count"] == 1
    assert [r["id"] for r in c.get("/api/bugs?status=open").json()["results"]] == [a.pk]
    assert Bug.objects.get(pk=a.pk).status == BugStatus.NEW
