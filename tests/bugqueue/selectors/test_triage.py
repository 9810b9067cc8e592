from datetime import timedelta

import pytest
from django.utils import timezone

from bugqueue.selectors.triage import access_digest, parse_week, week_label
from bugqueue.services.digest import digest_build
from common.errors import NotFound, ValidationFailed
from tests.labeling.factories import UserFactory, add_member

WEEK = "2026-W47"  # Monday 2026-11-16 .. Sunday 2026-11-22


def test_parse_week():
    assert parse_week(WEEK).isoformat() == "2026-11-16" and week_label(parse_week(WEEK)) == WEEK
    today = timezone.now().date()
    assert parse_week("") == today - timedelta(days=today.weekday())


@pytest.mark.parametrize("bad", ["2026-47", "2026-W54", "week 3", "0000-W01"])
def test_parse_week_refuses_what_is_not_an_iso_week(bad):
    with pytest.raises(ValidationFailed) as exc:
        parse_week(bad)
    assert "week" in exc.value.fields


@pytest.mark.django_db
def test_access_digest_is_for_members_of_its_project(user, project):
    digest = digest_build(project=project, week_start=parse_week(None) - timedelta(days=7))
    got = access_digest(user=user, digest_id=digest.pk)
    assert got.pk == digest.pk and got.project.pk == project.pk and got.project.user_role == "manager"
    annotator = add_member(project)
    assert access_digest(user=annotator, digest_id=str(digest.pk)).pk == digest.pk
    for who, digest_id in (
        (UserFactory(), digest.pk),
        (user, digest.pk + 1000),
        (user, "x"),
        (user, -1),
        (user, 2**64),
    ):
        with pytest.raises(NotFound, match="Digest not found"):
            access_digest(user=who, digest_id=digest_id)
