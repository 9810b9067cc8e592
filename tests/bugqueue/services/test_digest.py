from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from bugqueue.models import Digest
from bugqueue.selectors.triage import parse_week
from bugqueue.services.digest import digest_build, digest_recipients, digest_send
from bugqueue.tasks import digest_project, weekly_digests
from labeling.models import Role
from tests.bugqueue.factories import make_bug, resolve
from tests.labeling.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def web(user):
    c = Client()
    c.force_login(user)
    return c


def test_digest_is_built_stored_shown_and_mailed_once_to_managers(user, project, eager_celery):
    user.email = "lead@example.com"
    user.save()
    add_member(project, UserFactory(email="annotator@example.com"), role=Role.ANNOTATOR)
    last_week = parse_week(None) - timedelta(days=7)
    make_bug(
        project, title="Shown in the digest", now=timezone.now() - timedelta(days=7), priority="p0", tags=["label_flip"]
    )
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


def test_a_quiet_week_is_stored_but_not_mailed(user, project):
    user.email = "lead@example.com"
    user.save()
    digest = digest_send(digest=digest_build(project=project, week_start=parse_week(None)))
    assert digest.sent_at is not None and digest.sent_to == [] and mail.outbox == []


def test_digest_build_is_one_row_per_week_and_follows_later_changes(user, project):
    week = parse_week(None) - timedelta(days=7)
    during = timezone.now() - timedelta(days=7)
    first = make_bug(project, title="First of the week", now=during, priority="p1")
    digest = digest_build(project=project, week_start=week)
    assert digest.data["stats"]["opened"] == 1 and digest.data["totals"]["new"] == 1
    assert [(b["id"], b["title"], b["priority"]) for b in digest.data["new"]] == [(first.pk, "First of the week", "p1")]
    assert digest_build(project=project, week_start=week).pk == digest.pk  # unchanged: the same row
    make_bug(project, title="Second of the week", now=during)
    resolve(first, user)
    rebuilt = digest_build(project=project, week_start=week)
    assert rebuilt.pk == digest.pk and Digest.objects.filter(project=project).count() == 1
    assert rebuilt.data["stats"]["opened"] == 2 and {b["title"] for b in rebuilt.data["new"]} == {
        "First of the week",
        "Second of the week",
    }
    other_week = digest_build(project=project, week_start=week - timedelta(days=7))
    assert other_week.pk != digest.pk and other_week.data["stats"]["opened"] == 0


def test_recipients_are_the_active_managers_with_an_email(user, project):
    user.email = "lead@example.com"
    user.save()
    add_member(project, UserFactory(email="second@example.com"), role=Role.MANAGER)
    add_member(project, UserFactory(email=""), role=Role.MANAGER)
    gone = add_member(project, UserFactory(email="gone@example.com"), role=Role.MANAGER)
    gone.is_active = False
    gone.save()
    add_member(project, UserFactory(email="reviewer@example.com"), role=Role.REVIEWER)
    assert digest_recipients(project=project) == ["lead@example.com", "second@example.com"]
    make_bug(project, title="Open, so the week is not quiet")
    digest = digest_send(digest=digest_build(project=project, week_start=parse_week(None)))
    assert digest.sent_to == ["lead@example.com", "second@example.com"]
    assert len(mail.outbox) == 1 and sorted(mail.outbox[0].to) == ["lead@example.com", "second@example.com"]
