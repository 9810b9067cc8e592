import pytest
from django.test import Client

from bugqueue.models import Bug, Comment
from bugqueue.selectors.triage import parse_week
from bugqueue.services.digest import digest_build
from labeling.models import Role
from tests.bugqueue.factories import ingest_items, make_bug
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def web(user):
    c = Client()
    c.force_login(user)
    return c


def test_pages_render_for_members(user, project, django_assert_max_num_queries):
    items = ingest_items(project, 3)
    bug = make_bug(
        project,
        title="Refunds routed to shipping",
        tags=["label_flip"],
        kind="failed_prediction",
        failures=[
            {
                "external_id": items[0].external_id,
                "predicted_label": "pos",
                "expected_label": "neg",
                "model_version": "v1",
            },
            {"payload": {"text": "unlabeled input"}, "predicted_label": "pos"},
        ],
    )
    for i in range(20):
        make_bug(project, title=f"other n{i}", tags=["data_drift"])  # n{i}: a word, not a number
    c = web(user)
    with django_assert_max_num_queries(16):
        res = c.get(f"/bugs?project={project.pk}")
    assert (
        res.status_code == 200 and b"Refunds routed to shipping" in res.content and b'data-facet="tag"' in res.content
    )
    with django_assert_max_num_queries(21):  # + item comments, the breakdowns by model version, the evaluations
        res = c.get(f"/bugs/{bug.pk}")
    html = res.content.decode()
    assert res.status_code == 200 and "text 0" in html and "unlabeled input" in html and "occurrences-chart" in html
    assert "unknown" in html  # the second failure's expected label is not known yet
    with django_assert_max_num_queries(16):
        res = c.get(f"/triage?project={project.pk}")
    assert res.status_code == 200 and b"pareto-chart" in res.content and b"triage.js" in res.content
    assert c.get("/triage").status_code == 302  # picks the first project
    assert c.get("/bugs").status_code == 200  # every project of the user


def test_pages_are_members_only(user, project):
    bug = make_bug(project)
    digest = digest_build(project=project, week_start=parse_week(None))
    c = web(UserFactory())
    for url in (
        f"/bugs/{bug.pk}",
        f"/bugs?project={project.pk}",
        f"/triage?project={project.pk}",
        f"/bugs/digests/{digest.pk}",
        f"/bugs/digests?project={project.pk}",
    ):
        assert c.get(url).status_code == 404, url
    assert c.post(f"/bugs/{bug.pk}/comments", {"body": "x"}).status_code == 404
    assert Comment.objects.count() == 0
    assert Client().get("/bugs").status_code == 302  # anonymous: to the login page


def test_comment_and_edit_forms(user, project):
    bug = make_bug(project)
    c = web(user)
    res = c.post(f"/bugs/{bug.pk}/comments", {"body": "Tokenizer again"})
    assert res.status_code == 302 and Comment.objects.get().body == "Tokenizer again"
    res = c.post(
        f"/bugs/{bug.pk}/edit",
        {
            "status": "triaged",
            "priority": "p1",
            "assignee": user.username,
            "tags_present": "1",
            "tags": ["schema_change"],
            "note": "meeting",
        },
    )
    bug.refresh_from_db()
    assert res.status_code == 302 and bug.status == "triaged" and bug.priority == "p1" and bug.assignee == user
    assert list(bug.tags.values_list("slug", flat=True)) == ["schema_change"]
    res = c.post(f"/bugs/{bug.pk}/edit", {"status": "new"}, follow=True)  # refused transition: a message, no change
    assert "cannot become new" in res.content.decode() and Bug.objects.get(pk=bug.pk).status == "triaged"
    annotator = add_member(project, role=Role.ANNOTATOR)
    assert web(annotator).post(f"/bugs/{bug.pk}/edit", {"priority": "p0"}).status_code == 403


def test_settings_toggle_is_for_managers(user, project):
    c = web(user)
    assert c.post(f"/bugs/settings/{project.pk}", {}).status_code == 302
    assert project.bug_settings.auto_file_failed_predictions is False
    reviewer = add_member(project, role=Role.REVIEWER)
    assert web(reviewer).post(f"/bugs/settings/{project.pk}", {"auto_file_failed_predictions": "on"}).status_code == 403
