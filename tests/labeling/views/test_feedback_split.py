"""The dashboard's stage and slice splits, and the slice-fields form of the project page, without a
browser: the numbers reach the page, the empty states say what to do, bad input changes nothing."""

import pytest
from django.test import Client

from labeling.models import Project, Role
from tests.labeling.factories import PASSWORD, UserFactory, add_member
from tests.labeling.feedback_data import stage_world

pytestmark = pytest.mark.django_db


def browser_for(user):
    c = Client()
    assert c.login(username=user.username, password=PASSWORD)
    return c


def test_the_page_shows_the_stages_side_by_side_and_the_slice_table(project, user):
    stage_world(project, user)
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    page = browser_for(reviewer).get(f"/projects/{project.pk}/delay", {"slice": "channel"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="stage-table"' in html and 'id="slice-table"' in html
    assert [s["stage"] for s in page.context["report"]["live_by_stage"]] == ["production", "shadow", "candidate", None]
    assert page.context["slice_stages"] == ["production", "shadow", None]
    web = page.context["slice_rows"][0]
    assert web["value"] == "web" and [s["accuracy_on_labeled"] for s in web["stages"]] == [0.6667, 0.8333, 1.0]
    assert "75.0%" in html and "87.5%" in html  # production and shadow live accuracy
    assert 'value="shadow"' in html and '<option value="channel" selected>' in html

    shadow = browser_for(reviewer).get(f"/projects/{project.pk}/delay", {"stage": "shadow"})
    assert shadow.context["report"]["predictions"] == 10
    assert 'id="slice-hint"' in shadow.content.decode()  # fields declared, none chosen

    bad = browser_for(reviewer).get(f"/projects/{project.pk}/delay", {"stage": "prod"})
    assert bad.status_code == 400 and "Unknown stage 'prod'" in bad.context["error"].message


def test_empty_states_say_how_to_register_models_and_declare_slices(project, user):
    from datetime import UTC, datetime, timedelta

    from labeling.services.feedback_rollup import feedback_rollup_refresh
    from tests.labeling.feedback_data import ingest

    ingest(project, 3, at=datetime.now(tz=UTC) - timedelta(days=1))
    feedback_rollup_refresh(project_id=project.pk)
    html = browser_for(user).get(f"/projects/{project.pk}/delay").content.decode()
    assert 'id="stage-empty"' in html and "No model version is registered" in html
    assert 'id="slice-empty"' in html and "No slice fields declared" in html
    assert f"/projects/{project.pk}/#slice-fields" in html and '"slice_fields"' in html
    filtered = browser_for(user).get(f"/projects/{project.pk}/delay", {"stage": "canary"}).content.decode()
    assert "No predictions match these filters" in filtered


def test_managers_declare_slice_fields_on_the_project_page(project, user):
    c = browser_for(user)
    assert 'id="slice-fields"' in c.get(f"/projects/{project.pk}/").content.decode()
    res = c.post(f"/projects/{project.pk}/settings/slice-fields", {"slice_fields": "channel, customer_tier  region"})
    assert res.status_code == 302 and res["Location"].endswith(f"/projects/{project.pk}/#slice-fields")
    project.refresh_from_db()
    assert project.slice_fields == ["channel", "customer_tier", "region"]
    page = c.get(f"/projects/{project.pk}/").content.decode()
    assert "<code>customer_tier</code>" in page

    res = c.post(f"/projects/{project.pk}/settings/slice-fields", {"slice_fields": "channel bug"}, follow=True)
    assert "reserved" in res.content.decode()
    assert Project.objects.get(pk=project.pk).slice_fields == ["channel", "customer_tier", "region"]

    c.post(f"/projects/{project.pk}/settings/slice-fields", {"slice_fields": ""})
    assert Project.objects.get(pk=project.pk).slice_fields == []


def test_only_managers_see_and_use_the_form(project):
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    c = browser_for(reviewer)
    assert 'id="slice-fields"' not in c.get(f"/projects/{project.pk}/").content.decode()
    assert c.post(f"/projects/{project.pk}/settings/slice-fields", {"slice_fields": "channel"}).status_code == 403
    assert Project.objects.get(pk=project.pk).slice_fields == []
