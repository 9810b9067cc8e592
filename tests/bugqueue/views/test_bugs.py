from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from bugqueue.demo import demo_bugs_load
from bugqueue.models import Bug, Comment, Digest
from bugqueue.selectors.triage import parse_week
from bugqueue.services.digest import digest_build, digest_send
from bugqueue.tasks import digest_project, weekly_digests
from labeling.models import Role
from tests.bugqueue.factories import ingest_items, make_bug
from tests.labeling.factories import ProjectFactory, UserFactory, add_member

pytestmark = pytest.mark.django_db


def web(user):
    c = Client()
    c.force_login(user)
    return c


def test_pages_render_for_members(user, project, django_assert_max_num_queries):
    items = ingest_items(project, 3)
    bug = make_bug(project, title="Refunds routed to shipping", tags=["label_flip"], kind="failed_prediction",
                   failures=[{"external_id": items[0].external_id, "predicted_label": "pos", "expected_label": "neg",
                              "model_version": "v1"}, {"payload": {"text": "unlabeled input"}, "predicted_label": "pos"}])
    for i in range(20):
        make_bug(project, title=f"other {i}", tags=["data_drift"])
    c = web(user)
    with django_assert_max_num_queries(16):
        res = c.get(f"/bugs?project={project.pk}")
    assert res.status_code == 200 and b"Refunds routed to shipping" in res.content and b'data-facet="tag"' in res.content
    with django_assert_max_num_queries(18):
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
    for url in (f"/bugs/{bug.pk}", f"/bugs?project={project.pk}", f"/triage?project={project.pk}",
                f"/bugs/digests/{digest.pk}", f"/bugs/digests?project={project.pk}"):
        assert c.get(url).status_code == 404, url
    assert c.post(f"/bugs/{bug.pk}/comments", {"body": "x"}).status_code == 404
    assert Comment.objects.count() == 0
    assert Client().get("/bugs").status_code == 302  # anonymous: to the login page


def test_comment_and_edit_forms(user, project):
    bug = make_bug(project)
    c = web(user)
    res = c.post(f"/bugs/{bug.pk}/comments", {"body": "Tokenizer again"})
    assert res.status_code == 302 and Comment.objects.get().body == "Tokenizer again"
    res = c.post(f"/bugs/{bug.pk}/edit", {"status": "triaged", "priority": "p1", "assignee": user.username,
                                           "tags_present": "1", "tags": ["schema_change"], "note": "meeting"})
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


def test_digest_is_built_stored_shown_and_mailed_once_to_managers(user, project, eager_celery):
    user.email = "lead@example.com"
    user.save()
    add_member(project, UserFactory(email="annotator@example.com"), role=Role.ANNOTATOR)
    last_week = parse_week(None) - timedelta(days=7)
    make_bug(project, title="Shown in the digest", now=timezone.now() - timedelta(days=7), priority="p0",
             tags=["label_flip"])
    assert weekly_digests() == 1  # the beat entry: one digest task per project, for the week that just ended
    digest = Digest.objects.get(project=project)
    assert digest.week_start == last_week and digest.data["stats"]["opened"] == 1
    assert [b["title"] for b in digest.data["new"]] == ["Shown in the digest"]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["lead@example.com"]
    assert "Shown in the digest" in mail.outbox[0].body and "1 new" in mail.outbox[0].subject
    assert digest.sent_to == ["lead@example.com"] and digest.sent_at is not None
    digest_send(digest=digest)  # once only
    digest_project(project.pk, digest.week_label)  # rebuilt idempotently, not mailed again
    assert len(mail.outbox) == 1 and Digest.objects.filter(project=project).count() == 1
    c = web(user)
    assert b"Shown in the digest" in c.get(f"/bugs/digests/{digest.pk}").content
    assert digest.week_label.encode() in c.get(f"/bugs/digests?project={project.pk}").content


def test_beat_schedule_is_merged():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"bugqueue.weekly_digests", "bugqueue.reconcile_occurrences", "bugqueue.file_failed_predictions_sweep"} <= tasks


def test_demo_bugs_are_idempotent(user):
    project = ProjectFactory(creator=user, labels=_demo_labels())
    from labeling.management.commands.loupe_demo import demo_rows
    from labeling.services.ingestion import items_ingest

    items_ingest(project=project, rows=demo_rows(120))
    assert demo_bugs_load(project=project) == 8
    assert demo_bugs_load(project=project) == 0
    bugs = Bug.objects.filter(project=project)
    assert bugs.count() == 8 and {b.status for b in bugs} == {"new", "triaged", "in_progress", "resolved", "wont_fix",
                                                                "duplicate"}
    assert bugs.filter(regressed=True).count() == 1 and bugs.filter(failures__item__isnull=False).exists()
    assert Digest.objects.filter(project=project).count() == 1


def _demo_labels():
    from labeling.management.commands.loupe_demo import LABELS

    return list(LABELS)


def test_a_quiet_week_is_stored_but_not_mailed(user, project):
    user.email = "lead@example.com"
    user.save()
    digest = digest_send(digest=digest_build(project=project, week_start=parse_week(None)))
    assert digest.sent_at is not None and digest.sent_to == [] and mail.outbox == []
