"""The feedback-delay dashboard page (labeling.views.feedback) without a browser: its reads come from
selectors, its counts reach the template, a bad filter answers 400 with the page."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from labeling.models import Role
from labeling.services.feedback import ground_truth_import
from labeling.services.ground_truth import ground_truth_set
from tests.labeling.factories import PASSWORD, UserFactory, add_member
from tests.labeling.feedback_data import ingest


def browser_for(user):
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


@pytest.mark.django_db
def test_the_page_shows_the_conflict_and_pending_counts(project, user):
    items = ingest(project, 3, at=datetime(2026, 1, 5, tzinfo=UTC))
    ground_truth_set(item=items[0], label="pos", method="unanimous", actor=user)
    ground_truth_import(
        project=project, rows=[{"external_id": "e0", "label": "neg"}, {"external_id": "later", "label": "pos"}]
    )
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    page = browser_for(reviewer).get(f"/projects/{project.pk}/delay")
    assert page.status_code == 200
    assert (page.context["n_conflict"], page.context["n_pending"]) == (1, 1)
    assert page.context["report"]["predictions"] == 0  # the rollups follow after commit (refresh not run)

    bad = browser_for(reviewer).get(f"/projects/{project.pk}/delay", {"since": "yesterday"})
    assert bad.status_code == 400 and bad.context["error"] is not None


@pytest.mark.django_db
def test_annotators_do_not_see_the_page(project):
    annotator = add_member(project, UserFactory(), Role.ANNOTATOR)
    assert browser_for(annotator).get(f"/projects/{project.pk}/delay").status_code in (403, 404)


@pytest.mark.django_db
def test_the_staffing_card_shows_review_hours_and_the_measured_overlap_with_their_definitions(project):
    from labeling.services.feedback_rollup import feedback_rollup_refresh

    ingest(project, 3, at=datetime.now(tz=UTC) - timedelta(days=1))
    feedback_rollup_refresh(project_id=project.pk)
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    page = browser_for(reviewer).get(f"/projects/{project.pk}/delay")
    html = page.content.decode()
    staffing = page.context["report"]["staffing"]
    assert staffing["annotations_per_item_source"] == "configured"  # nothing completed yet
    for dom_id in (
        "staffing-annotations-per-item",
        "staffing-annotator-hours",
        "staffing-review-hours",
        "staffing-hours",
    ):
        assert f'id="{dom_id}"' in html
    assert "configured (no completed item yet)" in html
    assert "Reviews per day × median seconds per review / 3600." in html
    assert "annotations per completed item" in html
